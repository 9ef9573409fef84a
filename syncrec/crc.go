package syncrec

import (
	"hash/crc32"
	"strconv"
	"strings"
	"sync"

	"github.com/mbtool/mbtool/dlist"
)

// CRC accumulates the two replication checksums of a mailbox over its
// records (docs/cyrus/replication.md §4). Both are XORs, so records may be added in
// any order.
type CRC struct {
	Basic uint32 // SYNC_CRC
	Annot uint32 // SYNC_CRC_ANNOT
}

// NewCRC returns the checksums of a mailbox with no records.
func NewCRC() CRC { return CRC{Basic: 0, Annot: annotCRCInit} }

// Add adds r's contribution. Expunged records contribute nothing.
func (c *CRC) Add(r *Record) {
	basic, annot := RecordCRC(r)
	c.Basic ^= basic
	c.Annot ^= annot
}

// Equal compares as Cyrus's mailbox_crceq does: a zero on either side
// matches anything.
func Equal(a, b uint32) bool { return a == 0 || b == 0 || a == b }

// crcBufs are RecordCRC's buffers.
var crcBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// RecordCRC returns r's terms of the basic and the annotation CRC; both are
// zero for an expunged record.
func RecordCRC(r *Record) (basic, annot uint32) {
	if r.Expunged() {
		return 0, 0
	}
	// A pooled buffer: crc32's dispatch makes any buffer it reads escape,
	// and one on the stack was an allocation per record.
	bp := crcBufs.Get().(*[]byte)
	var b []byte
	basic, annot, b = recordCRC(r, (*bp)[:0])
	if cap(b) <= 4<<10 {
		*bp = b[:0] // keep what appending grew, within bounds
	}
	crcBufs.Put(bp)
	return basic, annot
}

// recordCRC is RecordCRC with b to build the CRCs' input in; it returns
// b, grown as needed.
func recordCRC(r *Record, b []byte) (basic, annot uint32, _ []byte) {
	var flagcrc uint32
	for _, f := range r.Flags {
		if strings.HasPrefix(f, `\`) && !isSystemFlag(f) {
			continue // Cyrus ignores unknown system flags on receipt
		}
		b = appendLower(b[:0], f)
		flagcrc ^= crc32.ChecksumIEEE(b)
	}
	b = strconv.AppendUint(b[:0], uint64(r.UID), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, r.Modseq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.LastUpdated, 10)
	b = append(b, ' ', '(')
	b = strconv.AppendUint(b, uint64(flagcrc), 10)
	b = append(b, ')', ' ')
	b = strconv.AppendInt(b, r.InternalDate, 10)
	b = append(b, ' ')
	b = r.GUID.AppendHex(b)
	basic = crc32.ChecksumIEEE(b)

	for i := range r.Annotations {
		a := &r.Annotations[i]
		b = strconv.AppendUint(b[:0], uint64(r.UID), 10)
		b = append(b, ' ')
		b = append(b, a.Entry...)
		b = append(b, ' ')
		b = append(b, a.UserID...)
		b = append(b, ' ')
		h := crc32.Update(0, crc32.IEEETable, b)
		if a.Entry == AnnotThrID {
			// The wire pads thrid to 16 hex digits; the CRC does not.
			// The value is read as Cyrus's dlist_gethex64 reads it:
			// 1 to 16 hex digits, else it counts as it is.
			if v, ok := dlist.HexDigits(a.Value); ok && len(a.Value) <= 16 {
				h = crc32.Update(h, crc32.IEEETable, strconv.AppendUint(b[:0], v, 16))
				annot ^= h
				continue
			}
		}
		annot ^= crc32.Update(h, crc32.IEEETable, a.Value)
	}
	return basic, annot, b
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// isSystemFlag reports whether f names one of Cyrus's system flags (case
// insensitive), \Expunged included.
func isSystemFlag(f string) bool {
	// EqualFold rather than ToLower: no allocation per flag and record.
	for _, s := range [...]string{`\seen`, `\expunged`, `\answered`, `\flagged`, `\deleted`, `\draft`} {
		if strings.EqualFold(f, s) {
			return true
		}
	}
	return false
}
