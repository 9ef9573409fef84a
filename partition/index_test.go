package partition

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"testing"
)

// testdata/alice.index is user.alice's cyrus.index from a populated lab
// (Cyrus 3.6.1): 36 records, UIDs 10-12 expunged, 13-14 \Deleted.
func readTestIndex(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/alice.index")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIndexReal(t *testing.T) {
	b := readTestIndex(t)
	h, err := ParseIndexHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.MinorVersion != 17 || h.StartOffset != 160 || h.RecordSize != 112 || int64(len(b)) < h.Size() {
		t.Fatalf("header %+v for a %d-byte file", h, len(b))
	}
	var exists, deleted, answered, flagged, unseen uint32
	var used, maxModseq uint64
	var prev uint32
	for i := 0; i < int(h.NumRecords); i++ {
		off := int(h.StartOffset) + i*int(h.RecordSize)
		r, err := ParseRecord(b[off:off+int(h.RecordSize)], h.MinorVersion)
		if err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		if r.UID <= prev || r.UID > h.LastUID {
			t.Errorf("record %d: uid %d after %d (last_uid %d)", i+1, r.UID, prev, h.LastUID)
		}
		prev = r.UID
		maxModseq = max(maxModseq, r.Modseq)
		if r.Expunged() {
			continue
		}
		exists++
		used += uint64(r.Size)
		for _, c := range []struct {
			flag uint32
			n    *uint32
		}{{FlagDeleted, &deleted}, {FlagAnswered, &answered}, {FlagFlagged, &flagged}} {
			if r.Has(c.flag) {
				*c.n++
			}
		}
		if !r.Has(FlagSeen) {
			unseen++
		}
	}
	// The header's counters are maintained by Cyrus; recomputing them
	// from the records checks the decoding of both.
	if exists != h.Exists || deleted != h.Deleted || answered != h.Answered ||
		flagged != h.Flagged || unseen != h.Unseen || used != h.QuotaMailboxUsed {
		t.Errorf("recomputed exists %d deleted %d answered %d flagged %d unseen %d used %d; header %+v",
			exists, deleted, answered, flagged, unseen, used, h)
	}
	if maxModseq > h.HighestModseq || h.NumRecords-exists != 3 {
		t.Errorf("highest modseq %d of records > header %d, or %d expunged", maxModseq, h.HighestModseq, h.NumRecords-exists)
	}
}

func TestParseIndexDamage(t *testing.T) {
	orig := readTestIndex(t)
	h, err := ParseIndexHeader(orig)
	if err != nil {
		t.Fatal(err)
	}
	// Every byte of the header is covered by its CRC; every byte of each
	// record by the record CRC.
	for off := 0; off < int(h.StartOffset); off++ {
		b := append([]byte(nil), orig...)
		b[off] ^= 0x40
		_, err := ParseIndexHeader(b)
		switch {
		case off >= 8 && off < 12:
			if !errors.Is(err, ErrVersion) {
				t.Errorf("header byte %d (version): %v", off, err)
			}
		case !errors.Is(err, ErrChecksum):
			t.Errorf("header byte %d flipped: %v", off, err)
		}
	}
	rs := int(h.RecordSize)
	for _, recno := range []int{1, 17, int(h.NumRecords)} {
		base := int(h.StartOffset) + (recno-1)*rs
		for off := 0; off < rs; off++ {
			b := append([]byte(nil), orig[base:base+rs]...)
			b[off] ^= 0x01
			if _, err := ParseRecord(b, h.MinorVersion); !errors.Is(err, ErrChecksum) {
				t.Fatalf("record %d byte %d flipped: %v", recno, off, err)
			}
		}
	}
	for _, n := range []int{0, 11, 12, 100, 159} {
		if _, err := ParseIndexHeader(orig[:n]); err == nil {
			t.Errorf("header truncated to %d bytes accepted", n)
		}
	}
	if _, err := ParseRecord(orig[160:160+rs-1], 17); !errors.Is(err, ErrBadFormat) {
		t.Errorf("short record: %v", err)
	}
}

// rewriteVersion re-encodes a v17 header as an older minor version, the way
// imap/mailbox.c mailbox_index_header_to_buf would, so the older layouts
// are exercised with real values.
func TestParseIndexOlderVersions(t *testing.T) {
	orig := readTestIndex(t)
	h17, _ := ParseIndexHeader(orig)
	r17, _ := ParseRecord(orig[160:], 17)
	for v := uint32(12); v <= 16; v++ {
		hs, rs, _ := indexLayout(v)
		hb := append([]byte(nil), orig[:hs]...)
		be := binary.BigEndian
		be.PutUint32(hb[8:], v)
		be.PutUint32(hb[16:], uint32(rs))
		be.PutUint32(hb[12:], uint32(hs))
		if v < 17 && hs == 160 {
			be.PutUint32(hb[136:], 0)
		}
		be.PutUint32(hb[hs-4:], crc32.ChecksumIEEE(hb[:hs-4]))
		h, err := ParseIndexHeader(hb)
		if err != nil {
			t.Fatalf("v%d header: %v", v, err)
		}
		if h.UIDValidity != h17.UIDValidity || h.HighestModseq != h17.HighestModseq || h.LastUID != h17.LastUID {
			t.Errorf("v%d header %+v", v, h)
		}
		if v < 17 && h.ChangesEpoch != h.LastRepackTime {
			t.Errorf("v%d changes_epoch %d", v, h.ChangesEpoch)
		}
		rb := make([]byte, rs)
		copy(rb, orig[160:160+88]) // common part, through the modseq
		crcAt := rs - 4
		switch {
		case v == 12:
			be.PutUint32(rb[88:], r17.CacheCRC)
		case v < 16:
			be.PutUint64(rb[88:], 0x1234)
			be.PutUint32(rb[96:], r17.CacheCRC)
		default:
			copy(rb, orig[160:160+rs])
		}
		be.PutUint32(rb[crcAt:], crc32.ChecksumIEEE(rb[:crcAt]))
		r, err := ParseRecord(rb, v)
		if err != nil {
			t.Fatalf("v%d record: %v", v, err)
		}
		if r.UID != r17.UID || r.GUID != r17.GUID || r.Modseq != r17.Modseq || r.CacheCRC != r17.CacheCRC {
			t.Errorf("v%d record %+v, want fields of %+v", v, r, r17)
		}
		if (v == 13 || v == 14 || v == 15) && r.CID != 0x1234 {
			t.Errorf("v%d cid %x", v, r.CID)
		}
		if v < 15 && r.SaveDate != 0 || v >= 15 && r.SaveDate != r17.SaveDate {
			t.Errorf("v%d savedate %d", v, r.SaveDate)
		}
	}
	for _, v := range []uint32{0, 6, 10, 11, 18, 1 << 31} {
		b := append([]byte(nil), orig...)
		binary.BigEndian.PutUint32(b[8:], v)
		if _, err := ParseIndexHeader(b); !errors.Is(err, ErrVersion) {
			t.Errorf("version %d: %v", v, err)
		}
	}
}

func TestReadTimeAdjustments(t *testing.T) {
	b := append([]byte(nil), readTestIndex(t)[:160]...)
	be := binary.BigEndian
	be.PutUint32(b[84:], 0) // exists
	be.PutUint32(b[60:], 0) // options
	be.PutUint64(b[68:], 0) // highestmodseq
	be.PutUint32(b[156:], crc32.ChecksumIEEE(b[:156]))
	h, err := ParseIndexHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Options != OptPOP3NewUIDL || h.RawOptions != 0 || h.HighestModseq != 1 || h.RawHighestModseq != 0 {
		t.Errorf("adjustments: %+v", h)
	}
	if OptionsString(h.Options) != "P" {
		t.Errorf("options %q", OptionsString(h.Options))
	}
}

func FuzzParseIndex(f *testing.F) {
	b := readTestIndex(f)
	f.Add(b[:160+2*112])
	f.Add(b[:128])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseIndexHeader(b)
		if err != nil {
			return
		}
		for i := 0; i < int(h.NumRecords); i++ {
			off := int64(h.StartOffset) + int64(i)*int64(h.RecordSize)
			if off >= int64(len(b)) {
				break
			}
			if off+int64(h.RecordSize) > int64(len(b)) {
				if _, err := ParseRecord(b[off:], h.MinorVersion); err == nil {
					t.Fatal("short record accepted")
				}
				break
			}
			ParseRecord(b[off:off+int64(h.RecordSize)], h.MinorVersion)
		}
	})
}
