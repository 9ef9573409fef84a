package partition

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/lock"
)

// mboxHandle keeps mailboxes.db open between lookups, as a Cyrus process
// keeps its databases open (lib/cyrusdb_twoskip.c read_lock): each read
// takes the shared lock, checks that the path still names the open file
// (a checkpoint renames a new file into place), reads the header, and
// reuses the view of the previous read, with its cache of the upper
// skip-list records, while header and size are unchanged; then it
// unlocks. Per lookup that is two fcntl calls, two stats and the header
// and record reads, where opening the file each time also cost an open, a
// close and the reads the cache saves.
type mboxHandle struct {
	mu   sync.Mutex
	f    *os.File
	view *cyrusdb.Twoskip
	hdr  [64]byte // the header the view was made from
	size int64
}

func (h *mboxHandle) drop() {
	if h.f != nil {
		h.f.Close()
	}
	h.f, h.view = nil, nil
}

// withMboxlist calls fn with the committed state of mailboxes.db under its
// shared lock (a leaf lock: locking.md §0.3). fn must not keep the view.
func (s *Spool) withMboxlist(fn func(db *cyrusdb.Twoskip) error) error {
	h := &s.mboxdb
	h.mu.Lock()
	defer h.mu.Unlock()
	path := s.Config.MboxlistPath
	var size int64
	for tries := 0; ; tries++ {
		if tries == 100 {
			return fmt.Errorf("opening mailboxes.db %s: the file keeps being replaced", path)
		}
		if h.f == nil {
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("opening mailboxes.db: %w", err)
			}
			h.f = f
		}
		if err := lock.Shared(h.f); err != nil {
			h.drop()
			return fmt.Errorf("opening mailboxes.db: %w", err)
		}
		fi, err1 := h.f.Stat()
		pi, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			size = fi.Size()
			break
		}
		h.drop() // closing drops the lock
		if err2 != nil && !errors.Is(err2, fs.ErrNotExist) {
			return fmt.Errorf("opening mailboxes.db: %w", err2)
		}
	}
	err := h.read(path, size, fn)
	if uerr := lock.Unlock(h.f); uerr != nil {
		h.drop()
		if err == nil {
			err = fmt.Errorf("unlocking mailboxes.db: %w", uerr)
		}
	}
	return err
}

// read makes or reuses the view of the locked file and calls fn.
func (h *mboxHandle) read(path string, size int64, fn func(db *cyrusdb.Twoskip) error) error {
	var hdr [64]byte
	if size >= int64(len(hdr)) {
		if _, err := h.f.ReadAt(hdr[:], 0); err != nil {
			return fmt.Errorf("mailboxes.db %s: reading header: %w", path, err)
		}
	}
	if h.view == nil || size != h.size || !bytes.Equal(hdr[:], h.hdr[:]) {
		view, err := cyrusdb.ReadTwoskip(path, h.f, size)
		if err != nil {
			h.view = nil
			return err
		}
		h.view, h.hdr, h.size = view, hdr, size
	}
	return fn(h.view)
}
