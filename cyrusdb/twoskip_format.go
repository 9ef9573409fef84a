package cyrusdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Twoskip file layout (lib/cyrusdb_twoskip.c, Cyrus 3.6.1).
const (
	headerSize  = 64
	dummyOffset = headerSize
	maxLevel    = 31 // levels of the DUMMY, and the most any record has
	dummySize   = 8 + 8*(maxLevel+1) + 8
	firstOffset = dummyOffset + dummySize // 336: where records start
	maxHeadSize = 8 + 16 + 8*(maxLevel+1) + 8
	minRecord   = 24 // type..vallen, one pointer, two CRCs
	flagDirty   = 1
	version     = 1

	typeDummy  = '='
	typeRecord = '+'
	typeDelete = '-'
	typeCommit = '$'
)

var twoskipMagic = []byte("\xa1\x02\x8b\x0dtwoskip file\x00\x00\x00\x00")

// TwoskipHeader is the 64-byte header of a twoskip file.
type TwoskipHeader struct {
	Version     uint32 // format version, 1
	Generation  uint64 // incremented by every checkpoint (rewrite by rename)
	NumRecords  uint64 // number of live keys
	RepackSize  uint64 // file size right after the last checkpoint
	CurrentSize uint64 // logical end: the file size at the last commit
	Flags       uint32 // bit 0: DIRTY, a transaction is in progress
}

// Dirty reports whether the DIRTY flag is set: a writer started a
// transaction and has not finished it (or crashed).
func (h TwoskipHeader) Dirty() bool { return h.Flags&flagDirty != 0 }

// appendHeader appends the encoded header, with its CRC, to b.
func appendHeader(b []byte, h TwoskipHeader) []byte {
	start := len(b)
	b = append(b, twoskipMagic...)
	b = binary.BigEndian.AppendUint32(b, h.Version)
	b = binary.BigEndian.AppendUint64(b, h.Generation)
	b = binary.BigEndian.AppendUint64(b, h.NumRecords)
	b = binary.BigEndian.AppendUint64(b, h.RepackSize)
	b = binary.BigEndian.AppendUint64(b, h.CurrentSize)
	b = binary.BigEndian.AppendUint32(b, h.Flags)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// parseHeader decodes and checks a 64-byte header.
func parseHeader(name string, b []byte) (TwoskipHeader, error) {
	var h TwoskipHeader
	if !bytes.Equal(b[:20], twoskipMagic) {
		return h, &CorruptError{name, 0, "not a twoskip file (bad magic)"}
	}
	if got, want := crc32.ChecksumIEEE(b[:60]), binary.BigEndian.Uint32(b[60:]); got != want {
		return h, &CorruptError{name, 60, fmt.Sprintf("header crc mismatch: stored %08x, computed %08x", want, got)}
	}
	h.Version = binary.BigEndian.Uint32(b[20:])
	h.Generation = binary.BigEndian.Uint64(b[24:])
	h.NumRecords = binary.BigEndian.Uint64(b[32:])
	h.RepackSize = binary.BigEndian.Uint64(b[40:])
	h.CurrentSize = binary.BigEndian.Uint64(b[48:])
	h.Flags = binary.BigEndian.Uint32(b[56:])
	if h.Version > version {
		return h, &CorruptError{name, 20, fmt.Sprintf("unsupported version %d", h.Version)}
	}
	return h, nil
}

// record is a decoded record head. Pointer slot i is ptr[i]; level 0 of
// the skip list uses the two slots ptr[0] and ptr[1], level k ≥ 1 uses
// ptr[k+1], so a record with level byte L is on levels 0..L-1.
type record struct {
	off     int64
	typ     byte
	level   int
	keyLen  int64
	valLen  int64
	headLen int64 // bytes from off to the key, CRCs included
	dataLen int64 // key, value and padding: keyLen+valLen rounded up to 8
	tailCRC uint32
	ptr     [maxLevel + 1]uint64
}

// dataOff returns the offset of the record's key.
func (r *record) dataOff() int64 { return r.off + r.headLen }

// roundup8 rounds n up to a multiple of 8.
func roundup8(n int64) int64 { return (n + 7) &^ 7 }

// cursor reads records of one file below its logical end through a window
// buffer, so a walk over records laid out in order costs one read per
// window. Slices it returns are valid until its next read.
type cursor struct {
	name    string
	r       io.ReaderAt
	end     int64 // current_size: nothing at or past it is committed
	win     []byte
	maxWin  int // the window grows up to this size as a walk goes on
	refills int
	wOff    int64 // file offset of win[0]
	wLen    int   // valid bytes in win
	big     []byte
}

func newCursor(name string, r io.ReaderAt, end int64, window int) *cursor {
	return &cursor{name: name, r: r, end: end, win: make([]byte, min(window, lookupWindow)), maxWin: window}
}

// readChunk is the size in which reads larger than the window grow their
// buffer, so a bogus length cannot make the reader allocate more than the
// file actually delivers.
const readChunk = 1 << 20

// read returns the n bytes at off; the caller has checked off+n <= end.
func (c *cursor) read(off, n int64) ([]byte, error) {
	if off >= c.wOff && off+n <= c.wOff+int64(c.wLen) {
		return c.win[off-c.wOff : off-c.wOff+n], nil
	}
	if n <= int64(c.maxWin) {
		if len(c.win) < c.maxWin && n > int64(len(c.win))/2 || c.refills > 1 && len(c.win) < c.maxWin {
			// A walk reads on: grow the window towards maxWin, so a
			// lookup or a short walk reads little and a long walk
			// reads in large windows.
			c.win = make([]byte, min(max(2*len(c.win), int(n)), c.maxWin))
		}
		c.refills++
		want := min(int64(len(c.win)), c.end-off)
		got, err := c.r.ReadAt(c.win[:want], off)
		c.wOff, c.wLen = off, got
		if int64(got) < n {
			c.wLen = 0
			return nil, c.readErr(off, err)
		}
		return c.win[:n], nil
	}
	c.big = c.big[:0]
	for int64(len(c.big)) < n {
		k := min(n-int64(len(c.big)), readChunk)
		c.big = growLen(c.big, int(k))
		dst := c.big[len(c.big)-int(k):]
		got, err := c.r.ReadAt(dst, off+int64(len(c.big))-k)
		if int64(got) < k {
			return nil, c.readErr(off, err)
		}
	}
	return c.big, nil
}

// growLen extends b by k bytes, reallocating as append would.
func growLen(b []byte, k int) []byte {
	if cap(b)-len(b) < k {
		nb := make([]byte, len(b), max(2*cap(b), len(b)+k))
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+k]
}

func (c *cursor) readErr(off int64, err error) error {
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		return &CorruptError{c.name, off, "file ends before current_size"}
	}
	return fmt.Errorf("cyrusdb: %s: read at offset %d: %w", c.name, off, err)
}

func (c *cursor) corrupt(off int64, format string, args ...any) error {
	return &CorruptError{c.name, off, fmt.Sprintf(format, args...)}
}

// readRecord reads and checks the head of the record at off: alignment,
// bounds (the whole record must lie below the logical end), level and head
// CRC. It does not read the key and value.
func (c *cursor) readRecord(off uint64, rec *record) error {
	if off%8 != 0 || off < dummyOffset || off >= uint64(c.end) || c.end-int64(off) < minRecord {
		return c.corrupt(int64(off), "record pointer %d out of range (end %d)", off, c.end)
	}
	o := int64(off)
	counters.recordReads.Add(1)
	b, err := c.read(o, min(maxHeadSize, c.end-o))
	if err != nil {
		return err
	}
	rec.off = o
	rec.typ = b[0]
	rec.level = int(b[1])
	if rec.level > maxLevel {
		return c.corrupt(o, "record level %d above %d", rec.level, maxLevel)
	}
	keyLen := uint64(binary.BigEndian.Uint16(b[2:]))
	valLen := uint64(binary.BigEndian.Uint32(b[4:]))
	h := 8
	if keyLen == 0xFFFF {
		if len(b) < h+8 {
			return c.corrupt(o, "record head past end")
		}
		keyLen = binary.BigEndian.Uint64(b[h:])
		h += 8
	}
	if valLen == 0xFFFFFFFF {
		if len(b) < h+8 {
			return c.corrupt(o, "record head past end")
		}
		valLen = binary.BigEndian.Uint64(b[h:])
		h += 8
	}
	crcAt := h + 8*(rec.level+1)
	if len(b) < crcAt+8 {
		return c.corrupt(o, "record head past end")
	}
	room := uint64(c.end - o - int64(crcAt+8))
	if keyLen > room || valLen > room || keyLen+valLen > room || roundup8(int64(keyLen+valLen)) > int64(room) {
		return c.corrupt(o, "record of key length %d and value length %d past end %d", keyLen, valLen, c.end)
	}
	for i := 0; i <= rec.level; i++ {
		rec.ptr[i] = binary.BigEndian.Uint64(b[h+8*i:])
	}
	clear(rec.ptr[rec.level+1:])
	if got, want := crc32.ChecksumIEEE(b[:crcAt]), binary.BigEndian.Uint32(b[crcAt:]); got != want {
		return c.corrupt(o, "head crc mismatch: stored %08x, computed %08x", want, got)
	}
	rec.tailCRC = binary.BigEndian.Uint32(b[crcAt+4:])
	rec.keyLen, rec.valLen = int64(keyLen), int64(valLen)
	rec.headLen = int64(crcAt + 8)
	rec.dataLen = roundup8(rec.keyLen + rec.valLen)
	return nil
}

// readData reads the key and value of rec and checks the tail CRC. The
// slices are valid until the cursor's next read.
func (c *cursor) readData(rec *record) (key, value []byte, err error) {
	b, err := c.read(rec.dataOff(), rec.dataLen)
	if err != nil {
		return nil, nil, err
	}
	if got := crc32.ChecksumIEEE(b); got != rec.tailCRC {
		return nil, nil, c.corrupt(rec.off, "tail crc mismatch: stored %08x, computed %08x", rec.tailCRC, got)
	}
	return b[:rec.keyLen], b[rec.keyLen : rec.keyLen+rec.valLen], nil
}

// next returns rec's successor on level, applying the level-0 rule of
// _getloc: a slot at or past the logical end belongs to an uncommitted
// transaction; otherwise the larger (newer) slot wins.
func (c *cursor) next(rec *record, level int) uint64 {
	if level > 0 {
		return rec.ptr[level+1]
	}
	end := uint64(c.end)
	p0, p1 := rec.ptr[0], rec.ptr[1]
	switch {
	case p0 >= end:
		return p1
	case p1 >= end:
		return p0
	case p0 > p1:
		return p0
	default:
		return p1
	}
}
