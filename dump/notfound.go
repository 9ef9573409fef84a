package dump

import (
	"strings"

	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
)

// NotFoundError names every user and mailbox selected that does not exist:
// the selection is checked whole before anything is written.
type NotFoundError struct {
	Users, Mailboxes []string
	// Near maps a name not found to an existing one it may be a typo of.
	Near map[string]string
}

func (e *NotFoundError) Error() string {
	var parts []string
	for _, u := range e.Users {
		parts = append(parts, "no such user: "+u+e.near(u))
	}
	for _, m := range e.Mailboxes {
		parts = append(parts, "no such mailbox: "+m+e.near(m))
	}
	return strings.Join(parts, "; ")
}

func (e *NotFoundError) near(name string) string {
	if n, ok := e.Near[name]; ok {
		return " (did you mean " + n + "?)"
	}
	return ""
}

func (e *NotFoundError) Unwrap() error { return partition.ErrNoMailbox }

// suggest finds, for each name not found, an existing one at most two
// edits away. It reads mailboxes.db once; only a failed run pays for it.
func (e *NotFoundError) suggest(spool *partition.Spool) {
	e.Near = map[string]string{}
	if len(e.Users) > 0 {
		if users, err := spool.Users(); err == nil {
			for _, u := range e.Users {
				if n := nearest(u, users); n != "" {
					e.Near[u] = n
				}
			}
		}
	}
	if len(e.Mailboxes) > 0 {
		// The mailboxes come in chunks: memory stays flat.
		near := make([]nearName, len(e.Mailboxes))
		err := spool.MailboxChunks(func(chunk []partition.Entry) error {
			for i, m := range e.Mailboxes {
				for _, c := range chunk {
					near[i].consider(m, c.Name)
				}
			}
			return nil
		})
		if err == nil {
			for i, m := range e.Mailboxes {
				if near[i].name != "" {
					e.Near[m] = near[i].name
				}
			}
		}
	}
}

// nearest returns the candidate closest to name by edit distance, if it is
// at most 2 edits away (ties: the first).
func nearest(name string, candidates []string) string {
	var n nearName
	for _, c := range candidates {
		n.consider(name, c)
	}
	return n.name
}

// nearName is the closest candidate to a name so far, at most 2 edits
// away.
type nearName struct {
	name string
	d    int // its distance, once name is set
}

func (n *nearName) consider(name, c string) {
	bound := 3
	if n.name != "" {
		bound = n.d
	}
	if d := mboxname.EditDistance(name, c, bound); d < bound {
		n.name, n.d = c, d
	}
}
