package seencleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

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
// partition.Spool.Mailboxes leaves out. Memory is one small entry per
// mailbox.
func loadMailboxes(spool *partition.Spool) (mailboxTable, error) {
	t := make(mailboxTable)
	err := spool.AllEntries(func(e partition.Entry) error {
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

// maxIndexHeader is more than the largest cyrus.index header (160 bytes).
const maxIndexHeader = 256

// internalSeenMin is the first cyrus.index minor version that keeps the
// owner's \Seen state in the index (docs/cyrus/files.md §3).
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
	f, err := lock.OpenLockedContext(ctx, path, os.O_RDONLY, false)
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
