package seencleanup

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/partition"
)

// mailbox is what the cleanup needs to know about the mailbox a seen
// record's uniqueid names.
type mailbox struct {
	entry partition.Entry // the N record of mailboxes.db
	owner string          // "" for shared mailboxes
	// kind is how alive the mailbox is: a Tombstone also when no entry
	// carries the uniqueid; Local for a mailbox with files, DELETED.*
	// ones included (a deleted mailbox leaves a tombstone under its old
	// name and the mailbox under DELETED.*, still its owner's).
	kind partition.Liveness
}

// lookupMailbox returns what mailboxes.db says of uniqueid now, as
// cyr_userseen's walk of every entry would find it, including the deleted
// hierarchy (DELETED.user.alice.X.<hex>, still owned by alice), tombstones
// and intermediates: partition.Spool.LookupID, O(log n) per record, so
// that no table of every mailbox is held. For a gone mailbox, entry is the
// tombstone still carrying the uniqueid, or the zero Entry.
func lookupMailbox(spool *partition.Spool, uniqueid string) (mailbox, error) {
	e, ok, err := spool.LookupID(uniqueid)
	if err != nil {
		return mailbox{}, err
	}
	return toMailbox(spool, e, ok), nil
}

func toMailbox(spool *partition.Spool, e partition.Entry, ok bool) mailbox {
	if !ok {
		return mailbox{}
	}
	return mailbox{entry: e, owner: e.Owner(spool.Config), kind: spool.Liveness(e)}
}

// cacheGeneration is how many uniqueids a mailboxCache generation holds;
// the cache holds at most two generations.
const cacheGeneration = 4096

// lookupBatch is how many uniqueids lookupAll looks up under one hold of
// mailboxes.db's shared lock: enough that the pages at the top of the
// skip list are read once for many searches (at 200,001 mailboxes a hold
// per uniqueid made those reads most of the run's time), few enough that
// Cyrus waits no longer for the lock than for one small transaction.
const lookupBatch = 256

// mailboxCache remembers the answers of lookupMailbox for the listing, a
// bounded number of them: seen records of many users name the same few
// shared mailboxes, whose entries (a long ACL among them) would otherwise
// be searched for and parsed again for every user. Like the table of
// every mailbox it replaces, it shows mailboxes.db as it was when each
// uniqueid was first looked up; remove looks again without it. An entry
// keeps no ACL: the cleanup needs the name, uniqueid, partition and type.
// Two generations of at most cacheGeneration uniqueids each: a hit in the
// older one moves to the current one, and when the current one is full the
// older one is dropped, an approximation of least-recently-used eviction
// at the cost of two maps.
type mailboxCache struct {
	spool    *partition.Spool
	cur, old map[string]mailbox
}

func newMailboxCache(spool *partition.Spool) *mailboxCache {
	return &mailboxCache{spool: spool, cur: make(map[string]mailbox)}
}

// lookupAll is lookupMailbox for each of uniqueids, answered from the
// cache where it can be, the answers in their order.
// Those the cache does not hold are looked up together, lookupBatch under
// one hold of mailboxes.db (partition.Spool.LookupIDs).
func (c *mailboxCache) lookupAll(uniqueids []string) ([]mailbox, error) {
	out := make([]mailbox, len(uniqueids))
	var miss []string
	var at []int
	for i, id := range uniqueids {
		if m, ok := c.get(id); ok {
			out[i] = m
			continue
		}
		miss, at = append(miss, id), append(at, i)
	}
	for len(miss) > 0 {
		n := min(len(miss), lookupBatch)
		err := c.spool.LookupIDs(miss[:n], func(j int, e partition.Entry, ok bool) error {
			m := toMailbox(c.spool, e, ok)
			m.entry.ACL = nil
			out[at[j]] = m
			c.put(miss[j], m)
			return nil
		})
		if err != nil {
			return nil, err
		}
		miss, at = miss[n:], at[n:]
	}
	return out, nil
}

// get returns the cached answer for uniqueid, moving one from the older
// generation to the current one.
func (c *mailboxCache) get(uniqueid string) (mailbox, bool) {
	if m, ok := c.cur[uniqueid]; ok {
		return m, true
	}
	m, ok := c.old[uniqueid]
	if ok {
		c.put(uniqueid, m)
	}
	return m, ok
}

func (c *mailboxCache) put(uniqueid string, m mailbox) {
	if len(c.cur) >= cacheGeneration {
		c.old, c.cur = c.cur, make(map[string]mailbox, cacheGeneration)
	}
	c.cur[uniqueid] = m
}

// ownsMailbox reports whether user owns a real mailbox, the deleted
// hierarchy included: O(log n) plus the user's own mailboxes.
func ownsMailbox(spool *partition.Spool, user string) (bool, error) {
	boxes, err := spool.UserMailboxes(user)
	return len(boxes) > 0, err
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
