package partition

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/lock"
)

// mboxHandle keeps mailboxes.db open between lookups, as a Cyrus process
// keeps its databases open (lib/cyrusdb_twoskip.c read_lock): each read
// takes the shared lock, checks that the path still names the open file
// (a checkpoint renames a new file into place: lock.Relock), reads the
// header, and reuses the view of the previous read, with its cache of the
// upper skip-list records, while header and size are unchanged; then it
// unlocks. Per lookup that is two fcntl calls, two stats and the header
// and record reads, where opening the file each time also cost an open, a
// close and the reads the cache saves.
type mboxHandle struct {
	mu   sync.Mutex
	f    *os.File
	view *cyrusdb.Twoskip
	hdr  [64]byte // the header the view was made from
	size int64
	// stamp names the committed state the view shows (viewStamps):
	// an Entry read from it carries the stamp, and while the view is
	// reused the entry is still what mailboxes.db says (Spool.current).
	stamp uint64
}

// viewStamps numbers the views of mailboxes.db of every Spool, so that
// a stamp never names two states.
var viewStamps atomic.Uint64

func (h *mboxHandle) drop() {
	if h.f != nil {
		h.f.Close()
	}
	h.f, h.view, h.stamp = nil, nil, 0
}

// withMboxlist calls fn with the committed state of mailboxes.db under its
// shared lock (a leaf lock: docs/cyrus/locks.md §3, §4.4) and the stamp of
// that state (mboxHandle.stamp). fn must not keep the view.
func (s *Spool) withMboxlist(fn func(db *cyrusdb.Twoskip, stamp uint64) error) error {
	h := &s.mboxdb
	h.mu.Lock()
	defer h.mu.Unlock()
	path := s.Config.MboxlistPath
	var fi os.FileInfo
	if h.f != nil {
		var err error
		// The FileInfo read under the lock gives the size too.
		fi, err = lock.RelockStat(context.Background(), h.f, path, false)
		if err != nil || fi == nil {
			h.drop() // replaced by a checkpoint (or gone): open it anew
		}
	}
	if h.f == nil {
		f, err := lock.OpenLocked(path, os.O_RDONLY, false)
		if err != nil {
			return fmt.Errorf("opening mailboxes.db: %w", err)
		}
		h.f = f
		if fi, err = h.f.Stat(); err != nil {
			h.drop()
			return fmt.Errorf("mailboxes.db: %w", err)
		}
	}
	size := fi.Size()
	err := h.read(path, size, fn)
	if uerr := lock.Unlock(h.f); uerr != nil {
		h.drop()
		if err == nil {
			err = fmt.Errorf("unlocking mailboxes.db: %w", uerr)
		}
	}
	return err
}

// read makes or reuses the view of the locked file and calls fn. A view
// is reused while the file (the same inode: RelockStat), its header and
// its size are unchanged: every commit appends and rewrites the header,
// and a checkpoint renames a new file into place, so the committed
// records are then the same.
func (h *mboxHandle) read(path string, size int64, fn func(db *cyrusdb.Twoskip, stamp uint64) error) error {
	var hdr [64]byte
	if size >= int64(len(hdr)) {
		if _, err := h.f.ReadAt(hdr[:], 0); err != nil {
			return fmt.Errorf("mailboxes.db %s: reading header: %w", path, err)
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
