package cyrusdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

// damagedSamples are the twoskip files whose every byte is flipped.
func damagedSamples(t *testing.T) map[string][]byte {
	m := map[string][]byte{"written": writeTwoskip(t, 2, genRecords(12))}
	for _, name := range []string{"twoskip-basic.db", "twoskip-dirty.db", "twoskip-empty.db", "twoskip-alldeleted.db", "twoskip-history.db"} {
		m[name] = readFile(t, "testdata/"+name)
	}
	return m
}

// mustCorrupt fails t unless err is a *CorruptError within the file.
func mustCorrupt(t *testing.T, what string, err error, size int) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: error %v is not a *CorruptError", what, err)
	}
	if ce.Offset < 0 || ce.Offset > int64(size) {
		t.Fatalf("%s: offset %d outside the file of %d bytes", what, ce.Offset, size)
	}
	if !strings.HasPrefix(err.Error(), "cyrusdb: ") || !strings.Contains(err.Error(), fmt.Sprintf("offset %d: ", ce.Offset)) {
		t.Fatalf("%s: bad message %q", what, err)
	}
}

// readDamaged reads b every way; each way must give either a
// *CorruptError or exactly the undamaged content. It reports whether the
// damage was detected.
func readDamaged(t *testing.T, what string, b []byte, want [][2][]byte) bool {
	t.Helper()
	ts, err := ReadTwoskip(what, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		mustCorrupt(t, what, err, len(b))
		return true
	}
	detected := false
	got, err := collect(ts, nil)
	if err != nil {
		mustCorrupt(t, what+" ForEach", err, len(b))
		detected = true
	} else if !equalRecords(got, want) {
		t.Fatalf("%s: damage undetected, ForEach gave %q, want %q", what, got, want)
	}
	step := max(1, len(want)/12) // a spread of lookups, and the last key
	for i, r := range want {
		if i%step != 0 && i != len(want)-1 {
			continue
		}
		v, ok, err := ts.Get(r[0])
		if err != nil {
			mustCorrupt(t, what+" Get", err, len(b))
			detected = true
		} else if !ok || !bytes.Equal(v, r[1]) {
			t.Fatalf("%s: damage undetected, Get(%q) = %q, %v", what, r[0], v, ok)
		}
	}
	if len(want) > 0 {
		prefix := want[len(want)/2][0]
		got, err := collect(ts, prefix)
		if err != nil {
			mustCorrupt(t, what+" ForEach prefix", err, len(b))
			detected = true
		} else if len(got) == 0 || !bytes.Equal(got[0][0], prefix) {
			t.Fatalf("%s: damage undetected, ForEach(%q) gave %q", what, prefix, got)
		}
	}
	return detected
}

// TestFlipEveryByte damages every byte of real files in turn.
func TestFlipEveryByte(t *testing.T) {
	for name, orig := range damagedSamples(t) {
		t.Run(name, func(t *testing.T) {
			want, err := collect(readTwoskip(t, orig), nil)
			if err != nil {
				t.Fatal(err)
			}
			detected, flips := 0, []byte{0xFF, 0x01}
			if len(orig) > 4096 {
				flips = flips[:1] // keep the test fast
			}
			b := bytes.Clone(orig)
			for i := range b {
				for _, x := range flips {
					b[i] ^= x
					if readDamaged(t, fmt.Sprintf("%s byte %d ^ %#x", name, i, x), b, want) {
						detected++
					}
					b[i] ^= x
				}
			}
			t.Logf("%d bytes, %d of %d flips detected, the rest harmless", len(b), detected, len(flips)*len(b))
		})
	}
}

// TestTruncateEverywhere cuts real files at every length.
func TestTruncateEverywhere(t *testing.T) {
	for name, orig := range damagedSamples(t) {
		t.Run(name, func(t *testing.T) {
			ts := readTwoskip(t, orig)
			want, err := collect(ts, nil)
			if err != nil {
				t.Fatal(err)
			}
			for n := 1; n < len(orig); n++ {
				what := fmt.Sprintf("%s cut to %d", name, n)
				if uint64(n) >= ts.Header().CurrentSize {
					readDamaged(t, what, orig[:n], want) // the committed part is whole
				} else if !readDamaged(t, what, orig[:n], want) {
					t.Fatalf("%s: not detected", what)
				}
			}
		})
	}
}

// patchRecord rewrites the head of the record at off in b with its CRC
// recomputed, so that only the format rules can catch the change.
func patchRecord(t *testing.T, b []byte, off int64, edit func(p *pendingHead)) {
	t.Helper()
	c := newCursor("patch", bytes.NewReader(b), int64(len(b)), 1024)
	var r record
	if err := c.readRecord(uint64(off), &r); err != nil {
		t.Fatal(err)
	}
	p := &pendingHead{off: off, typ: r.typ, level: r.level, keyLen: uint64(r.keyLen), valLen: uint64(r.valLen), ptr: r.ptr, tailCRC: r.tailCRC}
	edit(p)
	copy(b[off:], appendHead(nil, p))
}

// patchHeader rewrites the header with its CRC recomputed.
func patchHeader(b []byte, edit func(h *TwoskipHeader)) {
	h, _ := parseHeader("patch", b)
	edit(&h)
	copy(b, appendHeader(nil, h))
}

// recordOffsets returns the offsets of the records of a fresh file, in key
// order.
func recordOffsets(t *testing.T, b []byte) []int64 {
	t.Helper()
	c := newCursor("offsets", bytes.NewReader(b), int64(len(b)), 1024)
	var offs []int64
	var r record
	for off := int64(firstOffset); ; off += r.headLen + r.dataLen {
		for bytes.Equal(b[off:off+8], blank) {
			off += 8
		}
		if err := c.readRecord(uint64(off), &r); err != nil {
			t.Fatal(err)
		}
		if r.typ == typeCommit {
			return offs
		}
		offs = append(offs, off)
	}
}

// TestCraftedCorruption: files whose CRCs are all correct but whose
// structure is not, each of which must be caught, never loop.
func TestCraftedCorruption(t *testing.T) {
	base := writeTwoskip(t, 1, genRecords(40))
	offs := recordOffsets(t, base)
	tests := []struct {
		name   string
		reason string
		edit   func(b []byte) []byte
	}{
		{"level 0 cycle", "out of order", func(b []byte) []byte {
			patchRecord(t, b, offs[30], func(p *pendingHead) { p.ptr[1] = uint64(offs[3]) })
			return b
		}},
		{"level 0 points to itself", "out of order", func(b []byte) []byte {
			patchRecord(t, b, offs[5], func(p *pendingHead) { p.ptr[1] = uint64(offs[5]) })
			return b
		}},
		{"upper level cycle", "", func(b []byte) []byte {
			patchRecord(t, b, dummyOffset, func(p *pendingHead) {
				for k := 2; k <= maxLevel; k++ {
					p.ptr[k] = uint64(offs[20])
				}
			})
			patchRecord(t, b, offs[20], func(p *pendingHead) {
				for k := 2; k <= p.level; k++ {
					p.ptr[k] = uint64(offs[20])
				}
			})
			return b
		}},
		{"delete cycle", "cycle", func(b []byte) []byte {
			// Two DELETE records pointing at each other, reached from the
			// DUMMY: they hold no keys, so only the step bound stops them.
			d1 := int64(len(b))
			d2 := d1 + minRecord
			b = appendHead(b, &pendingHead{typ: typeDelete, ptr: [maxLevel + 1]uint64{uint64(d2)}})
			b = appendHead(b, &pendingHead{typ: typeDelete, ptr: [maxLevel + 1]uint64{uint64(d1)}})
			patchRecord(t, b, dummyOffset, func(p *pendingHead) { p.ptr[1] = uint64(d1) })
			patchHeader(b, func(h *TwoskipHeader) { h.CurrentSize = uint64(len(b)) })
			return b
		}},
		{"misaligned pointer", "out of range", func(b []byte) []byte {
			patchRecord(t, b, offs[0], func(p *pendingHead) { p.ptr[1] = uint64(offs[1] + 4) })
			return b
		}},
		{"pointer into the header", "out of range", func(b []byte) []byte {
			patchRecord(t, b, offs[0], func(p *pendingHead) { p.ptr[1] = 8 })
			return b
		}},
		{"pointer to the dummy", "unexpected record", func(b []byte) []byte {
			patchRecord(t, b, offs[0], func(p *pendingHead) { p.ptr[1] = dummyOffset })
			return b
		}},
		{"pointer to the commit", "unexpected record", func(b []byte) []byte {
			patchRecord(t, b, offs[0], func(p *pendingHead) { p.ptr[1] = uint64(len(b) - minRecord) })
			return b
		}},
		{"huge key length", "past end", func(b []byte) []byte {
			patchRecord(t, b, offs[0], func(p *pendingHead) { p.keyLen = 1 << 62 })
			return b
		}},
		{"huge value length", "past end", func(b []byte) []byte {
			patchRecord(t, b, offs[0], func(p *pendingHead) { p.valLen = 1<<64 - 8 })
			return b
		}},
		{"level above 31", "level", func(b []byte) []byte {
			b[offs[0]+1] = 40
			crc := crc32.ChecksumIEEE(b[offs[0] : offs[0]+8+8*41])
			binary.BigEndian.PutUint32(b[offs[0]+8+8*41:], crc)
			return b
		}},
		{"record count", "num_records", func(b []byte) []byte {
			patchHeader(b, func(h *TwoskipHeader) { h.NumRecords++ })
			return b
		}},
		{"current_size past the file", "beyond end", func(b []byte) []byte {
			patchHeader(b, func(h *TwoskipHeader) { h.CurrentSize = uint64(len(b) + 8) })
			return b
		}},
		{"current_size misaligned", "current_size", func(b []byte) []byte {
			patchHeader(b, func(h *TwoskipHeader) { h.CurrentSize -= 4 })
			return b
		}},
		{"version 2", "version", func(b []byte) []byte {
			patchHeader(b, func(h *TwoskipHeader) { h.Version = 2 })
			return b
		}},
		{"bad magic", "magic", func(b []byte) []byte {
			b[4] = 'T'
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(bytes.Clone(base))
			var errs []error
			ts, err := ReadTwoskip(tc.name, bytes.NewReader(b), int64(len(b)))
			if err == nil {
				_, err = collect(ts, nil)
				errs = append(errs, err)
				for _, r := range genRecords(40) {
					_, _, err := ts.Get(r[0])
					errs = append(errs, err)
				}
			} else {
				errs = append(errs, err)
			}
			found := false
			for _, err := range errs {
				if err != nil {
					mustCorrupt(t, tc.name, err, len(b))
					found = found || strings.Contains(err.Error(), tc.reason)
				}
			}
			if !found {
				t.Fatalf("no error mentions %q: %v", tc.reason, errs)
			}
		})
	}
}
