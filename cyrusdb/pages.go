package cyrusdb

import (
	"io"
	"slices"
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
//
// A transaction's cache is also where its writes go (write-back): a
// write changes the cached pages and marks them dirty, and they reach
// the file when their slot is wanted by another page, or all at once
// when the transaction flushes before its commit. The records a
// transaction appends then reach the file in a few large writes, the
// heads it rewrites in place once per page however often they change,
// and its searches never read back what it wrote. Writing them in any
// order is safe: the transaction has made its DIRTY header durable
// before its first write (TwoskipTxn.markDirty), and recovery rebuilds
// the last commit from whatever subset of them reached the file.
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
// transaction, which holds the exclusive lock and writes through the
// cache (WriteAt, flush).
type pageCache struct {
	r   io.ReaderAt
	w   io.WriterAt // nil: read-only (a view); else write-back
	mu  sync.Mutex
	end int64 // logical end: the file's bytes, and those written since
	// disk is how much of the file is on disk (write-back: the pages
	// past it exist only in the cache, dirty).
	disk  int64
	slab  []byte
	tag   [slots]int64 // page number in each slot, plus 1 (0: empty)
	dirty [slots]bool
}

func newPageCache(r io.ReaderAt, end int64) *pageCache {
	return &pageCache{r: r, end: end, disk: end}
}

// newWriteCache returns the write-back cache of a transaction on f, whose
// size is end.
func newWriteCache(f interface {
	io.ReaderAt
	io.WriterAt
}, end int64) *pageCache {
	return &pageCache{r: f, w: f, end: end, disk: end}
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
		// What the cache holds dirty must be in the file first.
		if err := pc.flushLocked(); err != nil {
			return 0, err
		}
		return pc.r.ReadAt(p, off)
	}
	done := 0
	for n := off / pageSize; done < len(p); n++ {
		pg, err := pc.page(n)
		if err != nil {
			return 0, err
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

// page returns the slot of page n, read into it if missing (a dirty page
// in the slot is written out first). Bytes of the page past what the
// file holds on disk are zero until written.
func (pc *pageCache) page(n int64) ([]byte, error) {
	if pc.slab == nil {
		pc.slab = getSlab()
	}
	s := int(n % slots)
	pg := pc.slab[s*pageSize : (s+1)*pageSize]
	if pc.tag[s] == n+1 {
		return pg, nil
	}
	if pc.dirty[s] {
		if err := pc.writeRun(s, 1); err != nil {
			return nil, err
		}
	}
	pc.tag[s] = 0
	want := max(min(int64(pageSize), pc.disk-n*pageSize), 0)
	if want > 0 {
		if got, err := pc.r.ReadAt(pg[:want], n*pageSize); int64(got) < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	clear(pg[want:])
	pc.tag[s] = n + 1
	return pg, nil
}

// WriteAt writes b at off into the cached pages, which become dirty; the
// file sees them at the next flush (or eviction). A write larger than
// the cache goes to the file at once, after the dirty pages. An error
// leaves the cache and file as a failed write would: the caller (a
// transaction) makes it sticky and undoes by recovery.
func (pc *pageCache) WriteAt(b []byte, off int64) (int, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(b) == 0 {
		return 0, nil
	}
	if int64(len(b)) > (slots/2)*pageSize || off > pc.end {
		if err := pc.flushLocked(); err != nil {
			return 0, err
		}
		pc.forget(off, int64(len(b)))
		n, err := pc.writeThrough(b, off)
		return n, err
	}
	done := 0
	for n := off / pageSize; done < len(b); n++ {
		pg, err := pc.page(n)
		if err != nil {
			return done, err
		}
		a := int64(0)
		if done == 0 {
			a = off - n*pageSize
		}
		done += copy(pg[a:], b[done:])
		pc.dirty[n%slots] = true
	}
	pc.end = max(pc.end, off+int64(len(b)))
	return done, nil
}

// WriteThrough writes b at off to the file at once (a header, which must
// be durable before or after everything else), and into the cached pages
// it overlaps, without making them dirty.
func (pc *pageCache) WriteThrough(b []byte, off int64) (int, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for n := off / pageSize; n <= (off+int64(len(b))-1)/pageSize; n++ {
		s := n % slots
		if pc.tag[s] != n+1 {
			continue
		}
		lo, hi := max(off, n*pageSize), min(off+int64(len(b)), (n+1)*pageSize)
		copy(pc.slab[s*pageSize+lo-n*pageSize:], b[lo-off:hi-off])
	}
	return pc.writeThrough(b, off)
}

func (pc *pageCache) writeThrough(b []byte, off int64) (int, error) {
	if testHookWrite != nil {
		testHookWrite()
	}
	counters.writes.Add(1)
	n, err := pc.w.WriteAt(b, off)
	if err == nil {
		pc.disk = max(pc.disk, off+int64(n))
		pc.end = max(pc.end, pc.disk)
	}
	return n, err
}

// forget drops the cached pages that the n bytes at off overlap (their
// dirty bytes, if any, were flushed).
func (pc *pageCache) forget(off, n int64) {
	for p := off / pageSize; p <= (off+n-1)/pageSize; p++ {
		if s := p % slots; pc.tag[s] == p+1 {
			pc.tag[s], pc.dirty[s] = 0, false
		}
	}
}

// flush writes every dirty page to the file, in file order, runs of
// consecutive pages in one write each: the records a transaction
// appended go out as one write, however many pages they fill.
func (pc *pageCache) flush() error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.flushLocked()
}

func (pc *pageCache) flushLocked() error {
	var order []int
	for s := range slots {
		if pc.dirty[s] {
			order = append(order, s)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return int(pc.tag[a] - pc.tag[b]) })
	for i := 0; i < len(order); {
		// A run: consecutive pages in consecutive slots.
		j := i + 1
		for j < len(order) && order[j] == order[j-1]+1 && pc.tag[order[j]] == pc.tag[order[j-1]]+1 {
			j++
		}
		if err := pc.writeRun(order[i], j-i); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// writeRun writes the k dirty pages in slots s..s+k-1 (consecutive pages)
// in one write, the last up to end.
func (pc *pageCache) writeRun(s, k int) error {
	first := pc.tag[s] - 1
	n := min(int64(k)*pageSize, pc.end-first*pageSize)
	if _, err := pc.writeThrough(pc.slab[s*pageSize:int64(s*pageSize)+n], first*pageSize); err != nil {
		return err
	}
	for i := s; i < s+k; i++ {
		pc.dirty[i] = false
	}
	return nil
}

// wrote forgets the cached pages that the n bytes written at off overlap,
// and moves the end to end: for a view's cache when its owner wrote the
// file itself (tests).
func (pc *pageCache) wrote(off, n, end int64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if n > 0 {
		pc.forget(off, n)
	}
	pc.end, pc.disk = end, end
}

// drop empties the cache, its slab kept for the next cache; dirty pages
// are discarded (an aborted transaction).
func (pc *pageCache) drop() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.slab != nil {
		putSlab(pc.slab)
		pc.slab = nil
	}
	pc.tag = [slots]int64{}
	pc.dirty = [slots]bool{}
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
