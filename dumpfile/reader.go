package dumpfile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mbtool/mbtool/dlist"
	"github.com/zeebo/blake3"
)

// Reader reads a dump: the header on NewReader, then one command at a time.
// The caller reads each command's value through DL; Next skips whatever of
// the current line the caller left unread. When Next reaches the trailer it
// checks the digest and that nothing follows, and returns io.EOF.
type Reader struct {
	dl      *dlist.Reader
	th      *tailHasher
	zr      *zstd.Decoder
	hdr     Header
	trailer *Trailer
	inLine  bool // the current line's EOL has not been read yet
	err     error

	// OnSkip, if set, is called with each SKIPPED line (see Skip) as Next
	// passes it, and its offset.
	OnSkip func(s Skip, offset int64)
	// Skipped counts the SKIPPED lines read so far.
	Skipped int64
}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Unsealed reads a stream written with Options.Unsealed, within the
	// process: nothing is hashed and the trailer's digest is not
	// checked (the trailer must still be there, with its counts).
	Unsealed bool
}

// NewReader reads the header of the dump in r (plain or zstd) and returns a
// Reader positioned at the first command.
func NewReader(r io.Reader) (*Reader, error) { return NewReaderWith(r, ReaderOptions{}) }

// NewReaderWith is NewReader with options.
func NewReaderWith(r io.Reader, opts ReaderOptions) (_ *Reader, err error) {
	src, compressed, err := Sniff(r)
	if err != nil {
		return nil, fmt.Errorf("reading dump: %w", err)
	}
	d := &Reader{}
	defer func() {
		if err != nil {
			d.Close() // the hashing goroutine and the decoder
		}
	}()
	if compressed {
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		d.zr, src = zr, zr
	}
	if opts.Unsealed {
		d.dl = dlist.NewReader(src)
	} else {
		d.th = newTailHasher(src)
		d.dl = dlist.NewReader(d.th)
	}
	line, err := d.dl.ReadLine()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty input", ErrNotDump)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotDump, err)
	}
	if line.Verb != Verb || line.Value == nil || line.Value.Key != "HEADER" || line.Value.Kind != dlist.KVList {
		return nil, fmt.Errorf("%w: first line is not an MBTOOL HEADER", ErrNotDump)
	}
	v := line.Value
	f, err := v.Get("FORMAT").Num32()
	if err != nil {
		return nil, fmt.Errorf("%w: header FORMAT: %w", ErrNotDump, err)
	}
	if f == 0 || f > FormatVersion {
		return nil, fmt.Errorf("%w: dump is format %d, this mbtool reads formats 1 to %d", ErrVersion, f, FormatVersion)
	}
	d.hdr.Format = int(f)
	if c, err := v.Get("CREATED").Date(); err == nil {
		d.hdr.Created = time.Unix(c, 0).UTC()
	}
	d.hdr.Host = v.Get("HOST").String()
	d.hdr.Version = v.Get("MBTOOL").String()
	if iv := v.Get("INDEXVERSION"); iv != nil {
		n, err := iv.Num32()
		if err != nil {
			return nil, fmt.Errorf("%w: header INDEXVERSION: %w", ErrNotDump, err)
		}
		d.hdr.IndexVersion = int(n)
	}
	return d, nil
}

// Header returns the dump's header.
func (d *Reader) Header() Header { return d.hdr }

// DL returns the dlist reader, positioned inside the current command.
func (d *Reader) DL() *dlist.Reader { return d.dl }

// Trailer returns the trailer once Next has read it, also when Next then
// failed because of the digest or data after it; else nil.
func (d *Reader) Trailer() *Trailer { return d.trailer }

// Offset returns how many bytes of the uncompressed stream have been parsed.
func (d *Reader) Offset() int64 { return d.dl.Offset() }

// Next moves to the next command and returns its verb (APPLY) and name
// (MESSAGE, MAILBOX, ...) and the offset where the line starts. Whatever the
// caller left unread of the previous line is skipped, through its end; a
// caller that reads a line's EOL token through DL itself must say so by
// calling EndLine instead.
//
// At the trailer Next verifies the digest and that the stream ends there,
// then returns io.EOF. Otherwise it returns the problems found, joined:
// errors wrapping ErrFormat (a malformed trailer), ErrDigest, ErrTrailing.
// A stream that ends without a trailer gives ErrNoTrailer. Errors are
// sticky.
func (d *Reader) Next() (verb, name string, offset int64, err error) {
	if d.err != nil {
		return "", "", 0, d.err
	}
	verb, name, offset, err = d.next()
	if err != nil {
		d.err = err
	}
	return verb, name, offset, err
}

// next returns the next command, consuming SKIPPED lines on the way.
func (d *Reader) next() (string, string, int64, error) {
	for {
		verb, name, offset, err := d.nextLine()
		if err != nil || verb != Verb || name != "SKIPPED" {
			return verb, name, offset, err
		}
		s, err := d.readSkip(offset)
		if err != nil {
			return "", "", offset, err
		}
		d.Skipped++
		if d.OnSkip != nil {
			d.OnSkip(s, offset)
		}
	}
}

func (d *Reader) nextLine() (string, string, int64, error) {
	if d.inLine {
		if err := d.SkipLine(); err != nil {
			return "", "", 0, err
		}
	}
	t, err := d.dl.Next()
	if err == io.EOF {
		return "", "", d.dl.Offset(), fmt.Errorf("%w (truncated at offset %d?)", ErrNoTrailer, d.dl.Offset())
	}
	if err != nil {
		return "", "", 0, err
	}
	offset := t.Offset
	if t.Kind != dlist.Atom {
		return "", "", offset, fmt.Errorf("%w: offset %d: expected a command verb, found %v", ErrFormat, offset, t.Kind)
	}
	verb := string(t.Bytes)
	t, err = d.dl.Next()
	if err != nil {
		return "", "", offset, err
	}
	if t.Kind != dlist.Atom {
		return "", "", offset, fmt.Errorf("%w: offset %d: %s: expected a command name, found %v", ErrFormat, t.Offset, verb, t.Kind)
	}
	name := string(t.Bytes)
	d.inLine = true
	if verb == Verb && name == "TRAILER" {
		return "", "", offset, d.readTrailer(offset)
	}
	return verb, name, offset, nil
}

// SkipLine discards the rest of the current line, file literal bodies
// included, through its end.
func (d *Reader) SkipLine() error {
	for {
		t, err := d.dl.Next()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("%w: %w", ErrNoTrailer, io.ErrUnexpectedEOF)
			}
			return err
		}
		if t.Kind == dlist.EOL {
			d.inLine = false
			return nil
		}
	}
}

// EndLine reads the end of the current line and fails if anything but the
// line end is there.
func (d *Reader) EndLine() error {
	t, err := d.dl.Next()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if t.Kind != dlist.EOL {
		return fmt.Errorf("%w: offset %d: expected the end of the line, found %v", ErrFormat, t.Offset, t.Kind)
	}
	d.inLine = false
	return nil
}

// readTrailer reads the trailer line, whose verb and name have been read,
// and checks the digest and that nothing follows. It returns io.EOF when
// all is well, else the errors found, joined: ErrFormat for a malformed
// trailer, ErrDigest, ErrTrailing.
func (d *Reader) readTrailer(offset int64) error {
	// Everything before the trailer line is exactly what the digest covers.
	var sum [32]byte
	if d.th != nil {
		var err error
		if sum, err = d.th.sumBefore(offset); err != nil {
			return err
		}
	}
	v, err := d.dl.ReadValue()
	if err != nil {
		return fmt.Errorf("trailer at offset %d: %w", offset, err)
	}
	if err := d.EndLine(); err != nil {
		return fmt.Errorf("trailer at offset %d: %w", offset, err)
	}
	tr := &Trailer{Offset: offset, End: d.dl.Offset(), Sum: sum}
	var bad []error
	num := func(k string) int64 {
		n, err := v.Get(k).Num64()
		if err == nil && n > 1<<63-1 {
			err = dlist.ErrRange
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", k, err))
		}
		return int64(n)
	}
	tr.Mailboxes, tr.Messages, tr.Bytes = num("MAILBOXES"), num("MESSAGES"), num("BYTES")
	b, herr := hex.DecodeString(v.Get("BLAKE3").String())
	if herr != nil || len(b) != len(tr.BLAKE3) {
		bad = append(bad, errors.New("BLAKE3: not 64 hex digits"))
	} else {
		copy(tr.BLAKE3[:], b)
	}
	var errs []error
	if len(bad) > 0 {
		errs = append(errs, fmt.Errorf("%w: trailer at offset %d: %w", ErrFormat, offset, errors.Join(bad...)))
	} else {
		d.trailer = tr
		if d.th != nil && tr.BLAKE3 != sum {
			errs = append(errs, fmt.Errorf("%w: trailer at offset %d says %x, the %d bytes before it hash to %x",
				ErrDigest, offset, tr.BLAKE3, offset, sum))
		}
	}
	// Trailing data is checked whatever else was wrong, so that a caller
	// learns about all of it.
	if _, err := d.dl.Next(); err != io.EOF {
		errs = append(errs, fmt.Errorf("%w: offset %d", ErrTrailing, tr.End))
	}
	if len(errs) == 0 {
		return io.EOF
	}
	return errors.Join(errs...)
}

// Close releases the decoder. It does not close the underlying reader.
func (d *Reader) Close() error {
	if d.th != nil {
		d.th.stop()
	}
	if d.zr != nil {
		d.zr.Close()
	}
	return nil
}

// tailHasher reads the stream in large chunks and feeds everything read to
// BLAKE3, except the last `hold` bytes the dlist reader above has taken,
// which it keeps back until it knows whether they precede the trailer. The
// dlist reader parses the chunks in place (tailHasher is a dlist.Lender),
// and a token it is reading is within the last two chunks lent, so the
// trailer's start is always within the held-back bytes when it is found.
//
// The bytes are read from the source straight into the chunks, hashChunk
// bytes at a time, and lent from there: the dlist reader parses them, and
// verify's SHA-1 workers hash the file literals in them (dlist.Reader's
// LendBody), where they are. Read, for a reader that wants a copy,
// copies them once. The source sees few, large reads.
//
// The hashing runs beside the reading, on another core, in one goroutine
// that lives as long as the hashing does: each chunk that falls out of the
// held-back window is sent to that goroutine, which feeds it to BLAKE3 (in
// order) and releases it. A chunk is reused once the window, the BLAKE3
// goroutine and every holder of its bytes (Hold) have released it. At most
// maxChunks chunks exist, or maxChunks+maxHeld once bytes have been held,
// so the reading runs at most a few chunks ahead of the hashing, and
// nothing is allocated once they exist. Starting a goroutine per chunk
// instead cost a wake-up of an idle thread per chunk, thousands per
// gigabyte.
//
// The goroutine ends when the digest is taken (sumBefore), on Close, or,
// for a Reader dropped without either, when the tailHasher is collected.
type tailHasher struct {
	r       io.Reader
	rerr    error          // r's error, returned once the bytes read are taken
	h       *blake3.Hasher // owned by the goroutine until it has stopped
	held    []*chunk       // chunks read, not handed to h yet, oldest first
	heldLen int            // bytes in held
	unread  int            // bytes at the end of held not yet taken by Read or Lend (all in the last chunk)
	hashed  int64          // bytes handed to h
	hold    int
	chunks  int    // chunks allocated
	limit   int    // chunks allowed: maxChunks, maxChunks+maxHeld once Hold was called
	lent    *chunk // the chunk of the last Lend; nil after a Read
	done    bool   // sumBefore or Close was called: nothing is hashed any more
	dropped bool   // chunks were dropped unhashed after done
	closed  bool   // Close was called
	p       *hashPipe
}

// chunk is a buffer of the stream, reused once all its holders have
// released it: the window, then the BLAKE3 goroutine, and those Hold gave
// it to.
type chunk struct {
	b    []byte
	refs atomic.Int32
	free chan<- *chunk // where it goes when released; nil: dropped
}

// Release drops a hold on the chunk; the last one returns it to the free
// list, which has room for every chunk, so it never blocks.
func (c *chunk) Release() {
	if c.refs.Add(-1) == 0 && c.free != nil {
		c.b = c.b[:0]
		c.free <- c
	}
}

// hashPipe is what the hashing goroutine shares with its tailHasher.
type hashPipe struct {
	work    chan *chunk   // chunks to hash, in order
	free    chan *chunk   // chunks released, for reuse
	stopped chan struct{} // closed when the goroutine has returned
	once    sync.Once
}

// stop tells the goroutine to return once it has hashed what it was sent.
func (p *hashPipe) stop() { p.once.Do(func() { close(p.work) }) }

const (
	hashHold  = 256 << 10 // at least the dlist reader's read-ahead (a chunk)
	hashChunk = 256 << 10
	// maxChunks: at most two held in the window behind the reading and
	// the one being read into when a new one is needed (see pass), one
	// being hashed, one queued, so the reading never waits for a chunk
	// the goroutine will not give back. 1.5 MiB in all.
	maxChunks = 6
	// maxHeld: chunks more for those held by Hold (verify's SHA-1 workers
	// hashing file literals in place), 2 MiB. More let the reading run
	// further ahead of the hashing and cost more CPU: verify of a 0.97 GB
	// dump took 1.46 CPU s with 8, 1.50 with 16 or 64 (5 to 7 rounds
	// each, alternating).
	maxHeld = 8
)

func newTailHasher(r io.Reader) *tailHasher {
	t := &tailHasher{r: r, h: blake3.New(), hold: hashHold, limit: maxChunks}
	p := &hashPipe{
		work:    make(chan *chunk, maxChunks),
		free:    make(chan *chunk, maxChunks+maxHeld),
		stopped: make(chan struct{}),
	}
	t.p = p
	go hashChunks(t.h, p)
	// A Reader dropped without Close must not leave the goroutine behind.
	runtime.AddCleanup(t, func(p *hashPipe) { p.stop() }, p)
	return t
}

// hashChunks is the hashing goroutine: it refers to nothing of the
// tailHasher but h and p, so that the tailHasher can be collected.
func hashChunks(h *blake3.Hasher, p *hashPipe) {
	defer close(p.stopped)
	for c := range p.work {
		h.Write(c.b)
		c.Release()
	}
}

// Read copies bytes read ahead into p, reading the next part of the
// stream into a chunk when none are left.
func (t *tailHasher) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	t.lent = nil
	if t.unread == 0 {
		if t.rerr != nil {
			return 0, t.rerr
		}
		if err := t.fill(); err != nil {
			t.rerr = err
			if t.unread == 0 {
				return 0, err
			}
		}
	}
	last := t.held[len(t.held)-1].b
	n := copy(p, last[len(last)-t.unread:])
	t.unread -= n
	return n, nil
}

// Lend implements dlist.Lender: it returns the bytes read ahead, reading
// the next part of the stream into a chunk when none are left. They stay
// unchanged until hold bytes more have been taken, or longer with Hold.
func (t *tailHasher) Lend() ([]byte, error) {
	t.lent = nil
	if t.unread == 0 {
		if t.rerr != nil {
			return nil, t.rerr
		}
		if err := t.fill(); err != nil {
			t.rerr = err
			if t.unread == 0 {
				return nil, err
			}
		}
	}
	c := t.held[len(t.held)-1]
	b := c.b[len(c.b)-t.unread:]
	t.unread = 0
	t.lent = c
	return b, nil
}

// Hold implements dlist.Lender: it keeps the chunk of the last Lend from
// reuse until the Pin is released. From the first Hold on, up to maxHeld
// chunks more may exist.
func (t *tailHasher) Hold() dlist.Pin {
	if t.lent == nil {
		return nil
	}
	t.limit = maxChunks + maxHeld
	t.lent.refs.Add(1)
	return t.lent
}

// fill reads at least one byte of the stream into the last chunk, or a
// new one when it is full, or returns r's error.
func (t *tailHasher) fill() error {
	last := len(t.held) - 1
	if last < 0 || len(t.held[last].b) == cap(t.held[last].b) {
		// Pass on what has left the window first: the window must not
		// take more than maxChunks.
		t.pass()
		t.held = append(t.held, t.chunk())
		last = len(t.held) - 1
	}
	c := t.held[last]
	for range 100 {
		b := c.b
		n, err := t.r.Read(b[len(b):cap(b)])
		if n < 0 || n > cap(b)-len(b) {
			return io.ErrNoProgress
		}
		c.b = b[:len(b)+n]
		t.heldLen += n
		t.unread += n
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// pass sends the chunks that have left the held-back window (their bytes
// all taken, the last of them hold bytes or more before the next byte
// taken) to the hashing goroutine; once nothing is hashed any more, it
// releases them. The chunk being read into stays.
func (t *tailHasher) pass() {
	taken := t.heldLen - t.unread
	for len(t.held) > 1 && taken-len(t.held[0].b) >= t.hold {
		c := t.held[0]
		t.held[0] = nil
		t.held = t.held[1:]
		t.heldLen -= len(c.b)
		taken -= len(c.b)
		t.hashed += int64(len(c.b))
		if t.done {
			t.dropped = true
			c.Release()
			continue
		}
		t.p.work <- c // waits only while bytes are held (more than maxChunks chunks) and BLAKE3 is maxChunks behind
	}
}

// chunk returns an empty chunk, held once (by the window): a released
// one, a new one while fewer than the limit exist, else the next one
// released.
func (t *tailHasher) chunk() *chunk {
	var c *chunk
	select {
	case c = <-t.p.free:
	default:
		switch {
		case t.chunks < t.limit:
			t.chunks++
			c = &chunk{b: make([]byte, 0, hashChunk), free: t.p.free}
		case t.done:
			// The goroutine may have stopped with chunks unreleased;
			// this one is dropped when released.
			c = &chunk{b: make([]byte, 0, hashChunk)}
		default:
			c = <-t.p.free
		}
	}
	c.refs.Store(1)
	return c
}

// stop ends the hashing goroutine without waiting for it; the bytes read
// afterwards are not hashed.
func (t *tailHasher) stop() {
	t.closed = true
	t.done = true
	t.p.stop()
}

// sumBefore returns the digest of the first off bytes of the stream. The
// first call ends the hashing: the bytes read afterwards are not kept.
func (t *tailHasher) sumBefore(off int64) ([32]byte, error) {
	var sum [32]byte
	if t.closed {
		return sum, errors.New("dump reader used after Close")
	}
	if t.dropped {
		return sum, errors.New("internal error: the dump's digest taken after reading on")
	}
	if !t.done {
		t.done = true
		t.p.stop()
		<-t.p.stopped
	}
	k := off - t.hashed
	if k < 0 || k > int64(t.heldLen) {
		return sum, fmt.Errorf("internal error: trailer offset %d outside the held-back window", off)
	}
	h := t.h.Clone()
	for _, c := range t.held {
		if k <= 0 {
			break
		}
		n := min(int64(len(c.b)), k)
		h.Write(c.b[:n])
		k -= n
	}
	h.Sum(sum[:0])
	return sum, nil
}
