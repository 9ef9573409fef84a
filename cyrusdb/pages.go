package cyrusdb

import (
	"io"
	"sync"
)

// Searches read the file through a cache of its pages, kept for one hold
// of the lock: every search passes through the upper skip-list levels
// and the nodes near its key, so the searches of one transaction, or of
// one lock hold of a view, read the same pages again and again, one pread
// per record head without the cache. Cyrus maps the whole file instead.
//
// The cache is direct-mapped: page n lives in slot n % slots of one slab
// of slots*pageSize bytes, so a miss costs a pread into the slot and
// nothing else (no allocation, no map), and a search whose pages are not
// shared costs about what it did without the cache.
const (
	pageSize = 4 << 10
	slots    = 64 // 256 KiB
)

// slabs keeps the slab of a dropped cache for the next one: at most one,
// so what stays between lock holds is one slab, whatever the file.
var slabs struct {
	mu   sync.Mutex
	free []byte
}

func getSlab() []byte {
	slabs.mu.Lock()
	defer slabs.mu.Unlock()
	if s := slabs.free; s != nil {
		slabs.free = nil
		return s
	}
	return make([]byte, slots*pageSize)
}

func putSlab(s []byte) {
	slabs.mu.Lock()
	defer slabs.mu.Unlock()
	slabs.free = s
}

// pageCache is an io.ReaderAt over the committed bytes of a file below
// its logical end, valid while the file does not change under it: a view
// of a clean file while its lock is held (the caller of a view it keeps
// across holds drops the pages at each release: Twoskip.DropPages), or a
// transaction, which holds the exclusive lock and tells the cache of each
// of its own writes (wrote).
type pageCache struct {
	r    io.ReaderAt
	mu   sync.Mutex
	end  int64
	slab []byte
	tag  [slots]int64 // page number in each slot, plus 1 (0: empty)
}

func newPageCache(r io.ReaderAt, end int64) *pageCache {
	return &pageCache{r: r, end: end}
}

// ReadAt reads len(p) bytes at off, which lie below end (the cursor
// asks for nothing past it), from cached pages, reading a missing page
// into its slot.
func (pc *pageCache) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if off < 0 || off+int64(len(p)) > pc.end || int64(len(p)) > (slots-1)*pageSize {
		return pc.r.ReadAt(p, off)
	}
	if pc.slab == nil {
		pc.slab = getSlab()
	}
	done := 0
	for n := off / pageSize; done < len(p); n++ {
		s := int(n % slots)
		pg := pc.slab[s*pageSize : (s+1)*pageSize]
		if pc.tag[s] != n+1 {
			pc.tag[s] = 0
			want := min(int64(pageSize), pc.end-n*pageSize)
			if got, err := pc.r.ReadAt(pg[:want], n*pageSize); int64(got) < want {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
			pc.tag[s] = n + 1
		}
		a := int64(0)
		if done == 0 {
			a = off - n*pageSize
		}
		// A page holds bytes up to end only; p ends at or before it.
		done += copy(p[done:], pg[a:])
	}
	return done, nil
}

// wrote forgets the cached pages that the n bytes written at off overlap,
// and moves the end to end: a transaction's cache stays the file's as the
// transaction appends records and rewrites heads in place.
func (pc *pageCache) wrote(off, n, end int64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if n > 0 {
		for p := off / pageSize; p <= (off+n-1)/pageSize; p++ {
			if s := p % slots; pc.tag[s] == p+1 {
				pc.tag[s] = 0
			}
		}
	}
	pc.end = end
}

// drop empties the cache, its slab kept for the next cache.
func (pc *pageCache) drop() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.slab != nil {
		putSlab(pc.slab)
		pc.slab = nil
	}
	pc.tag = [slots]int64{}
}

// DropPages empties the view's page cache (its upper-level records stay
// cached). A caller that keeps a view across lock holds (partition's
// dbHandle) calls it before each release: the pages are valid only while
// the lock is held, and what the view keeps between uses stays small.
func (db *Twoskip) DropPages() {
	if db.pages != nil {
		db.pages.drop()
	}
}
