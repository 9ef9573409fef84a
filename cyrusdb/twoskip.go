package cyrusdb

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/mbtool/mbtool/lock"
)

// Window sizes of the read cursors: a walk reads records in file order in
// large windows; a lookup jumps around and reads one record head at a time.
const (
	walkWindow   = 64 << 10
	lookupWindow = 1 << 10
)

// Twoskip is a read-only view of one committed state of a twoskip file.
//
// A Twoskip from OpenTwoskip holds a shared fcntl lock on the file from
// OpenTwoskip until Close, and reads with ReadAt on the locked descriptor.
// Cyrus writers take the exclusive lock for every transaction and
// checkpoint, so while the lock is held the file does not change and every
// ForEach and Get sees the same committed state, with memory independent of
// the file size. The price is that Cyrus writers of this database wait
// until Close: for mailboxes.db that is every mailbox creation, rename and
// deletion on the server. Close promptly; to walk a huge database while
// Cyrus runs, copy what is needed in the callback and do slow work after
// Close.
//
// The methods may be called from several goroutines at once, but not
// concurrently with Close.
type Twoskip struct {
	name  string
	r     io.ReaderAt
	f     *os.File // locked file, nil for ReadTwoskip
	hdr   TwoskipHeader
	end   int64 // logical end, current_size
	top   int   // level of the DUMMY
	clean bool  // not DIRTY and file size == current_size
	dummy record

	cacheMu sync.RWMutex
	cache   map[uint64]cachedNode // upper-level records by the offset leading to them
	pages   *pageCache            // what lookups read through, for a clean file (pages.go)
	closed  atomic.Bool
}

// OpenTwoskip opens the twoskip file at path read-only and takes a shared
// OFD lock on it, following Cyrus's reader rule: lock, then reopen if a
// checkpoint renamed a new file into place meanwhile (lock.OpenLocked). The
// lock is held until Close.
//
// A file that is not clean (DIRTY set, or longer than current_size) was left
// by a crashed writer; Cyrus would recover it under the exclusive lock
// before reading. OpenTwoskip does not write: it reads the last committed
// state, which is what recovery restores.
func OpenTwoskip(path string) (*Twoskip, error) {
	f, err := lock.OpenLocked(path, os.O_RDONLY, false)
	if err != nil {
		return nil, fmt.Errorf("cyrusdb: opening twoskip: %w", err)
	}
	return OpenTwoskipFile(path, f)
}

// OpenTwoskipFile is OpenTwoskip of a file the caller opened and locked
// (shared or exclusive) itself; the Twoskip owns f from then on, and
// closes it on an error too.
func OpenTwoskipFile(path string, f *os.File) (*Twoskip, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cyrusdb: opening twoskip: %w", err)
	}
	db, err := ReadTwoskip(path, f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	db.f = f
	return db, nil
}

// ReadTwoskip reads the header of the twoskip file of the given size in r
// and returns a view of its last committed state. It takes no lock; the
// caller keeps r unchanged while the Twoskip is in use. name is used in
// errors. A zero-length file is an empty database, as for Cyrus, which
// initialises such a file on first open.
func ReadTwoskip(name string, r io.ReaderAt, size int64) (*Twoskip, error) {
	db := &Twoskip{name: name, r: r, clean: true}
	if size == 0 {
		return db, nil
	}
	if size < headerSize {
		return nil, &CorruptError{name, 0, fmt.Sprintf("file of %d bytes is shorter than the header", size)}
	}
	var hb [headerSize]byte
	if n, err := r.ReadAt(hb[:], 0); n < headerSize {
		return nil, fmt.Errorf("cyrusdb: %s: reading header: %w", name, eofUnexpected(err))
	}
	h, err := parseHeader(name, hb[:])
	if err != nil {
		return nil, err
	}
	switch {
	case h.CurrentSize < firstOffset || h.CurrentSize%8 != 0:
		return nil, &CorruptError{name, 48, fmt.Sprintf("bad current_size %d", h.CurrentSize)}
	case h.CurrentSize > uint64(size):
		return nil, &CorruptError{name, 48, fmt.Sprintf("current_size %d beyond end of file %d", h.CurrentSize, size)}
	}
	db.hdr = h
	db.end = int64(h.CurrentSize)
	db.clean = !h.Dirty() && db.end == size
	c := db.cursor(lookupWindow)
	var dummy record
	if err := c.readRecord(dummyOffset, &dummy); err != nil {
		return nil, err
	}
	if dummy.typ != typeDummy || dummy.level < 1 {
		return nil, &CorruptError{name, dummyOffset, fmt.Sprintf("bad dummy record (type %q, level %d)", dummy.typ, dummy.level)}
	}
	db.top = dummy.level
	db.dummy = dummy
	if _, ok := r.(*os.File); ok && db.clean {
		// Only a file costs a system call per read.
		db.pages = newPageCache(r, db.end)
	}
	return db, nil
}

func eofUnexpected(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// cursor returns a cursor of the given window; a lookup's (lookupWindow)
// reads through the page cache when the view has one.
func (db *Twoskip) cursor(window int) *cursor {
	var r io.ReaderAt = db.r
	if window == lookupWindow && db.pages != nil {
		r = db.pages
	}
	return newCursor(db.name, r, db.end, int(min(int64(window), db.end)))
}

// Header returns the file's header as read at open.
func (db *Twoskip) Header() TwoskipHeader { return db.hdr }

// NumRecords returns the number of live keys the header records.
func (db *Twoskip) NumRecords() uint64 { return db.hdr.NumRecords }

// Generation returns the header's generation, which every checkpoint
// increments; 0 for an empty (zero-length) file.
func (db *Twoskip) Generation() uint64 { return db.hdr.Generation }

// Clean reports whether the file was clean: DIRTY clear and the file size
// equal to current_size. A reader of an unclean file sees the last
// committed state.
func (db *Twoskip) Clean() bool { return db.clean }

// Close releases the lock and closes the file, for a Twoskip from
// OpenTwoskip. Later calls of any method return ErrClosed.
func (db *Twoskip) Close() error {
	if db.closed.Swap(true) {
		return ErrClosed
	}
	db.DropPages()
	if db.f != nil {
		if err := db.f.Close(); err != nil {
			return fmt.Errorf("cyrusdb: closing %s: %w", db.name, err)
		}
	}
	return nil
}

// maxSteps bounds the records any walk may visit: records are at least 24
// bytes and never overlap, so a longer walk is a pointer cycle.
func (db *Twoskip) maxSteps() int64 { return db.end/8 + 1 }

// ForEach calls fn for every live record whose key starts with prefix, in
// key order (KeyLess), with the state as of the last commit. key and value
// are valid only during the call. If fn returns an error, ForEach stops and
// returns it unchanged.
//
// Every record head and tail CRC on the way is checked and keys must
// strictly increase. A walk of the whole file (empty prefix) of a clean file
// also checks every skip-list level's links and the header's record count,
// as cyr_dbtool consistent does. Violations are reported as *CorruptError,
// possibly after fn has seen the records before the damage.
func (db *Twoskip) ForEach(prefix []byte, fn func(key, value []byte) error) error {
	return db.ForEachFrom(prefix, nil, fn)
}

// ForEachFrom is ForEach over the records whose key also sorts at or
// after start: one search down the skip list to the first of them, so a
// walk resumed where an earlier one stopped costs O(log n) to start. A
// walk with a start does not check the upper levels' links.
func (db *Twoskip) ForEachFrom(prefix, start []byte, fn func(key, value []byte) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.end == 0 {
		return nil
	}
	c := db.cursor(walkWindow)
	rec := db.dummy
	// fwd[i] is the pointer on level i still to be matched by a record,
	// and from[i] the record it came from; only for a full check.
	var fwd, from [maxLevel]uint64
	target := prefix
	if KeyLess(prefix, start) {
		target = start
	}
	check := len(target) == 0 && db.clean
	var count uint64 // live records visited
	defer func() { counters.walkedRecords.Add(int64(count)) }()
	if len(target) == 0 {
		counters.walks.Add(1)
	}
	for i := 1; i < db.top; i++ {
		fwd[i], from[i] = c.next(&rec, i), dummyOffset
	}
	off := c.next(&rec, 0)
	if len(target) > 0 {
		var err error
		if off, err = db.search(db.cursor(lookupWindow), target, nil); err != nil {
			return err
		}
	}
	var prev []byte
	for steps := int64(0); off != 0; steps++ {
		if steps > db.maxSteps() {
			return c.corrupt(int64(off), "pointer cycle: more records than the file can hold")
		}
		if err := c.readRecord(off, &rec); err != nil {
			return err
		}
		if rec.typ == typeDelete {
			off = rec.ptr[0]
			continue
		}
		if rec.typ != typeRecord || rec.level == 0 {
			return c.corrupt(rec.off, "unexpected record (type %q, level %d) in level 0 chain", rec.typ, rec.level)
		}
		key, value, err := c.readData(&rec)
		if err != nil {
			return err
		}
		if len(key) == 0 || prev != nil && !KeyLess(prev, key) {
			return c.corrupt(rec.off, "key %q out of order", key)
		}
		prev = append(prev[:0], key...)
		count++
		if check {
			for i := 1; i < rec.level; i++ {
				if fwd[i] != off {
					return c.corrupt(int64(from[i]), "broken link at level %d: points to %d, expected %d", i, fwd[i], off)
				}
				fwd[i], from[i] = c.next(&rec, i), off
			}
		}
		if len(prefix) > 0 && !bytes.HasPrefix(key, prefix) {
			if KeyLess(prefix, key) {
				return nil
			}
		} else if err := fn(key, value); err != nil {
			return err
		}
		off = c.next(&rec, 0)
	}
	if check {
		for i := 1; i < db.top; i++ {
			if fwd[i] != 0 {
				return c.corrupt(int64(from[i]), "broken link at level %d: points to %d past the last record", i, fwd[i])
			}
		}
		if count != db.hdr.NumRecords {
			return &CorruptError{db.name, 32, fmt.Sprintf("num_records is %d but %d records found", db.hdr.NumRecords, count)}
		}
	}
	return nil
}

// Check walks the whole database and checks it as ForEach does with an
// empty prefix: CRCs and key order always, and for a clean file also every
// level's links and the record count (cyr_dbtool consistent). An unclean
// file's upper levels may hold a crashed writer's half-made links, which
// Cyrus's recovery repairs, so they are not checked.
func (db *Twoskip) Check() error {
	return db.ForEach(nil, func(_, _ []byte) error { return nil })
}

// Get returns a copy of the value stored under key in the last committed
// state, and whether the key exists. It searches the skip list from the
// top level down, as Cyrus does, O(log n) record reads; in an unclean file
// it steps down a level wherever a crashed writer's half-made link points
// past the last commit.
func (db *Twoskip) Get(key []byte) (value []byte, ok bool, err error) {
	if db.closed.Load() {
		return nil, false, ErrClosed
	}
	if db.end == 0 || len(key) == 0 {
		return nil, false, nil
	}
	c := db.cursor(lookupWindow)
	var found []byte
	if _, err := db.search(c, key, &found); err != nil {
		return nil, false, err
	}
	return found, found != nil, nil
}

// search returns the offset of the first live record whose key is at or
// after target (0 if none). If value is not nil and that record's key
// equals target, *value is set to a copy of its value. Every record whose
// key is compared has both CRCs checked.
func (db *Twoskip) search(c *cursor, target []byte, value *[]byte) (uint64, error) {
	var rec record
	cur := db.dummy
	top := db.top
	var curKey, lastKey []byte
	var lastOff, result uint64
	lastCmp := 0
	steps := int64(0)
	// ceil is the highest level the search may climb back to: the level
	// below the last one left because its next record is at or after
	// target (above it, nothing before target is left to skip).
	level, ceil := top, top
	for level > 0 {
		off := c.next(&cur, level-1)
		if off == 0 || level > 1 && off >= uint64(db.end) {
			// An upper-level pointer at or past the logical end is a
			// crashed writer's half-made link: the committed successor
			// on that level is unknown, but going down a level from
			// here is always right (level 0 keeps the committed
			// pointer). The next record reached below gives the
			// levels back (see the climb at the end of the loop).
			result = 0
			if off == 0 {
				ceil = level - 1
			}
			level--
			continue
		}
		if steps++; steps > db.maxSteps() {
			return 0, c.corrupt(int64(off), "pointer cycle: more records than the file can hold")
		}
		if off != lastOff {
			key, v, end, err := db.node(c, off, level, &rec)
			if err != nil {
				return 0, err
			}
			if end {
				result = 0
				level--
				ceil = level
				continue
			}
			lastOff, lastCmp = off, bytes.Compare(key, target)
			lastKey = append(lastKey[:0], key...)
			if lastCmp == 0 && value != nil {
				if v == nil {
					if _, v, err = c.readData(&rec); err != nil {
						return 0, err
					}
				}
				*value = append([]byte{}, v...)
			}
		}
		if curKey != nil && !KeyLess(curKey, lastKey) {
			return 0, c.corrupt(rec.off, "key %q out of order on level %d", lastKey, level-1)
		}
		if lastCmp >= 0 {
			result = uint64(rec.off)
			level--
			ceil = level
			continue
		}
		cur = rec
		curKey = append(curKey[:0], lastKey...)
		// Climb back to the record's own levels (never above ceil): in a
		// clean file this never climbs, since a record reached on level
		// i has no level above i below ceil; past a half-made link it
		// takes the search off level 0, so a crashed writer's record of
		// a high level costs O(log n) reads, not a walk of level 0.
		if l := min(rec.level, ceil); l > level {
			level = l
		}
	}
	return result, nil
}

// Lookups keep the records of the upper skip-list levels, which every
// search passes through, in a cache of bounded size: records on level
// cacheLevel and above (one in 2^(cacheLevel-1)), at most cacheMax of them.
const (
	cacheLevel = 5
	cacheMax   = 4096
)

// cachedNode is a checked record head and its key.
type cachedNode struct {
	rec record
	key []byte
}

// node loads into rec the record that off leads to on the given level,
// following one DELETE as Cyrus's read_skipdelete does, with its head and
// tail checked. end reports a DELETE that ends the list. value is nil when
// the record came from the cache.
func (db *Twoskip) node(c *cursor, off uint64, level int, rec *record) (key, value []byte, end bool, err error) {
	db.cacheMu.RLock()
	n, ok := db.cache[off]
	db.cacheMu.RUnlock()
	if ok {
		*rec = n.rec
		return n.key, nil, false, nil
	}
	if err := c.readRecord(off, rec); err != nil {
		return nil, nil, false, err
	}
	if rec.typ == typeDelete {
		if rec.ptr[0] == 0 {
			return nil, nil, true, nil
		}
		if err := c.readRecord(rec.ptr[0], rec); err != nil {
			return nil, nil, false, err
		}
	}
	if rec.typ != typeRecord || rec.level < level {
		return nil, nil, false, c.corrupt(rec.off, "unexpected record (type %q, level %d) on level %d", rec.typ, rec.level, level-1)
	}
	key, value, err = c.readData(rec)
	if err != nil {
		return nil, nil, false, err
	}
	if len(key) == 0 {
		return nil, nil, false, c.corrupt(rec.off, "empty key")
	}
	if rec.level >= cacheLevel && db.clean {
		db.cacheMu.Lock()
		if db.cache == nil {
			db.cache = make(map[uint64]cachedNode)
		}
		if len(db.cache) < cacheMax {
			db.cache[off] = cachedNode{*rec, bytes.Clone(key)}
		}
		db.cacheMu.Unlock()
	}
	return key, value, false, nil
}
