package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
)

// ErrDamaged marks a repository file that is not what its name or the
// files referring to it say.
var ErrDamaged = errors.New("repository damaged")

// PackTarget is the size at which a pack is closed and a new one begun.
var PackTarget int64 = 32 << 20

// maxFilesPerLine is how many file literals one APPLY MESSAGE carries at
// most, as in a dump.
const maxFilesPerLine = 1024

// A pack is dlist: a header line, then APPLY MESSAGE lines of file
// literals, exactly as in a dump:
//
//	MBTOOL PACK %(FORMAT 1)
//	APPLY MESSAGE (%{default 9a0b...c3 2211}<2211 bytes> %{...}...)
type packWriter struct {
	s       Store
	w       FileWriter
	dl      *dlist.Writer
	inLine  int
	entries []packEntry
}

type packEntry struct {
	guid   guid.GUID
	offset int64
	size   int64
}

func newPackWriter(s Store) (*packWriter, error) {
	w, err := s.Create()
	if err != nil {
		return nil, err
	}
	p := &packWriter{s: s, w: w, dl: dlist.NewWriter(w)}
	p.dl.BeginLine(Verb, "PACK")
	p.dl.BeginKVList()
	p.dl.Key("FORMAT")
	p.dl.Num(FormatVersion)
	p.dl.EndList()
	if err := p.dl.EndLine(); err != nil {
		w.Abort()
		return nil, err
	}
	return p, nil
}

// add copies a file literal into the pack, checking that its bytes hash to
// g, and returns the offset of its first byte.
func (p *packWriter) add(part string, g guid.GUID, size int64, body io.Reader) (int64, error) {
	if p.inLine == 0 {
		p.dl.BeginLine("APPLY", "MESSAGE")
		p.dl.BeginList()
	}
	if err := p.dl.File(part, g, size, guid.NewReader(body, g, size)); err != nil {
		return 0, err
	}
	off := p.dl.Written() - size
	p.entries = append(p.entries, packEntry{g, off, size})
	p.inLine++
	if p.inLine == maxFilesPerLine {
		if err := p.endLine(); err != nil {
			return 0, err
		}
	}
	return off, nil
}

func (p *packWriter) endLine() error {
	if p.inLine == 0 {
		return nil
	}
	p.inLine = 0
	p.dl.EndList()
	return p.dl.EndLine()
}

func (p *packWriter) size() int64 { return p.dl.Written() }

// commit ends the pack and publishes it.
func (p *packWriter) commit() (PackID, error) {
	if err := p.endLine(); err != nil {
		p.w.Abort()
		return PackID{}, err
	}
	if err := p.dl.Flush(); err != nil {
		p.w.Abort()
		return PackID{}, err
	}
	id := PackID(p.w.Sum())
	return id, p.w.Commit(packName(id.String()))
}

func (p *packWriter) abort() { p.w.Abort() }

// packCache keeps a few packs open for reading.
type packCache struct {
	s     Store
	mu    sync.Mutex
	open  map[PackID]File
	order []PackID
}

const packCacheSize = 128 // descriptors; lookups in GUID order touch every pack

func newPackCache(s Store) *packCache { return &packCache{s: s, open: map[PackID]File{}} }

func (c *packCache) get(id PackID) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.open[id]; ok {
		return f, nil
	}
	f, err := c.s.Open(packName(id.String()))
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", id, err)
	}
	if len(c.order) == packCacheSize {
		old := c.order[0]
		c.open[old].Close()
		delete(c.open, old)
		c.order = c.order[1:]
	}
	c.open[id] = f
	c.order = append(c.order, id)
	return f, nil
}

func (c *packCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.open {
		f.Close()
	}
	c.open, c.order = map[PackID]File{}, nil
}

// body returns a reader of the literal at loc, checking that the literal's
// header names g and that the bytes hash to g.
func (c *packCache) body(g guid.GUID, loc Location) (io.Reader, error) {
	f, err := c.get(loc.Pack)
	if err != nil {
		return nil, err
	}
	if err := checkLiteralHeader(f, g, loc); err != nil {
		return nil, err
	}
	return guid.NewReader(io.NewSectionReader(f, loc.Offset, loc.Size), g, loc.Size), nil
}

// checkLiteralHeader checks that the bytes before loc.Offset in pack f end
// a file literal header for g of loc.Size bytes: " <guid> <size>}" CRLF.
func checkLiteralHeader(f File, g guid.GUID, loc Location) error {
	want := literalHeader(g, loc.Size)
	start := loc.Offset - int64(len(want))
	if start < 0 || loc.Offset+loc.Size > f.Size() {
		return fmt.Errorf("%w: pack %s: file %s at offset %d, %d bytes: outside the pack (%d bytes)",
			ErrDamaged, loc.Pack, g, loc.Offset, loc.Size, f.Size())
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, start); err != nil {
		return fmt.Errorf("pack %s: %w", loc.Pack, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: pack %s: no literal of file %s (%d bytes) at offset %d", ErrDamaged, loc.Pack, g, loc.Size, loc.Offset)
	}
	return nil
}

// packStreams reads file literals for an export, which asks for them
// mostly in the order they were stored (a mailbox's files, in the order
// its records were first dumped): each of a few packs is read forward
// through a buffer, so that a run of consecutive literals costs one read
// per buffer (a system call, or a ranged GET from object storage) where
// it cost two per literal. Reads of a pack only ever go forward while
// its literals follow each other: a literal that the buffer holds only
// the start of keeps that start and reads on from the buffer's end, and
// one larger than the buffer is read on from there straight from the
// pack. Nothing is read twice, and an object store sees one stream of
// reads per run of literals (each read going back would cost a request
// of its own, and a dropped connection). A literal that does not follow
// the one before it in its pack (packs rewritten by prune are in GUID
// order) is read alone, header and body at once, so that nothing is
// read in vain.
type packStreams struct {
	c      *packCache
	ss     []*packStream // most recently used first
	rehash bool          // check that each file's bytes hash to its GUID
}

type packStream struct {
	id    PackID
	start int64  // pack offset of buf[0]
	buf   []byte // the bytes read
	next  int64  // pack offset after the last literal served
}

const (
	packStreamBuf = 512 << 10 // bytes read ahead, per pack
	packStreamN   = 4         // packs read at once (a delta's base and new files)
	packStreamGap = 4 << 10   // a literal at most this far past the last follows it
)

func newPackStreams(c *packCache) *packStreams { return &packStreams{c: c, rehash: true} }

// body returns a reader of file g's literal at loc, valid until the
// next call, checking, as packCache.body does, that the literal's header
// names g and, unless p.rehash is off, that the bytes hash to g.
func (p *packStreams) body(g guid.GUID, loc Location) (io.Reader, error) {
	want := literalHeader(g, loc.Size)
	start, end := loc.Offset-int64(len(want)), loc.Offset+loc.Size
	f, err := p.c.get(loc.Pack)
	if err != nil {
		return nil, err
	}
	if start < 0 || end > f.Size() {
		return nil, fmt.Errorf("%w: pack %s: file %s at offset %d, %d bytes: outside the pack (%d bytes)",
			ErrDamaged, loc.Pack, g, loc.Offset, loc.Size, f.Size())
	}
	s := p.stream(loc.Pack)
	bufEnd := s.start + int64(len(s.buf))
	if start < s.start || end > bufEnd {
		follows := start >= s.next && start-s.next <= packStreamGap
		// What the buffer holds of the literal already, when it follows.
		kept := 0
		if follows && start < bufEnd {
			kept = copy(s.buf[:cap(s.buf)], s.buf[start-s.start:])
		}
		// Up to the buffer's size: the literal alone, or, when it
		// follows, what comes after it too.
		n := min(end, start+packStreamBuf) - start
		if follows {
			n = min(f.Size(), start+packStreamBuf) - start
		}
		s.start, s.buf = start, s.buf[:n]
		if _, err := f.ReadAt(s.buf[kept:], start+int64(kept)); err != nil && !(err == io.EOF && start+n == f.Size()) {
			s.buf = s.buf[:0]
			return nil, fmt.Errorf("pack %s: %w", loc.Pack, err)
		}
		bufEnd = start + n
	}
	s.next = end
	lit := s.buf[start-s.start : min(end, bufEnd)-s.start]
	if !bytes.Equal(lit[:len(want)], want) {
		return nil, fmt.Errorf("%w: pack %s: no literal of file %s (%d bytes) at offset %d", ErrDamaged, loc.Pack, g, loc.Size, loc.Offset)
	}
	var body io.Reader = bytes.NewReader(lit[len(want):])
	if end > bufEnd {
		// Larger than the buffer: the rest on from the buffer's end.
		body = io.MultiReader(body, io.NewSectionReader(f, bufEnd, end-bufEnd))
	}
	if !p.rehash {
		return body, nil
	}
	return guid.NewReader(body, g, loc.Size), nil
}

// stream returns the stream of pack id, made most recently used.
func (p *packStreams) stream(id PackID) *packStream {
	for i, s := range p.ss {
		if s.id == id {
			copy(p.ss[1:i+1], p.ss[:i])
			p.ss[0] = s
			return s
		}
	}
	var s *packStream
	if len(p.ss) == packStreamN {
		s = p.ss[len(p.ss)-1] // its buffer, for this pack
		p.ss = p.ss[:len(p.ss)-1]
	} else {
		s = &packStream{buf: make([]byte, 0, packStreamBuf)}
	}
	*s = packStream{id: id, start: 0, buf: s.buf[:0], next: -1}
	p.ss = append([]*packStream{s}, p.ss...)
	return s
}

// literalHeader is the end of the header of file g's literal, which the
// pack holds right before the literal's bytes: " <guid> <size>}" CRLF.
func literalHeader(g guid.GUID, size int64) []byte {
	return []byte(" " + g.String() + " " + strconv.FormatInt(size, 10) + "}\r\n")
}
