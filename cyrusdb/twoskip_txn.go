package cyrusdb

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"sync"
)

// TwoskipTxn is a write transaction made in place on a twoskip file, the
// way Cyrus's own writer makes one (lib/cyrusdb_twoskip.c store_here,
// delete_here, stitch, mycommit): the header is marked DIRTY and synced
// first; each new record is appended with its forward pointers and the
// records before it on each of its levels get their pointers rewritten in
// place (level 0 in whichever of its two slots does not hold the committed
// pointer); Commit appends a COMMIT record, syncs, then writes the header
// with the new current_size and DIRTY clear and syncs again. A change costs
// O(log n) record reads and writes, however large the file. The writes
// between the DIRTY header and Commit's first sync go to the page cache
// and reach the file by pages (pages.go), in file order at the commit, so
// a transaction of many changes makes about one write per page it
// changed, not one per record and rewritten head.
//
// Until Commit's header write, readers (Cyrus's and ours) see the last
// committed state: every pointer they follow lies below current_size. A
// process killed at any point leaves a file that Cyrus's recovery, and
// Recover, bring back to that state.
//
// The caller holds the exclusive lock on f from BeginTwoskip until after
// Commit or Abort, as a Cyrus writer does.
type TwoskipTxn struct {
	name  string
	f     *os.File
	hdr   TwoskipHeader // CurrentSize is the committed end until Commit
	end   int64         // file end, this transaction's records included
	dirty bool          // the DIRTY header is on disk
	done  bool
	err   error // sticky: after a failed write only Abort is allowed

	// the location of the last search (Cyrus's skiploc)
	back, fwd [maxLevel]uint64
	rec       record // the record found, if exact
	exact     bool
	scratch   []byte
	// finger is the key of the last search, while back still holds its
	// predecessors (every search sets them, and Set moves them to the
	// record it adds): a search for a larger key starts on each level
	// from there instead of from the DUMMY, so a run of ascending keys
	// (a sorted batch) walks only the records between them.
	finger   []byte
	fingerOK bool
	fb, ff   [maxLevel]uint64 // the finger's back and fwd
	cur      *cursor          // reused by every search
	// pages caches what the transaction's searches read, and holds its
	// writes until they are flushed (pages.go: write-back): it holds
	// the exclusive lock, so only its own writes change the file.
	pages *pageCache
}

// Twoskip tuning, as in lib/cyrusdb_twoskip.c: a committed file is
// checkpointed (rewritten whole) when it is larger than minRewrite and
// more than twice the size it had after its last checkpoint.
const minRewrite = 16834

// BeginTwoskip starts a transaction on the twoskip file f, which the
// caller has locked exclusively; name is used in errors. A zero-length
// file is first initialised as an empty database (DUMMY, header), and a
// file a crashed writer left unclean is first recovered (Recover), as
// Cyrus does when it takes the write lock.
func BeginTwoskip(name string, f *os.File) (*TwoskipTxn, error) {
	t := &TwoskipTxn{name: name, f: f}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cyrusdb: %s: %w", name, err)
	}
	if fi.Size() == 0 {
		if err := WriteTwoskip(f, 1, func() ([]byte, []byte, bool) { return nil, nil, false }); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("cyrusdb: %s: fsync: %w", name, err)
		}
		if fi, err = f.Stat(); err != nil {
			return nil, fmt.Errorf("cyrusdb: %s: %w", name, err)
		}
	}
	if recovered, err := recoverFile(name, f, fi.Size()); err != nil {
		return nil, err
	} else if recovered {
		if fi, err = f.Stat(); err != nil {
			return nil, fmt.Errorf("cyrusdb: %s: %w", name, err)
		}
	}
	db, err := ReadTwoskip(name, f, fi.Size())
	if err != nil {
		return nil, err
	}
	if !db.Clean() {
		return nil, fmt.Errorf("cyrusdb: %s: not clean after recovery (is the file locked?)", name)
	}
	t.hdr, t.end = db.hdr, db.end
	t.pages = newWriteCache(f, t.end)
	return t, nil
}

// BeginTwoskipView is BeginTwoskip on f when the caller has just read
// db, a view of f (ReadTwoskip), under the exclusive lock it still
// holds, to check what it is about to change: the transaction starts
// from the view's committed state and takes over the pages its searches
// cached, so they are not read again. db must not be used afterwards. A
// view of a file that is not clean, or whose size changed, is no start:
// BeginTwoskip then reads f anew.
func BeginTwoskipView(db *Twoskip, f *os.File) (*TwoskipTxn, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cyrusdb: %s: %w", db.name, err)
	}
	if !db.clean || db.end == 0 || db.r != io.ReaderAt(f) || fi.Size() != db.end {
		db.DropPages()
		return BeginTwoskip(db.name, f)
	}
	t := &TwoskipTxn{name: db.name, f: f, hdr: db.hdr, end: db.end}
	if pc := db.pages; pc != nil {
		db.pages = nil
		pc.mu.Lock()
		pc.w, pc.end, pc.disk = f, db.end, db.end
		pc.mu.Unlock()
		t.pages = pc
	} else {
		t.pages = newWriteCache(f, t.end)
	}
	return t, nil
}

// cursor returns a reader of the file as this transaction sees it: one
// cursor, its window emptied (the transaction may have written since).
func (t *TwoskipTxn) cursor() *cursor {
	if t.cur == nil {
		var r io.ReaderAt = t.f
		if t.pages != nil {
			r = t.pages
		}
		t.cur = newCursor(t.name, r, t.end, lookupWindow)
	}
	t.cur.end, t.cur.wLen, t.cur.refills = t.end, 0, 0
	return t.cur
}

// dropPages puts the page cache's pages back in the pool when the
// transaction ends.
func (t *TwoskipTxn) dropPages() {
	if t.pages != nil {
		t.pages.drop()
		t.pages = nil
	}
}

// Header returns the header as it stands: CurrentSize is the committed
// size until Commit.
func (t *TwoskipTxn) Header() TwoskipHeader { return t.hdr }

// NeedsCheckpoint reports, after Commit, whether Cyrus would now rewrite
// the file by a checkpoint: larger than 16834 bytes and more than twice its
// size after the last checkpoint. Rewriting then keeps the total cost of n
// changes O(n log n) and the file within a constant factor of its content.
func (t *TwoskipTxn) NeedsCheckpoint() bool {
	return t.hdr.CurrentSize > minRewrite && t.hdr.CurrentSize > 2*t.hdr.RepackSize
}

// locate finds key as Cyrus's relocate does: for every level the last
// record before key (back) and what it points to (fwd); exact reports a
// live record with that key, loaded into t.rec with its tail CRC checked.
//
// A key after the previous search's (the finger: a sorted batch, as
// UpdateTwoskip makes its changes) is found from there, not from the
// DUMMY (climb; Cyrus's find_loc does so only for a key before the next
// record): the levels whose next record after the finger is
// already at or past key keep their predecessor, and the search goes
// down only from the lowest level that moves. Between neighbouring keys
// that is a few records, where a search from the head reads about two
// per level.
func (t *TwoskipTxn) locate(c *cursor, key []byte) error {
	var cur, next record
	t.exact = false
	var lastOff uint64
	cmp := -1
	level := maxLevel
	if t.fingerOK && bytes.Compare(t.finger, key) < 0 {
		h, err := t.climb(c, key, &cur, &next, &cmp, &lastOff)
		if err != nil {
			t.fingerOK = false
			return err
		}
		level = h
	} else {
		if err := c.readRecord(dummyOffset, &cur); err != nil {
			return err
		}
		if cur.typ != typeDummy || cur.level != maxLevel {
			return c.corrupt(dummyOffset, "bad dummy record (type %q, level %d)", cur.typ, cur.level)
		}
	}
	t.fingerOK = false
	steps := int64(0)
	for level > 0 {
		off := c.next(&cur, level-1)
		t.back[level-1], t.fwd[level-1] = uint64(cur.off), off
		if off != 0 && off != lastOff {
			lastOff = off
			if steps++; steps > t.end/8+1 {
				return c.corrupt(int64(off), "pointer cycle: more records than the file can hold")
			}
			if err := c.readRecord(off, &next); err != nil {
				return err
			}
			if next.typ == typeDelete {
				if next.ptr[0] == 0 {
					level--
					cmp = 1
					continue
				}
				if err := c.readRecord(next.ptr[0], &next); err != nil {
					return err
				}
			}
			if next.typ != typeRecord || next.level < level {
				return c.corrupt(next.off, "unexpected record (type %q, level %d) on level %d", next.typ, next.level, level-1)
			}
			k, _, err := c.readKey(&next)
			if err != nil {
				return err
			}
			if cmp = bytes.Compare(k, key); cmp < 0 {
				cur = next
				continue
			}
		}
		level--
	}
	// The finger: the predecessors and what follows them, before the
	// exact match's own pointers replace fwd.
	t.fb, t.ff = t.back, t.fwd
	if cmp == 0 {
		if _, _, err := c.readData(&next); err != nil {
			return err
		}
		t.exact, t.rec = true, next
		for i := 0; i < next.level; i++ {
			t.fwd[i] = c.next(&next, i)
		}
	}
	t.finger, t.fingerOK = append(t.finger[:0], key...), true
	return nil
}

// climb starts a search for key, which follows the finger, from the
// finger's position (fb, ff: on each level a record at or before the
// finger, and the record after it). Going up from level 0, it finds the
// lowest level h whose next record is at or past key (or absent): the
// predecessors of key on h and above are the finger's, and back and fwd
// get them. Below h, the next records it passed are before key: cur
// gets the one of level h-1, from which locate goes on down. next, cmp
// and lastOff are the record compared last at or past key, as locate's
// loop leaves them.
func (t *TwoskipTxn) climb(c *cursor, key []byte, cur, next *record, cmp *int, lastOff *uint64) (int, error) {
	h := 0
	var passed uint64 // the last record found before key
	for ; h < maxLevel; h++ {
		off := t.ff[h]
		if off == 0 {
			*cmp = 1
			break
		}
		if off == passed {
			continue // before key, and on this level too
		}
		if err := c.readRecord(off, next); err != nil {
			return 0, err
		}
		if next.typ == typeDelete && h == 0 {
			if next.ptr[0] == 0 {
				*cmp, *lastOff = 1, off
				break
			}
			if err := c.readRecord(next.ptr[0], next); err != nil {
				return 0, err
			}
		}
		if next.typ != typeRecord || next.level <= h {
			return 0, c.corrupt(next.off, "unexpected record (type %q, level %d) on level %d", next.typ, next.level, h)
		}
		k, _, err := c.readKey(next)
		if err != nil {
			return 0, err
		}
		if *cmp = bytes.Compare(k, key); *cmp >= 0 {
			*lastOff = off
			break
		}
		*cur, passed = *next, off
	}
	for i := h; i < maxLevel; i++ {
		t.back[i], t.fwd[i] = t.fb[i], t.ff[i]
	}
	return h, nil
}

// readKey returns rec's key without checking the tail CRC (Cyrus checks
// it on an exact match only, and so does locate).
func (c *cursor) readKey(rec *record) ([]byte, int64, error) {
	b, err := c.read(rec.dataOff(), rec.keyLen)
	return b, rec.keyLen, err
}

// Get returns a copy of the value of key as this transaction sees it.
func (t *TwoskipTxn) Get(key []byte) ([]byte, bool, error) {
	if err := t.usable(); err != nil {
		return nil, false, err
	}
	if len(key) == 0 {
		return nil, false, nil
	}
	c := t.cursor()
	if err := t.locate(c, key); err != nil || !t.exact {
		return nil, false, err
	}
	_, v, err := c.readData(&t.rec)
	if err != nil {
		return nil, false, err
	}
	return bytes.Clone(v), true, nil
}

func (t *TwoskipTxn) usable() error {
	if t.done {
		return ErrClosed
	}
	return t.err
}

// Set stores value under key, replacing any value it had.
func (t *TwoskipTxn) Set(key, value []byte) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	c := t.cursor()
	if err := t.locate(c, key); err != nil {
		return err
	}
	level := 0
	if t.exact {
		_, old, err := c.readData(&t.rec)
		if err != nil {
			return err
		}
		if bytes.Equal(old, value) {
			return nil // unchanged: save the I/O, as Cyrus does
		}
		level = t.rec.level
		t.hdr.NumRecords--
	}
	p := pendingHead{typ: typeRecord, level: randLevel(), keyLen: uint64(len(key)), valLen: uint64(len(value))}
	for i := 0; i < p.level; i++ {
		p.ptr[i+1] = t.fwd[i]
	}
	level = max(level, p.level)
	off, err := t.append(&p, key, value)
	if err != nil {
		return err
	}
	for i := 0; i < p.level; i++ {
		t.fwd[i] = uint64(off)
	}
	if err := t.stitch(level); err != nil {
		return err
	}
	// The finger: the new record, on its levels, and what it points
	// to; above them the predecessors and what stitch pointed them to.
	t.fb, t.ff = t.back, t.fwd
	for i := 0; i < p.level; i++ {
		t.fb[i], t.ff[i] = uint64(off), p.ptr[i+1]
	}
	t.hdr.NumRecords++
	return nil
}

// Delete removes key; a missing key is not an error.
func (t *TwoskipTxn) Delete(key []byte) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	c := t.cursor()
	if err := t.locate(c, key); err != nil || !t.exact {
		return err
	}
	// The DELETE points to the record after the deleted one.
	next := t.fwd[0]
	if next != 0 {
		var r record
		if err := c.readRecord(next, &r); err != nil {
			return err
		}
		if r.typ == typeDelete {
			next = r.ptr[0]
		}
	}
	p := pendingHead{typ: typeDelete}
	p.ptr[0] = next
	off, err := t.append(&p, nil, nil)
	if err != nil {
		return err
	}
	t.hdr.NumRecords--
	t.fwd[0] = uint64(off)
	if err := t.stitch(t.rec.level); err != nil {
		return err
	}
	// The finger: the predecessors, now pointing past the deleted
	// record (on level 0 to the DELETE).
	t.fb, t.ff = t.back, t.fwd
	return nil
}

// randLevel is Cyrus's randlvl(1, MAXLEVEL) with PROB 0.5 (a variable so
// that tests can choose the worst levels).
var randLevel = func() int {
	return 1 + min(countOnes(rand.Uint64()), maxLevel-1)
}

// SeedLevels makes the levels that transactions give new records come from
// a generator seeded with seed, as from Cyrus's rand() after srand(seed),
// until the returned function is called. It is for tests that count the
// work done (Counters): a record's size grows with its level, so with
// random levels the file sizes, and with them the moments at which a
// checkpoint rewrites a file (NeedsCheckpoint), change from run to run.
// It must not be called while transactions run.
func SeedLevels(seed uint64) (restore func()) {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	old := randLevel
	randLevel = func() int {
		mu.Lock()
		defer mu.Unlock()
		return 1 + min(countOnes(r.Uint64()), maxLevel-1)
	}
	return func() { randLevel = old }
}

func countOnes(z uint64) int {
	n := 0
	for z&1 == 1 {
		n++
		z >>= 1
	}
	return n
}

// append writes a new record at the end (after BLANK padding, as Cyrus's
// add_padding places it), first marking the header DIRTY.
func (t *TwoskipTxn) append(p *pendingHead, key, value []byte) (int64, error) {
	if err := t.markDirty(); err != nil {
		return 0, err
	}
	kl, vl := int64(len(key)), int64(len(value))
	pad := roundup8(kl+vl) - (kl + vl)
	p.tailCRC = crc32.Update(crc32.Update(crc32.Update(0, crc32.IEEETable, key), crc32.IEEETable, value), crc32.IEEETable, zeros[:pad])
	hl := headLen(p.level, p.keyLen, p.valLen)
	b := t.scratch[:0]
	if hl <= blockSize-8 {
		for (t.end+int64(len(b))+8)%blockSize > (t.end+int64(len(b))-8+int64(hl))%blockSize {
			b = append(b, blank...)
		}
	}
	off := t.end + int64(len(b))
	b = appendHead(b, p)
	b = append(append(append(b, key...), value...), zeros[:pad]...)
	t.scratch = b[:0]
	if err := t.writeAt(b, t.end); err != nil {
		return 0, err
	}
	t.end += int64(len(b))
	return off, nil
}

// testHookWrite, if set, runs before every write of a transaction or
// recovery (tests kill the process there).
var testHookWrite func()

// writeAt writes b at off: into the page cache, which writes it out by
// the next flush (Commit's), or to the file at once (recovery).
func (t *TwoskipTxn) writeAt(b []byte, off int64) error {
	var err error
	if t.pages != nil {
		_, err = t.pages.WriteAt(b, off)
	} else {
		if testHookWrite != nil {
			testHookWrite()
		}
		counters.writes.Add(1)
		_, err = t.f.WriteAt(b, off)
	}
	if err != nil {
		t.fingerOK = false
		t.err = fmt.Errorf("cyrusdb: %s: writing at offset %d: %w", t.name, off, err)
		return t.err
	}
	return nil
}

// flush writes out what the page cache holds dirty.
func (t *TwoskipTxn) flush() error {
	if t.pages == nil {
		return nil
	}
	return t.pages.flush()
}

// markDirty writes and syncs the header with DIRTY set, before anything
// else of the transaction is written.
func (t *TwoskipTxn) markDirty() error {
	if t.dirty {
		return nil
	}
	h := t.hdr
	h.Flags |= flagDirty
	if err := t.commitHeader(h); err != nil {
		return err
	}
	t.dirty = true
	return nil
}

// commitHeader writes the header h to the file at once (with the
// cached page that holds it) and syncs.
func (t *TwoskipTxn) commitHeader(h TwoskipHeader) error {
	b := appendHeader(nil, h)
	if t.pages == nil {
		if err := t.writeAt(b, 0); err != nil {
			return err
		}
	} else if _, err := t.pages.WriteThrough(b, 0); err != nil {
		t.err = fmt.Errorf("cyrusdb: %s: writing the header: %w", t.name, err)
		return t.err
	}
	if err := t.f.Sync(); err != nil {
		t.err = fmt.Errorf("cyrusdb: %s: fsync: %w", t.name, err)
		return t.err
	}
	return nil
}

// stitch points the records before the change, on levels 0..top-1, to
// fwd (Cyrus's stitch): each record is read and its head rewritten once.
func (t *TwoskipTxn) stitch(top int) error {
	c := t.cursor()
	var r record
	for level := 0; level < top; {
		if err := c.readRecord(t.back[level], &r); err != nil {
			return err
		}
		if r.level <= level {
			return c.corrupt(r.off, "record of level %d found as the predecessor on level %d", r.level, level)
		}
		for i := level; i < top && i < r.level; i++ {
			t.setLoc(&r, i, t.fwd[i])
		}
		if err := t.rewriteHead(c, &r); err != nil {
			return err
		}
		level = r.level
	}
	return nil
}

// setLoc is Cyrus's _setloc: level 0 keeps two slots; the one already
// written by this transaction (at or past the committed size) is written
// again, else the older (smaller) one, so the committed pointer survives.
func (t *TwoskipTxn) setLoc(r *record, level int, off uint64) {
	if level > 0 {
		r.ptr[level+1] = off
		return
	}
	cs := t.hdr.CurrentSize
	switch {
	case r.ptr[0] >= cs:
		r.ptr[0] = off
	case r.ptr[1] >= cs:
		r.ptr[1] = off
	case r.ptr[1] > r.ptr[0]:
		r.ptr[0] = off
	default:
		r.ptr[1] = off
	}
}

// rewriteHead writes r's head (type, lengths, pointers, CRCs) in place.
func (t *TwoskipTxn) rewriteHead(c *cursor, r *record) error {
	p := pendingHead{typ: r.typ, level: r.level, keyLen: uint64(r.keyLen), valLen: uint64(r.valLen), ptr: r.ptr, tailCRC: r.tailCRC}
	t.scratch = appendHead(t.scratch[:0], &p)
	c.wLen = 0 // the window may hold the old head
	return t.writeAt(t.scratch, r.off)
}

// Commit makes the transaction's changes the committed state: a COMMIT
// record pointing to where the transaction began, fsync, then the header
// with the new current_size and record count and DIRTY clear, fsync. A
// transaction that changed nothing writes nothing.
func (t *TwoskipTxn) Commit() error {
	if err := t.usable(); err != nil {
		return err
	}
	t.done = true
	defer t.dropPages()
	if !t.dirty {
		return nil
	}
	p := pendingHead{typ: typeCommit}
	p.ptr[0] = t.hdr.CurrentSize
	if _, err := t.append(&p, nil, nil); err != nil {
		return err
	}
	// Every record and rewritten head, in as few writes as the pages
	// they changed allow, then the sync that orders them before the
	// header.
	if err := t.flush(); err != nil {
		t.err = fmt.Errorf("cyrusdb: %s: writing: %w", t.name, err)
		return t.err
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("cyrusdb: %s: fsync: %w", t.name, err)
	}
	h := t.hdr
	h.CurrentSize = uint64(t.end)
	h.Flags &^= flagDirty
	if err := t.commitHeader(h); err != nil {
		return err
	}
	t.hdr = h
	counters.transactions.Add(1)
	return nil
}

// Abort undoes the transaction as Cyrus's myabort does, by recovery: the
// committed state is restored and the file truncated to it. After a failed
// write that may itself fail; the file then stays DIRTY, and the next
// writer (Cyrus or BeginTwoskip) recovers it.
func (t *TwoskipTxn) Abort() error {
	if t.done {
		return ErrClosed
	}
	t.done = true
	t.dropPages()
	if !t.dirty {
		return nil
	}
	fi, err := t.f.Stat()
	if err != nil {
		return err
	}
	_, err = recoverFile(t.name, t.f, fi.Size())
	return err
}

// Recover brings a twoskip file that a writer left unclean (killed in a
// transaction: DIRTY set, or the file longer than current_size) back to
// its last committed state, in place, as Cyrus's recovery1 does when it
// next takes the write lock: walking level 0 by the committed pointers,
// it zeroes level-0 slots past current_size, relinks every upper level,
// truncates the file to current_size, recounts the records and clears
// DIRTY. The caller holds the exclusive lock. It reports whether the file
// needed recovery; a clean file is left alone.
func Recover(name string, f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	return recoverFile(name, f, fi.Size())
}

func recoverFile(name string, f *os.File, size int64) (bool, error) {
	db, err := ReadTwoskip(name, f, size)
	if err != nil {
		return false, err
	}
	if db.Clean() || size == 0 {
		return false, nil
	}
	t := &TwoskipTxn{name: name, f: f, hdr: db.hdr, end: int64(db.hdr.CurrentSize)}
	if err := t.markDirty(); err != nil {
		return false, err
	}
	c := t.cursor()
	var prev, r, fix record
	if err := c.readRecord(dummyOffset, &prev); err != nil {
		return false, err
	}
	var prevAt, nextAt [maxLevel + 1]uint64 // by pointer slot, 2..maxLevel
	for i := 2; i <= maxLevel; i++ {
		prevAt[i], nextAt[i] = dummyOffset, prev.ptr[i]
	}
	zeroFuture := func(r *record) error {
		changed := false
		for i := 0; i < 2; i++ {
			if r.ptr[i] >= uint64(t.end) {
				r.ptr[i], changed = 0, true
			}
		}
		if changed {
			return t.rewriteHead(c, r)
		}
		return nil
	}
	if err := zeroFuture(&prev); err != nil {
		return false, err
	}
	var prevKey []byte
	var count uint64
	off := c.next(&prev, 0)
	for steps := int64(0); off != 0; steps++ {
		if steps > t.end/8+1 {
			return false, c.corrupt(int64(off), "pointer cycle: more records than the file can hold")
		}
		if err := c.readRecord(off, &r); err != nil {
			return false, err
		}
		if r.typ == typeDelete {
			off = r.ptr[0]
			continue
		}
		if r.typ != typeRecord || r.level == 0 {
			return false, c.corrupt(r.off, "unexpected record (type %q, level %d) in level 0 chain", r.typ, r.level)
		}
		key, _, err := c.readData(&r)
		if err != nil {
			return false, err
		}
		if prevKey != nil && !KeyLess(prevKey, key) {
			return false, c.corrupt(r.off, "key %q out of order", key)
		}
		prevKey = append(prevKey[:0], key...)
		for i := 2; i <= r.level; i++ {
			if nextAt[i] != uint64(r.off) {
				if err := c.readRecord(prevAt[i], &fix); err != nil {
					return false, err
				}
				fix.ptr[i] = uint64(r.off)
				if err := t.rewriteHead(c, &fix); err != nil {
					return false, err
				}
			}
			prevAt[i], nextAt[i] = uint64(r.off), r.ptr[i]
		}
		if err := zeroFuture(&r); err != nil {
			return false, err
		}
		count++
		off = c.next(&r, 0)
	}
	for i := 2; i <= maxLevel; i++ {
		if nextAt[i] != 0 {
			if err := c.readRecord(prevAt[i], &fix); err != nil {
				return false, err
			}
			fix.ptr[i] = 0
			if err := t.rewriteHead(c, &fix); err != nil {
				return false, err
			}
		}
	}
	if err := f.Truncate(int64(t.hdr.CurrentSize)); err != nil {
		return false, fmt.Errorf("cyrusdb: %s: truncating: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("cyrusdb: %s: fsync: %w", name, err)
	}
	h := t.hdr
	h.Flags &^= flagDirty
	h.NumRecords = count
	if err := t.commitHeader(h); err != nil {
		return false, err
	}
	return true, nil
}
