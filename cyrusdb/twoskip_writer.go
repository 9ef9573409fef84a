package cyrusdb

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
)

// TwoskipWriter writes a fresh twoskip file, as a Cyrus checkpoint does:
// header, DUMMY, the records in key order, one COMMIT. Records are added in
// strictly ascending key order (KeyLess).
//
// A record's forward pointers are known only when later records arrive, so
// the writer writes each record's bytes once in order and fills in its head
// (pointers and head CRC) with WriteAt as soon as the pointers are known.
// At most one record per skip-list level is waiting at any time, so memory
// stays constant however many records are written. Output is buffered;
// nothing is complete until Close returns nil.
//
// Levels come from a fixed-seed generator, so the same records always give
// the same bytes. BLANK padding is placed as Cyrus places it, so that when
// Cyrus later rewrites a record head in place the write stays inside one
// 512-byte block and cannot be torn by a crash.
type TwoskipWriter struct {
	w       io.WriterAt
	gen     uint64
	off     int64  // where the next record goes
	n       uint64 // records added
	pending [maxLevel]*pendingHead
	free    []*pendingHead
	rng     uint64
	prev    []byte
	buf     []byte // output not yet written, starting at bufOff
	bufOff  int64
	head    []byte // scratch for encoding heads
	err     error  // sticky
	closed  bool
}

// pendingHead is a record whose head waits for pointers.
type pendingHead struct {
	off        int64
	typ        byte
	level      int
	keyLen     uint64
	valLen     uint64
	ptr        [maxLevel + 1]uint64
	tailCRC    uint32
	unresolved int // levels whose successor is not yet known
}

// zeros is the source of record padding.
var zeros [8]byte

// flushSize is the output buffer size: the buffer is written once it
// holds that much. It starts at initBufSize and grows (append) only as
// far as the file needs: a small file (a user's seen db of a few records,
// written by the thousand in a restore) does not cost an allocation of
// flushSize, zeroed.
const (
	flushSize   = 64 << 10
	initBufSize = 4 << 10
)

// NewTwoskipWriter returns a writer of a twoskip file into w, from offset
// 0; w should be empty. generation is the header's generation: 1 for a new
// database, the old file's generation + 1 when the file will replace one
// by rename, so that Cyrus processes notice.
func NewTwoskipWriter(w io.WriterAt, generation uint64) *TwoskipWriter {
	tw := &TwoskipWriter{w: w, gen: generation, off: firstOffset, rng: 0x6d62746f6f6c2d31}
	tw.buf = make([]byte, firstOffset, initBufSize)
	dummy := tw.newPending(dummyOffset, typeDummy, maxLevel, 0, 0, 0)
	for k := range tw.pending {
		tw.pending[k] = dummy
	}
	return tw
}

func (tw *TwoskipWriter) newPending(off int64, typ byte, level int, keyLen, valLen uint64, tailCRC uint32) *pendingHead {
	var p *pendingHead
	if n := len(tw.free); n > 0 {
		p, tw.free = tw.free[n-1], tw.free[:n-1]
		*p = pendingHead{}
	} else {
		p = new(pendingHead)
	}
	p.off, p.typ, p.level, p.keyLen, p.valLen, p.tailCRC, p.unresolved = off, typ, level, keyLen, valLen, tailCRC, level
	return p
}

// level returns the next record's level: 1, plus one for each of up to 30
// successive heads of a fair coin (Cyrus's randlvl with PROB 0.5).
func (tw *TwoskipWriter) level() int {
	tw.rng += 0x9e3779b97f4a7c15 // splitmix64
	z := tw.rng
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return 1 + min(bits.TrailingZeros64(^z), maxLevel-1)
}

// headLen returns the length of a record head, CRCs included.
func headLen(level int, keyLen, valLen uint64) int {
	n := 8 + 8*(level+1) + 8
	if keyLen >= 0xFFFF {
		n += 8
	}
	if valLen >= 0xFFFFFFFF {
		n += 8
	}
	return n
}

// appendHead appends the encoded head of p to b.
func appendHead(b []byte, p *pendingHead) []byte {
	start := len(b)
	b = append(b, p.typ, byte(p.level))
	b = binary.BigEndian.AppendUint16(b, uint16(min(p.keyLen, 0xFFFF)))
	b = binary.BigEndian.AppendUint32(b, uint32(min(p.valLen, 0xFFFFFFFF)))
	if p.keyLen >= 0xFFFF {
		b = binary.BigEndian.AppendUint64(b, p.keyLen)
	}
	if p.valLen >= 0xFFFFFFFF {
		b = binary.BigEndian.AppendUint64(b, p.valLen)
	}
	for i := 0; i <= p.level; i++ {
		b = binary.BigEndian.AppendUint64(b, p.ptr[i])
	}
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
	return binary.BigEndian.AppendUint32(b, p.tailCRC)
}

// Add appends a record. key must be non-empty and sort after the previous
// key.
func (tw *TwoskipWriter) Add(key, value []byte) error {
	if tw.closed {
		return ErrClosed
	}
	if tw.err != nil {
		return tw.err
	}
	if len(key) == 0 {
		return fmt.Errorf("%w: record %d", ErrEmptyKey, tw.n+1)
	}
	if tw.n > 0 && !KeyLess(tw.prev, key) {
		return fmt.Errorf("%w: %q after %q", ErrKeyOrder, key, tw.prev)
	}
	tw.prev = append(tw.prev[:0], key...)

	level := tw.level()
	kl, vl := uint64(len(key)), uint64(len(value))
	pad := int(roundup8(int64(kl+vl)) - int64(kl+vl))
	crc := crc32.Update(crc32.Update(crc32.Update(0, crc32.IEEETable, key), crc32.IEEETable, value), crc32.IEEETable, zeros[:pad])
	hl := headLen(level, kl, vl)
	tw.pad(hl)
	p := tw.newPending(tw.off, typeRecord, level, kl, vl, crc)

	// The head is a placeholder until its pointers are known.
	tw.buf = growLen(tw.buf, hl)
	clear(tw.buf[len(tw.buf)-hl:])
	tw.appendData(key)
	tw.appendData(value)
	tw.appendData(zeros[:pad])
	if tw.err != nil {
		return tw.err
	}
	for k := 0; k < level; k++ {
		q := tw.pending[k]
		if k == 0 {
			// Slot 1, as in Cyrus's fresh files: _setloc overwrites slot
			// 1 when both slots are equal (docs/cyrus/files.md §5).
			q.ptr[1] = uint64(tw.off)
		} else {
			q.ptr[k+1] = uint64(tw.off)
		}
		if q.unresolved--; q.unresolved == 0 {
			tw.writeHead(q)
		}
		tw.pending[k] = p
	}
	tw.off += int64(hl) + int64(kl+vl) + int64(pad)
	tw.n++
	if len(tw.buf) >= flushSize {
		tw.flush()
	}
	return tw.err
}

// blank is Cyrus's 8-byte filler, never pointed to.
var blank = []byte(" BLANK\x07\xa0")

// blockSize is the disk block a record head must not straddle.
const blockSize = 512

// pad adds BLANKs before a record with a head of headLen bytes, as Cyrus's
// add_padding does: until the head, less its first 8 bytes that are never
// rewritten, lies within one block.
func (tw *TwoskipWriter) pad(headLen int) {
	if headLen > blockSize-8 {
		return
	}
	for (tw.off+8)%blockSize > (tw.off-8+int64(headLen))%blockSize {
		tw.buf = append(tw.buf, blank...)
		tw.off += int64(len(blank))
	}
}

// appendData adds record bytes to the output, writing large ones directly.
func (tw *TwoskipWriter) appendData(b []byte) {
	if len(b) < flushSize {
		tw.buf = append(tw.buf, b...)
		return
	}
	tw.flush()
	if tw.err == nil {
		tw.writeAt(b, tw.bufOff)
		tw.bufOff += int64(len(b))
	}
}

// flush writes the buffered output.
func (tw *TwoskipWriter) flush() {
	if tw.err != nil || len(tw.buf) == 0 {
		return
	}
	tw.writeAt(tw.buf, tw.bufOff)
	tw.bufOff += int64(len(tw.buf))
	tw.buf = tw.buf[:0]
}

func (tw *TwoskipWriter) writeAt(b []byte, off int64) {
	if tw.err != nil {
		return
	}
	if _, err := tw.w.WriteAt(b, off); err != nil {
		tw.err = fmt.Errorf("cyrusdb: writing twoskip at offset %d: %w", off, err)
	}
}

// writeHead writes p's finished head, into the buffer if it is still
// there, and recycles p.
func (tw *TwoskipWriter) writeHead(p *pendingHead) {
	tw.head = appendHead(tw.head[:0], p)
	if p.off >= tw.bufOff && p.off+int64(len(tw.head)) <= tw.bufOff+int64(len(tw.buf)) {
		copy(tw.buf[p.off-tw.bufOff:], tw.head)
	} else {
		tw.writeAt(tw.head, p.off)
	}
	tw.free = append(tw.free, p)
}

// Close finishes the file: the remaining heads, a COMMIT record (none for
// an empty database, as Cyrus creates it) and the header. It does not
// close or sync the underlying file.
func (tw *TwoskipWriter) Close() error {
	if tw.closed {
		return ErrClosed
	}
	tw.closed = true
	if tw.err != nil {
		return tw.err
	}
	for k, p := range tw.pending {
		tw.pending[k] = nil
		if p.unresolved--; p.unresolved == 0 {
			tw.writeHead(p)
		}
	}
	h := TwoskipHeader{Version: version, Generation: tw.gen, NumRecords: tw.n, RepackSize: uint64(tw.off), CurrentSize: uint64(tw.off)}
	if tw.n > 0 {
		tw.pad(minRecord) // after repack_size is taken, as in mycheckpoint
		commit := pendingHead{off: tw.off, typ: typeCommit}
		commit.ptr[0] = firstOffset
		tw.buf = appendHead(tw.buf, &commit)
		tw.off += minRecord
		h.CurrentSize = uint64(tw.off)
	}
	tw.flush()
	tw.writeAt(appendHeader(tw.head[:0], h), 0)
	if tw.err == nil {
		counters.freshFiles.Add(1)
	}
	return tw.err
}

// Size returns the number of bytes written, or to be written, so far; after
// Close it is the file size.
func (tw *TwoskipWriter) Size() int64 { return tw.off }

// WriteTwoskip writes a fresh twoskip file (see TwoskipWriter) holding the
// records next returns, which must come in strictly ascending key order
// (else an error wrapping ErrKeyOrder) with non-empty keys. next reports
// ok=false after the last record.
//
// If w implements io.WriterAt, as *os.File does, the file is written with
// WriteAt from offset 0 and memory use is constant; w should be empty.
// Otherwise the file is assembled in memory and written with one Write.
func WriteTwoskip(w io.Writer, generation uint64, next func() (key, value []byte, ok bool)) error {
	wa, direct := w.(io.WriterAt)
	var mem memWriterAt
	if !direct {
		wa = &mem
	}
	tw := NewTwoskipWriter(wa, generation)
	for {
		k, v, ok := next()
		if !ok {
			break
		}
		if err := tw.Add(k, v); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if !direct {
		if _, err := w.Write(mem.b); err != nil {
			return fmt.Errorf("cyrusdb: writing twoskip: %w", err)
		}
	}
	return nil
}

// memWriterAt is a growing in-memory io.WriterAt.
type memWriterAt struct{ b []byte }

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = growLen(m.b, int(end)-len(m.b))
	}
	return copy(m.b[off:], p), nil
}
