// Package guidtable is an exact table from message GUIDs to small
// fixed-size values whose memory stays flat however many GUIDs it holds.
//
// dump, verify and restore each remember every message GUID of a run
// (which files are already in the dump, the size of every file literal,
// where each staged file is). In a Go map that costs 40 to 100 bytes per
// message: 100 MB at a million messages, the one part of mbtool's memory
// that grew with the data. A Table keeps its most recent entries in a map
// (as many as fit in Options.MemLimit) and, when that is full, writes them
// out sorted by GUID as a run: an unlinked temporary file. Runs are merged
// two by two as they come to about the same size (a run is merged into
// the one before it when that one is at most twice its size), so there are
// never more than about log2(n/recent) of them, and each entry is copied
// that many times at most, sequentially.
//
// What stays in memory for a run is a Bloom filter of 14 bits per entry,
// so that a lookup of a GUID a run does not hold rarely reads it, and the
// first GUID of every 128 entries, so that one that it does hold costs one
// read of at most 128 entries: about 2 bytes per GUID in all. The files
// are read and written through the page cache, not the process's memory.
//
// The recent entries are the ones mbtool looks up most: a dump's records
// follow the file literals they refer to, so most lookups never reach a
// file.
//
// A Table is not safe for concurrent use. Entries are never removed.
package guidtable

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"slices"
	"sort"

	"github.com/mbtool/mbtool/guid"
)

// DefaultMemLimit bounds the memory of the recent entries when
// Options.MemLimit is zero. Tests lower it to send every entry to a file.
var DefaultMemLimit int64 = 4 << 20

const (
	blockEntries = 128 // entries per index entry, read at once by a lookup
	// A recent entry costs its slot in the arena and about 32 bytes in
	// the map, each up to twice that just after it grew.
	mapEntryCost = 64
	ioBuffer     = 256 << 10 // per file written or read in sequence
)

// Options shape a Table.
type Options struct {
	// ValueSize is the number of bytes stored with each GUID; 0 makes a
	// set.
	ValueSize int
	// MemLimit bounds the memory the recent entries take before they go
	// to a file: DefaultMemLimit when 0; when negative, the table stays
	// in memory, as a map would.
	MemLimit int64
	// Dir is where the files are made (and at once unlinked, so nothing
	// is left behind, whatever happens). When "": $TMPDIR if set, else
	// /var/tmp, which is on disk where /tmp may be a tmpfs (memory by
	// another name), else /tmp. If no file can be made there, the table
	// stays in memory.
	Dir string
}

// tempDirs returns where to try making a run's file.
func tempDirs(dir string) []string {
	if dir != "" {
		return []string{dir}
	}
	if d := os.Getenv("TMPDIR"); d != "" {
		return []string{d}
	}
	return []string{"/var/tmp", os.TempDir()}
}

// Table maps GUIDs to values of Options.ValueSize bytes.
type Table struct {
	opts Options
	slot int // bytes per entry: GUID + value
	n    int
	seed maphash.Seed

	// The recent entries, in two generations of at most maxRecent/2:
	// when young is full, old goes to a run and young becomes old, so
	// the last maxRecent/2 entries added are always in memory.
	young, old *generation
	maxRecent  int // -1: no limit

	runs  []*run // oldest first
	block []byte // one block of a run, read by a lookup
	err   error  // a file error: the table is unusable after it
}

// New returns an empty table.
func New(opts Options) *Table {
	if opts.ValueSize < 0 {
		opts.ValueSize = 0
	}
	if opts.MemLimit == 0 {
		opts.MemLimit = DefaultMemLimit
	}
	t := &Table{
		opts:      opts,
		slot:      guid.Size + opts.ValueSize,
		seed:      maphash.MakeSeed(),
		young:     newGeneration(),
		old:       newGeneration(),
		maxRecent: -1,
	}
	if opts.MemLimit > 0 {
		t.maxRecent = max(1, int(min(opts.MemLimit, 1<<30)/int64(2*t.slot+mapEntryCost)))
	}
	return t
}

// Len returns the number of GUIDs in the table.
func (t *Table) Len() int { return t.n }

// Runs returns the number of files the table has.
func (t *Table) Runs() int { return len(t.runs) }

// Close releases the files. The table must not be used after.
func (t *Table) Close() error {
	var err error
	for _, r := range t.runs {
		if cerr := r.f.Close(); err == nil {
			err = cerr
		}
	}
	t.runs, t.young, t.old = nil, nil, nil
	return err
}

// A generation of recent entries: slot bytes in arena, by GUID.
type generation struct {
	m     map[guid.GUID]int
	arena []byte
}

func newGeneration() *generation { return &generation{m: make(map[guid.GUID]int)} }

// slot returns g's entry, or nil.
func (r *generation) slot(g guid.GUID, size int) []byte {
	if i, ok := r.m[g]; ok {
		return r.arena[i : i+size]
	}
	return nil
}

func (t *Table) recent(g guid.GUID) []byte {
	if s := t.young.slot(g, t.slot); s != nil {
		return s
	}
	return t.old.slot(g, t.slot)
}

// Get reports whether g is in the table and, if it is, copies its value
// into val (which may be nil).
func (t *Table) Get(g guid.GUID, val []byte) (bool, error) {
	if s := t.recent(g); s != nil {
		copy(val, s[guid.Size:])
		return true, nil
	}
	_, _, slot, err := t.inRuns(g)
	if err != nil || slot == nil {
		return false, err
	}
	copy(val, slot[guid.Size:])
	return true, nil
}

// Has reports whether g is in the table.
func (t *Table) Has(g guid.GUID) (bool, error) { return t.Get(g, nil) }

// Put stores val (ValueSize bytes; missing bytes are zero) for g,
// replacing its value if g is already in the table.
func (t *Table) Put(g guid.GUID, val []byte) error {
	_, err := t.put(g, val, true)
	return err
}

// Add puts g with val unless g is already in the table, and reports
// whether it was added.
func (t *Table) Add(g guid.GUID, val []byte) (bool, error) {
	return t.put(g, val, false)
}

func (t *Table) put(g guid.GUID, val []byte, replace bool) (bool, error) {
	if s := t.recent(g); s != nil {
		if replace {
			setValue(s[guid.Size:], val)
		}
		return false, nil
	}
	r, off, slot, err := t.inRuns(g)
	if err != nil {
		return false, err
	}
	if slot != nil {
		if replace {
			v := slot[guid.Size:]
			setValue(v, val)
			if _, err := r.f.WriteAt(v, off+guid.Size); err != nil {
				return false, t.fail(err)
			}
		}
		return false, nil
	}
	y := t.young
	i := len(y.arena)
	y.arena = append(y.arena, g[:]...)
	y.arena = append(y.arena, make([]byte, t.opts.ValueSize)...)
	setValue(y.arena[i+guid.Size:], val)
	y.m[g] = i
	t.n++
	if t.maxRecent > 0 && len(y.m) >= max(1, t.maxRecent/2) {
		if err := t.flush(); err != nil {
			return true, err
		}
		if t.maxRecent > 0 { // still on file
			t.young, t.old = t.old, t.young
		}
	}
	return true, nil
}

func setValue(dst, val []byte) {
	n := copy(dst, val)
	clear(dst[n:])
}

func (t *Table) fail(err error) error {
	if t.err == nil {
		t.err = fmt.Errorf("GUID table file: %w", err)
	}
	return t.err
}

// inRuns returns the run holding g, the offset of its entry there and
// the entry's bytes (valid until the next call); a nil slot if no run
// holds g.
func (t *Table) inRuns(g guid.GUID) (*run, int64, []byte, error) {
	if t.err != nil {
		return nil, 0, nil, t.err
	}
	if len(t.runs) == 0 {
		return nil, 0, nil, nil
	}
	h := maphash.Bytes(t.seed, g[:])
	for i := len(t.runs) - 1; i >= 0; i-- {
		r := t.runs[i]
		if !r.bloom.MaybeHas(h) {
			continue
		}
		off, slot, err := r.find(g, t.slot, &t.block)
		if err != nil {
			return nil, 0, nil, t.fail(err)
		}
		if slot != nil {
			return r, off, slot, nil
		}
	}
	return nil, 0, nil, nil
}

// flush writes the old generation out as a run, and merges runs of about
// the same size.
func (t *Table) flush() error {
	if t.err != nil {
		return t.err
	}
	o := t.old
	if len(o.m) == 0 {
		return nil
	}
	// Sorted by the GUIDs' first 8 bytes, as a number, and by the rest
	// only where those are equal, with the entry's place at hand: half
	// the time per Add on file (BenchmarkAdd) of comparing whole GUIDs
	// and looking each up again.
	type entry struct {
		prefix uint64
		i      int
	}
	keys := make([]entry, 0, len(o.m))
	for g, i := range o.m {
		keys = append(keys, entry{binary.BigEndian.Uint64(g[:8]), i})
	}
	slices.SortFunc(keys, func(a, b entry) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return bytes.Compare(o.arena[a.i:a.i+guid.Size], o.arena[b.i:b.i+guid.Size])
	})
	w, err := t.newRun(len(keys))
	if err != nil {
		// No file: the table stays in memory.
		t.maxRecent = -1
		return nil
	}
	for _, k := range keys {
		w.add(o.arena[k.i : k.i+t.slot])
	}
	r, err := w.finish()
	if err != nil {
		// The file system is full: the table stays in memory.
		t.maxRecent = -1
		return nil
	}
	t.runs = append(t.runs, r)
	clear(o.m)
	o.arena = o.arena[:0]
	for k := len(t.runs); k >= 2 && t.runs[k-2].n <= 2*t.runs[k-1].n; k = len(t.runs) {
		m, err := t.merge(t.runs[k-2], t.runs[k-1])
		if err != nil {
			if errors.Is(err, errRead) {
				return t.fail(err)
			}
			break // no room for the merged run: the runs stay as they are
		}
		t.runs = append(t.runs[:k-2], m)
	}
	return nil
}

// errRead marks a failure to read a run back: the table cannot go on.
var errRead = errors.New("reading a run")

// merge writes the entries of a and b, in GUID order, as one run, and
// closes a and b; if it fails, a and b are as they were.
func (t *Table) merge(a, b *run) (*run, error) {
	w, err := t.newRun(a.n + b.n)
	if err != nil {
		return nil, err
	}
	ra := bufio.NewReaderSize(io.NewSectionReader(a.f, 0, int64(a.n*t.slot)), ioBuffer)
	rb := bufio.NewReaderSize(io.NewSectionReader(b.f, 0, int64(b.n*t.slot)), ioBuffer)
	ea, eb := make([]byte, t.slot), make([]byte, t.slot)
	na, nb := a.n, b.n
	next := func(r *bufio.Reader, e []byte, left *int) error {
		if *left == 0 {
			return nil
		}
		*left--
		if _, err := io.ReadFull(r, e); err != nil {
			return fmt.Errorf("%w: %w", errRead, err)
		}
		return nil
	}
	if err := next(ra, ea, &na); err != nil {
		w.abort()
		return nil, err
	}
	if err := next(rb, eb, &nb); err != nil {
		w.abort()
		return nil, err
	}
	haveA, haveB := a.n > 0, b.n > 0
	for haveA || haveB {
		var err error
		if haveA && (!haveB || bytes.Compare(ea[:guid.Size], eb[:guid.Size]) < 0) {
			w.add(ea)
			haveA = na > 0
			err = next(ra, ea, &na)
		} else {
			w.add(eb)
			haveB = nb > 0
			err = next(rb, eb, &nb)
		}
		if err != nil {
			w.abort()
			return nil, err
		}
	}
	m, err := w.finish()
	if err != nil {
		return nil, err
	}
	a.f.Close()
	b.f.Close()
	return m, nil
}

// A run is a file of entries sorted by GUID.
type run struct {
	f     *os.File
	n     int
	bloom Bloom
	index []guid.GUID // the first GUID of each block of blockEntries
}

// find returns the offset of g's entry and its bytes (in *buf), or a nil
// slot.
func (r *run) find(g guid.GUID, slot int, buf *[]byte) (int64, []byte, error) {
	// The last block whose first GUID is not above g.
	b := sort.Search(len(r.index), func(i int) bool { return bytes.Compare(r.index[i][:], g[:]) > 0 }) - 1
	if b < 0 {
		return 0, nil, nil
	}
	k := min(blockEntries, r.n-b*blockEntries)
	if cap(*buf) < blockEntries*slot {
		*buf = make([]byte, blockEntries*slot)
	}
	data := (*buf)[:k*slot]
	off := int64(b) * blockEntries * int64(slot)
	if _, err := r.f.ReadAt(data, off); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errRead, err)
	}
	i := sort.Search(k, func(i int) bool { return bytes.Compare(data[i*slot:i*slot+guid.Size], g[:]) >= 0 })
	if i == k || guid.GUID(data[i*slot:i*slot+guid.Size]) != g {
		return 0, nil, nil
	}
	return off + int64(i*slot), data[i*slot : (i+1)*slot], nil
}

// TempFile makes an unlinked temporary file for spilled data, in dir or,
// when dir is "", where Options.Dir says a table makes its files. It
// lives as long as the descriptor, and nothing is left behind by a crash.
func TempFile(dir, pattern string) (*os.File, error) {
	var f *os.File
	var err error
	for _, d := range tempDirs(dir) {
		if f, err = os.CreateTemp(d, pattern); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// runWriter writes a run of entries given in GUID order.
type runWriter struct {
	t   *Table
	r   *run
	w   *bufio.Writer
	err error
}

func (t *Table) newRun(n int) (*runWriter, error) {
	f, err := TempFile(t.opts.Dir, "mbtool-guids-*")
	if err != nil {
		return nil, err
	}
	r := &run{f: f, bloom: NewBloom(n),
		index: make([]guid.GUID, 0, (n+blockEntries-1)/blockEntries)}
	return &runWriter{t: t, r: r, w: bufio.NewWriterSize(f, ioBuffer)}, nil
}

func (w *runWriter) add(slot []byte) {
	g := guid.GUID(slot[:guid.Size])
	r := w.r
	if r.n%blockEntries == 0 {
		r.index = append(r.index, g)
	}
	r.n++
	r.bloom.Add(maphash.Bytes(w.t.seed, g[:]))
	if w.err == nil {
		_, w.err = w.w.Write(slot)
	}
}

func (w *runWriter) finish() (*run, error) {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err != nil {
		w.abort()
		return nil, w.err
	}
	return w.r, nil
}

func (w *runWriter) abort() { w.r.f.Close() }

// Sorted calls fn with every entry in GUID order: the recent entries and
// the runs, merged as they are read (each run sequentially), so it costs
// no memory beyond a buffer per run. val is valid only during the call.
// The table must not change during Sorted.
func (t *Table) Sorted(fn func(g guid.GUID, val []byte) error) error {
	if t.err != nil {
		return t.err
	}
	var recent [][]byte
	for _, gen := range []*generation{t.young, t.old} {
		for _, i := range gen.m {
			recent = append(recent, gen.arena[i:i+t.slot])
		}
	}
	slices.SortFunc(recent, func(a, b []byte) int { return bytes.Compare(a[:guid.Size], b[:guid.Size]) })
	type cursor struct {
		r    *bufio.Reader
		left int
		e    []byte
	}
	var cs []*cursor
	for _, r := range t.runs {
		c := &cursor{r: bufio.NewReaderSize(io.NewSectionReader(r.f, 0, int64(r.n*t.slot)), 64<<10), left: r.n, e: make([]byte, t.slot)}
		cs = append(cs, c)
	}
	advance := func(c *cursor) (bool, error) {
		if c.left == 0 {
			return false, nil
		}
		c.left--
		if _, err := io.ReadFull(c.r, c.e); err != nil {
			return false, t.fail(fmt.Errorf("%w: %w", errRead, err))
		}
		return true, nil
	}
	live := cs[:0]
	for _, c := range cs {
		ok, err := advance(c)
		if err != nil {
			return err
		}
		if ok {
			live = append(live, c)
		}
	}
	for len(live) > 0 || len(recent) > 0 {
		best := -1 // index into live; -1 means the recent entries
		var min []byte
		if len(recent) > 0 {
			min = recent[0]
		}
		for i, c := range live {
			if min == nil || bytes.Compare(c.e[:guid.Size], min[:guid.Size]) < 0 {
				best, min = i, c.e
			}
		}
		if err := fn(guid.GUID(min[:guid.Size]), min[guid.Size:]); err != nil {
			return err
		}
		if best < 0 {
			recent = recent[1:]
			continue
		}
		ok, err := advance(live[best])
		if err != nil {
			return err
		}
		if !ok {
			live = append(live[:best], live[best+1:]...)
		}
	}
	return nil
}
