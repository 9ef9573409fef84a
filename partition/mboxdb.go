package partition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/lock"
)

// dbHandle keeps a twoskip database (mailboxes.db, annotations.db) open
// between reads, as a Cyrus process keeps its databases open
// (lib/cyrusdb_twoskip.c read_lock): each read takes the shared lock,
// checks that the path still names the open file (a checkpoint renames a
// new file into place: lock.RelockSize), reads the header, and reuses the view
// of the previous read, with its cache of the upper skip-list records,
// while header and size are unchanged; then it unlocks. Per read that is
// two fcntl calls, one stat of the path (the open file's inode, which
// does not change, is read once at the open) and the header and record
// reads, where opening the file each time also cost an open, a close,
// the walk from the root and the reads the cache saves.
type dbHandle struct {
	// holds counts the holds of the lock (with), for the tests that
	// count them (Spool.MailboxesHolds).
	holds atomic.Int64
	mu    sync.Mutex
	f     *os.File
	fi    os.FileInfo // f's, from its open
	id    lock.ID     // which file f is (lock.RelockSize), from fi
	view  *cyrusdb.Twoskip
	hdr   [64]byte // the header the view was made from
	size  int64
	// stamp names the committed state the view shows (viewStamps):
	// an Entry read from it carries the stamp, and while the view is
	// reused the entry is still what mailboxes.db says (Spool.current).
	stamp uint64
}

// errNoDB is what an open function of dbHandle.with returns for a
// database whose absence means it is empty (annotations.db): with
// returns it as is, unwrapped, since the caller drops it (a dump would
// otherwise format an error for every mailbox where annotations.db does
// not exist).
var errNoDB = errors.New("database does not exist")

// viewStamps numbers the views of the databases of every Spool, so that
// a stamp never names two states.
var viewStamps atomic.Uint64

func (h *dbHandle) drop() {
	if h.f != nil {
		h.f.Close()
	}
	h.f, h.fi, h.id, h.view, h.stamp = nil, nil, lock.ID{}, nil, 0
}

// withMboxlist calls fn with the committed state of mailboxes.db under its
// shared lock (a leaf lock: docs/cyrus/locks.md §3, §4.4) and the stamp of
// that state (dbHandle.stamp). fn must not keep the view.
func (s *Spool) withMboxlist(fn func(db *cyrusdb.Twoskip, stamp uint64) error) error {
	path := s.Config.MboxlistPath
	return s.mboxdb.with("mailboxes.db", path, func() (*os.File, error) {
		return lock.OpenLocked(path, os.O_RDONLY, false)
	}, fn)
}

// MailboxesHolds returns how many times s has taken mailboxes.db's
// shared lock for reading (each lookup's hold, each ReadMailboxes), for
// tests and benchmarks that count them: a count cannot be fooled by a
// busy machine the way a timing can.
func (s *Spool) MailboxesHolds() int64 { return s.mboxdb.holds.Load() }

// with calls fn with the committed state of the database at path under
// its shared lock, opened and locked by open the first time (and after a
// checkpoint replaced the file), and relocked on the kept descriptor
// after that. An error from open is returned wrapped, so that
// errors.Is(err, fs.ErrNotExist) tells a missing database.
func (h *dbHandle) with(what, path string, open func() (*os.File, error), fn func(db *cyrusdb.Twoskip, stamp uint64) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holds.Add(1)
	var size int64
	if h.f != nil {
		var err error
		var ok bool
		// The size read under the lock.
		size, ok, err = lock.RelockSize(context.Background(), h.f, h.id, path, false)
		if err != nil || !ok {
			h.drop() // replaced by a checkpoint (or gone): open it anew
		}
	}
	if h.f == nil {
		f, err := open()
		if err == errNoDB {
			return err
		}
		if err != nil {
			return fmt.Errorf("opening %s: %w", what, err)
		}
		h.f = f
		fi, err := h.f.Stat()
		if err != nil {
			h.drop()
			return fmt.Errorf("%s: %w", what, err)
		}
		id, ok := lock.FileID(fi)
		if !ok {
			h.drop()
			return fmt.Errorf("%s: no inode number", what)
		}
		h.fi, h.id, size = fi, id, fi.Size()
	}
	err := h.read(path, size, fn)
	if h.view != nil {
		// The pages the reads of this hold cached are valid only
		// while the lock is held (cyrusdb's pages.go).
		h.view.DropPages()
	}
	if uerr := lock.Unlock(h.f); uerr != nil {
		h.drop()
		if err == nil {
			err = fmt.Errorf("unlocking %s: %w", what, uerr)
		}
	}
	return err
}

// read makes or reuses the view of the locked file and calls fn. A view
// is reused while the file (the same inode: lock.RelockSize), its header and
// its size are unchanged: every commit appends and rewrites the header,
// and a checkpoint renames a new file into place, so the committed
// records are then the same.
//
// A view of a clean file (DIRTY clear, size equal to current_size) is
// reused on the size alone, without reading the header again
// (docs/cyrus/files.md §5): on one inode, current_size only grows, since
// every commit appends at least its COMMIT record before it writes the
// new current_size, and an abort or a recovery truncates back to
// current_size, never below; the file is never shorter than
// current_size. A file of the same inode whose size is still S, the
// current_size of the clean view, therefore has current_size S again,
// and the commit that made it is the view's: its committed records are
// the view's. (A view of an unclean file is not reused so: its file may
// be recovered and grow back to the same size by a new commit.)
func (h *dbHandle) read(path string, size int64, fn func(db *cyrusdb.Twoskip, stamp uint64) error) error {
	if h.view != nil && size == h.size && h.view.Clean() {
		return fn(h.view, h.stamp)
	}
	var hdr [64]byte
	if size >= int64(len(hdr)) {
		if _, err := h.f.ReadAt(hdr[:], 0); err != nil {
			// path names the database (mailboxes.db or annotations.db).
			return fmt.Errorf("%s: reading header: %w", path, err)
		}
	}
	if h.view == nil || size != h.size || !bytes.Equal(hdr[:], h.hdr[:]) {
		view, err := cyrusdb.ReadTwoskip(path, h.f, size)
		if err != nil {
			h.view, h.stamp = nil, 0
			return err
		}
		h.view, h.hdr, h.size, h.stamp = view, hdr, size, viewStamps.Add(1)
	}
	return fn(h.view, h.stamp)
}
