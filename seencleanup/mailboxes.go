package seencleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/partition"
)

// mailbox is what the cleanup needs to know about one mailboxes.db entry.
type mailbox struct {
	entry partition.Entry // Name, UniqueID, Partition and Type only
	owner string          // "" for shared mailboxes
	rank  int             // rankReal, rankOther or rankTombstone
}

// How much an entry says that its uniqueid is alive; the highest wins when
// several entries share one uniqueid (a deleted mailbox leaves a tombstone
// under its old name and a real entry under DELETED.*).
const (
	rankTombstone = iota // type d: the mailbox is gone
	rankOther            // intermediate (i) or remote (r): exists, no local index
	rankReal             // a local mailbox with files, DELETED.* ones included
)

// mailboxTable maps a uniqueid to its mailbox.
type mailboxTable map[string]mailbox

// loadMailboxes reads every N record of mailboxes.db, as cyr_userseen's walk
// does, including the deleted hierarchy (DELETED.user.alice.X.<hex>, still
// owned by alice), tombstones and intermediates, which
// partition.Spool.Mailboxes leaves out. The shared lock on mailboxes.db is
// held only for the walk. Memory is one small entry per mailbox.
//
// The N-value rules are those of partition.parseEntry; partition exports no
// walk over every entry yet, so the few keys needed are decoded here with
// dlist.ParseSAX, as there.
func loadMailboxes(spool *partition.Spool) (mailboxTable, error) {
	path := spool.Config.MboxlistPath
	db, err := cyrusdb.OpenTwoskip(path)
	if err != nil {
		return nil, fmt.Errorf("opening mailboxes.db: %w", err)
	}
	t := make(mailboxTable)
	err = db.ForEach([]byte("N"), func(k, v []byte) error {
		e, err := parseEntry(k[1:], v)
		if err != nil {
			return fmt.Errorf("mailboxes.db %s: key %q: %w", path, k, err)
		}
		if e.UniqueID == "" {
			return nil
		}
		m := mailbox{entry: e, owner: e.Owner(spool.Config), rank: rankReal}
		switch {
		case e.Deleted():
			m.rank = rankTombstone
		case e.Intermediate() || e.Remote() || e.Partition == "":
			m.rank = rankOther
		}
		if old, ok := t[e.UniqueID]; !ok || m.rank > old.rank {
			t[e.UniqueID] = m
		}
		return nil
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing mailboxes.db: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// owners returns every userid owning a mailbox that exists, sorted.
func (t mailboxTable) owners() []string {
	set := make(map[string]bool)
	for _, m := range t {
		if m.owner != "" && m.rank > rankTombstone {
			set[m.owner] = true
		}
	}
	users := make([]string, 0, len(set))
	for u := range set {
		users = append(users, u)
	}
	sort.Strings(users)
	return users
}

// parseEntry decodes the keys T, I and P of an N value of mailboxes.db
// (imap/mboxlist.c mboxlist_parse_entry) and the name from its key.
func parseEntry(dbname, v []byte) (partition.Entry, error) {
	e := partition.Entry{Name: dbnameToName(string(dbname))}
	if len(v) == 0 || v[0] != '%' {
		// Cyrus 3.x converts pre-3.0 values when it upgrades the database.
		return e, errors.New("not a 3.x entry (no dlist)")
	}
	root, err := dlist.ParseSAX(v)
	if err != nil {
		return e, err
	}
	if root.Kind != dlist.KVList {
		return e, fmt.Errorf("value is a %s, not a kvlist", root.Kind)
	}
	for _, c := range root.Children {
		var err error
		switch c.Key {
		case "T":
			e.Type, err = c.Atom()
		case "I":
			e.UniqueID, err = c.Atom()
		case "P":
			e.Partition, err = c.Atom()
		}
		if err != nil {
			return e, fmt.Errorf("key %s: %w", c.Key, err)
		}
	}
	return e, nil
}

// dbnameToName converts a mailboxes.db name (domain, then 0x1D; components
// joined by 0x1F, holding literal dots) to an internal name ('!', '.', '^'
// for a literal dot), as partition does.
func dbnameToName(db string) string {
	var b strings.Builder
	if i := strings.IndexByte(db, 0x1D); i >= 0 {
		b.WriteString(db[:i])
		b.WriteByte('!')
		db = db[i+1:]
	}
	for i, p := range strings.Split(db, "\x1f") {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strings.ReplaceAll(p, ".", "^"))
	}
	return b.String()
}

// maxIndexHeader is more than the largest cyrus.index header (160 bytes).
const maxIndexHeader = 256

// internalSeenMin is the first cyrus.index minor version that keeps the
// owner's \Seen state in the index (cyrus-spool.md §4).
const internalSeenMin = 12

// indexVersion returns the minor version of the mailbox's cyrus.index,
// read under a shared lock on the index. Only that one lock is held, and
// briefly, so it cannot take part in a deadlock; the inode loop follows a
// repack that replaced the file. A version too old for package partition
// is still returned, with no error: only its value matters here.
func indexVersion(ctx context.Context, spool *partition.Spool, e partition.Entry) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	path, err := spool.MetaPath(e, partition.FileIndex)
	if err != nil {
		return 0, err
	}
	f, err := lock.OpenLocked(path, os.O_RDONLY, false)
	if err != nil {
		return 0, fmt.Errorf("opening index of %s: %w", e.Name, err)
	}
	defer f.Close()
	b := make([]byte, maxIndexHeader)
	n, err := f.ReadAt(b, 0)
	if n < 12 {
		if err == nil {
			err = errors.New("short read")
		}
		return 0, fmt.Errorf("reading index of %s: %s: %w", e.Name, path, err)
	}
	h, err := partition.ParseIndexHeader(b[:n])
	if err != nil {
		if errors.Is(err, partition.ErrVersion) && h.MinorVersion < internalSeenMin {
			return h.MinorVersion, nil
		}
		return 0, fmt.Errorf("reading index of %s: %s: %w", e.Name, path, err)
	}
	return h.MinorVersion, nil
}
