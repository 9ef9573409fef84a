package repo

import (
	"io"

	"github.com/mbtool/mbtool/dlist"
)

// MailboxInfo describes one mailbox of a user's state.
type MailboxInfo struct {
	Name     string
	UniqueID string
	Records  int64 // expunged included
}

// Mailboxes calls fn for each mailbox of user u's state, in dump order.
func (r *Repo) Mailboxes(u UserEntry, fn func(MailboxInfo) error) error {
	discard := dlist.NewWriter(io.Discard)
	_, err := r.readState(u.State, stateVisitor{
		box: func(e BoxEntry) error {
			return fn(MailboxInfo{Name: e.Name, UniqueID: e.UniqueID, Records: e.Records})
		},
		line: func(rd *dlist.Reader, verb, name string) error {
			var m MailboxInfo
			discard.BeginLine(verb, name)
			err := copyValue(rd, discard, func(t *dlist.Token, depth int, key string) error {
				switch {
				case depth == 1 && key == "MBOXNAME":
					m.Name = string(t.Bytes)
				case depth == 1 && key == "UNIQUEID":
					m.UniqueID = string(t.Bytes)
				case depth == 2 && t.Kind == dlist.KVList:
					m.Records++
				}
				return nil
			})
			if err != nil {
				return err
			}
			discard.EndLine()
			if verb == "APPLY" && name == "MAILBOX" {
				return fn(m)
			}
			return nil
		},
	})
	return err
}

// Boxes calls fn for each mailbox entry of user u's state (format 2;
// none for an earlier state), in dump order.
func (r *Repo) Boxes(u UserEntry, fn func(BoxEntry) error) error {
	_, err := r.readState(u.State, stateVisitor{
		box:  fn,
		line: func(rd *dlist.Reader, verb, name string) error { return skipValue(rd) },
	})
	return err
}
