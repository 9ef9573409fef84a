package syncrec

import (
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
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
			if v, ok := parseHex64(a.Value); ok {
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

// parseHex64 parses hex digits as strconv.ParseUint(s, 16, 64) does, without
// the string (which its error would keep, so that it is allocated for every
// record).
func parseHex64(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		if v>>60 != 0 {
			return 0, false // out of range
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}
