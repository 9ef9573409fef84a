package repo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"sort"
	"strings"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
)

// An index file maps GUIDs to where their file literals are, sorted by
// GUID so that a lookup reads one block, and so that index files merge
// as streams:
//
//	"MBTIDX\x00\x01"                      8 bytes
//	entries, ascending by GUID          40 bytes each:
//	    GUID (20) | pack number (uint32) | offset (uint64) | size (uint64)
//	pack IDs                            32 bytes each (BLAKE3 digests)
//	number of packs (uint32) | number of entries (uint64) | "MBTIDXND"
//
// Integers are big-endian. The offset is that of the literal's first byte
// in the pack, the size its length. The file is named by the BLAKE3
// digest of all its bytes.
const (
	indexMagic    = "MBTIDX\x00\x01"
	indexEndMagic = "MBTIDXND"
	entrySize     = guid.Size + 4 + 8 + 8
	footerSize    = 4 + 8 + 8
	blockEntries  = 16
)

// PackID is a pack's name: the BLAKE3 digest of its bytes.
type PackID [32]byte

func (p PackID) String() string { return idHex(p) }

// Location is where a message file is stored.
type Location struct {
	Pack   PackID
	Offset int64
	Size   int64
}

// indexWriter writes an index file; entries must come in GUID order.
type indexWriter struct {
	w     FileWriter
	packs map[PackID]uint32
	order []PackID
	n     int64
	last  guid.GUID
	e     [entrySize]byte
}

func newIndexWriter(s Store) (*indexWriter, error) {
	w, err := s.Create()
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, indexMagic); err != nil {
		w.Abort()
		return nil, err
	}
	return &indexWriter{w: w, packs: map[PackID]uint32{}}, nil
}

func (x *indexWriter) add(g guid.GUID, loc Location) error {
	if x.n > 0 && bytes.Compare(g[:], x.last[:]) <= 0 {
		return fmt.Errorf("index entries out of order: %s after %s", g, x.last)
	}
	x.last = g
	p, ok := x.packs[loc.Pack]
	if !ok {
		p = uint32(len(x.order))
		x.packs[loc.Pack] = p
		x.order = append(x.order, loc.Pack)
	}
	copy(x.e[:], g[:])
	binary.BigEndian.PutUint32(x.e[20:], p)
	binary.BigEndian.PutUint64(x.e[24:], uint64(loc.Offset))
	binary.BigEndian.PutUint64(x.e[32:], uint64(loc.Size))
	x.n++
	_, err := x.w.Write(x.e[:])
	return err
}

// commit writes the pack table and footer and publishes the file; an
// empty index is not written. It returns the file's name ("" if none).
func (x *indexWriter) commit() (string, error) {
	if x.n == 0 {
		x.w.Abort()
		return "", nil
	}
	for _, p := range x.order {
		if _, err := x.w.Write(p[:]); err != nil {
			x.w.Abort()
			return "", err
		}
	}
	var f [footerSize]byte
	binary.BigEndian.PutUint32(f[0:], uint32(len(x.order)))
	binary.BigEndian.PutUint64(f[4:], uint64(x.n))
	copy(f[12:], indexEndMagic)
	if _, err := x.w.Write(f[:]); err != nil {
		x.w.Abort()
		return "", err
	}
	name := indexName(idHex(x.w.Sum()))
	return name, x.w.Commit(name)
}

func (x *indexWriter) abort() { x.w.Abort() }

// indexFile is an open index file: its pack table, and per block of
// entries the first GUID, plus a Bloom filter, in memory (about 3 bytes
// per entry, against 40 on disk).
type indexFile struct {
	name   string
	f      File
	n      int64
	packs  []PackID
	sparse []guid.GUID
	bloom  guidtable.Bloom
}

// openIndexFile opens an index file and reads it once through, checking
// its order and building the in-memory summary.
func openIndexFile(s Store, name string, seed maphash.Seed) (*indexFile, error) {
	f, err := s.Open(name)
	if err != nil {
		return nil, err
	}
	x, err := readIndexFile(f, name, seed)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("index file %s: %w", name, err)
	}
	return x, nil
}

func readIndexFile(f File, name string, seed maphash.Seed) (*indexFile, error) {
	size := f.Size()
	if size < int64(len(indexMagic))+footerSize {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrDamaged, size)
	}
	var head [8]byte
	var foot [footerSize]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return nil, err
	}
	if _, err := f.ReadAt(foot[:], size-footerSize); err != nil {
		return nil, err
	}
	if string(head[:]) != indexMagic || string(foot[12:]) != indexEndMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrDamaged)
	}
	np := int64(binary.BigEndian.Uint32(foot[0:]))
	n := int64(binary.BigEndian.Uint64(foot[4:]))
	if n < 0 || n > size/entrySize || 8+n*entrySize+np*32+footerSize != size {
		return nil, fmt.Errorf("%w: %d entries and %d packs do not fill %d bytes", ErrDamaged, n, np, size)
	}
	x := &indexFile{name: name, f: f, n: n, packs: make([]PackID, np)}
	pt := make([]byte, np*32)
	if _, err := f.ReadAt(pt, 8+n*entrySize); err != nil {
		return nil, err
	}
	for i := range x.packs {
		copy(x.packs[i][:], pt[i*32:])
	}
	x.bloom = guidtable.NewBloom(int(n))
	x.sparse = make([]guid.GUID, 0, (n+blockEntries-1)/blockEntries)
	br := bufio.NewReaderSize(io.NewSectionReader(f, 8, n*entrySize), 256<<10)
	var e [entrySize]byte
	var last guid.GUID
	for i := int64(0); i < n; i++ {
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return nil, err
		}
		g := guid.GUID(e[:20])
		if i > 0 && bytes.Compare(g[:], last[:]) <= 0 {
			return nil, fmt.Errorf("%w: entry %d (%s) out of order", ErrDamaged, i, g)
		}
		if binary.BigEndian.Uint32(e[20:]) >= uint32(np) {
			return nil, fmt.Errorf("%w: entry %d (%s) names pack %d of %d", ErrDamaged, i, g, binary.BigEndian.Uint32(e[20:]), np)
		}
		last = g
		if i%blockEntries == 0 {
			x.sparse = append(x.sparse, g)
		}
		x.bloom.Add(maphash.Bytes(seed, g[:]))
	}
	return x, nil
}

func (x *indexFile) decode(e []byte) (guid.GUID, Location) {
	return guid.GUID(e[:20]), Location{
		Pack:   x.packs[binary.BigEndian.Uint32(e[20:])],
		Offset: int64(binary.BigEndian.Uint64(e[24:])),
		Size:   int64(binary.BigEndian.Uint64(e[32:])),
	}
}

// find looks g up: one read of at most blockEntries entries.
func (x *indexFile) find(g guid.GUID) (Location, bool, error) {
	b := sort.Search(len(x.sparse), func(i int) bool { return bytes.Compare(x.sparse[i][:], g[:]) > 0 }) - 1
	if b < 0 {
		return Location{}, false, nil
	}
	k := min(blockEntries, x.n-int64(b)*blockEntries)
	buf := make([]byte, k*entrySize)
	if _, err := x.f.ReadAt(buf, 8+int64(b)*blockEntries*entrySize); err != nil {
		return Location{}, false, fmt.Errorf("index file %s: %w", x.name, err)
	}
	i := sort.Search(int(k), func(i int) bool { return bytes.Compare(buf[i*entrySize:i*entrySize+20], g[:]) >= 0 })
	if i == int(k) || !bytes.Equal(buf[i*entrySize:i*entrySize+20], g[:]) {
		return Location{}, false, nil
	}
	_, loc := x.decode(buf[i*entrySize : (i+1)*entrySize])
	return loc, true, nil
}

// each calls fn for every entry in order.
func (x *indexFile) each(fn func(g guid.GUID, loc Location) error) error {
	br := bufio.NewReaderSize(io.NewSectionReader(x.f, 8, x.n*entrySize), 256<<10)
	var e [entrySize]byte
	for i := int64(0); i < x.n; i++ {
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return fmt.Errorf("index file %s: %w", x.name, err)
		}
		g, loc := x.decode(e[:])
		if err := fn(g, loc); err != nil {
			return err
		}
	}
	return nil
}

// Index is the repository's index: all its index files. It is safe for
// concurrent lookups.
type Index struct {
	seed  maphash.Seed
	files []*indexFile
}

// LoadIndex opens every index file of the repository.
func (r *Repo) LoadIndex() (*Index, error) {
	x := &Index{seed: maphash.MakeSeed()}
	var names []string
	err := r.store.List("index", func(name string, size int64) error {
		if _, ok := parseID(strings.TrimPrefix(name, "index/")); ok {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := openIndexFile(r.store, name, x.seed)
		if err != nil {
			x.Close()
			return nil, err
		}
		x.files = append(x.files, f)
	}
	return x, nil
}

// Close closes the index files.
func (x *Index) Close() error {
	for _, f := range x.files {
		f.f.Close()
	}
	x.files = nil
	return nil
}

// Files returns the number of index files.
func (x *Index) Files() int { return len(x.files) }

// Len returns the number of entries (duplicates across files counted).
func (x *Index) Len() int64 {
	var n int64
	for _, f := range x.files {
		n += f.n
	}
	return n
}

// Find returns where g's file is stored.
func (x *Index) Find(g guid.GUID) (Location, bool, error) {
	h := maphash.Bytes(x.seed, g[:])
	for i := len(x.files) - 1; i >= 0; i-- {
		f := x.files[i]
		if !f.bloom.MaybeHas(h) {
			continue
		}
		loc, ok, err := f.find(g)
		if err != nil || ok {
			return loc, ok, err
		}
	}
	return Location{}, false, nil
}

// findAll calls fn with g's location in every index file that has it.
func (x *Index) findAll(g guid.GUID, fn func(Location)) error {
	h := maphash.Bytes(x.seed, g[:])
	for _, f := range x.files {
		if !f.bloom.MaybeHas(h) {
			continue
		}
		loc, ok, err := f.find(g)
		if err != nil {
			return err
		}
		if ok {
			fn(loc)
		}
	}
	return nil
}

// Merged calls fn with every entry of every index file in GUID order;
// a GUID in several files comes once per file, consecutively.
func (x *Index) Merged(fn func(g guid.GUID, loc Location) error) error {
	type cur struct {
		f    *indexFile
		br   *bufio.Reader
		left int64
		e    [entrySize]byte
	}
	var cs []*cur
	for _, f := range x.files {
		c := &cur{f: f, br: bufio.NewReaderSize(io.NewSectionReader(f.f, 8, f.n*entrySize), 64<<10), left: f.n}
		cs = append(cs, c)
	}
	adv := func(c *cur) (bool, error) {
		if c.left == 0 {
			return false, nil
		}
		c.left--
		if _, err := io.ReadFull(c.br, c.e[:]); err != nil {
			return false, fmt.Errorf("index file %s: %w", c.f.name, err)
		}
		return true, nil
	}
	live := cs[:0]
	for _, c := range cs {
		ok, err := adv(c)
		if err != nil {
			return err
		}
		if ok {
			live = append(live, c)
		}
	}
	for len(live) > 0 {
		best := 0
		for i := 1; i < len(live); i++ {
			if bytes.Compare(live[i].e[:20], live[best].e[:20]) < 0 {
				best = i
			}
		}
		c := live[best]
		g, loc := c.f.decode(c.e[:])
		if err := fn(g, loc); err != nil {
			return err
		}
		ok, err := adv(c)
		if err != nil {
			return err
		}
		if !ok {
			live = append(live[:best], live[best+1:]...)
		}
	}
	return nil
}
