package s3store

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

func TestCRC32CCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 64, 1000, sumBlock - 1, sumBlock, sumBlock + 3} {
		a, b := make([]byte, rng.IntN(5000)), make([]byte, n)
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := crc32.Checksum(append(append([]byte(nil), a...), b...), castagnoli)
		if got := crc32cCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(n)); got != want {
			t.Errorf("%d + %d bytes: combined %08x, want %08x", len(a), n, got, want)
		}
		if n == sumBlock {
			if got := shiftBlock(crc32.Checksum(a, castagnoli)) ^ crc32.Checksum(b, castagnoli); got != want {
				t.Errorf("%d + a block: shifted %08x, want %08x", len(a), got, want)
			}
		}
	}
}

// TestSums checks every part of uploads of various sizes, split as
// Upload splits them, against the CRC32C of the part's bytes, written to
// Sums in writes of odd sizes.
func TestSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := &Client{opts: Options{PartSize: minPartSize, Parallel: 4}}
	for _, size := range []int64{0, 1, sumBlock - 1, sumBlock, sumBlock + 1, 3*sumBlock + 5, minPartSize, 2*minPartSize + 1, 32<<20 + 12345, 41 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		var s Sums
		for p := data; len(p) > 0; {
			k := min(len(p), 1+rng.IntN(3*sumBlock/2))
			s.Write(p[:k])
			p = p[k:]
		}
		if s.Size() != size {
			t.Fatalf("%d bytes: Size %d", size, s.Size())
		}
		ps := c.uploadPartSize(size)
		if ps%sumBlock != 0 {
			t.Errorf("%d bytes: part size %d is not whole blocks", size, ps)
		}
		parts := 0
		for off := int64(0); off < size || off == 0; off += ps {
			n := min(ps, size-off)
			got, ok := s.of(off, n)
			if want := crc32.Checksum(data[off:off+n], castagnoli); !ok || got != want {
				t.Errorf("%d bytes, part at %d of %d bytes: %08x %v, want %08x", size, off, n, got, ok, want)
			}
			if parts++; size == 0 {
				break
			}
		}
		if want := min(int64(c.opts.Parallel), max(1, size/minPartSize)); size > ps && int64(parts) < want {
			t.Errorf("%d bytes: %d parts of %d, want %d at least", size, parts, ps, want)
		}
		// A range that does not start or end a block is not summed.
		if size > sumBlock+1 {
			if _, ok := s.of(1, sumBlock); ok {
				t.Errorf("%d bytes: a range at offset 1 was summed", size)
			}
			if _, ok := s.of(0, sumBlock+1); ok && size != sumBlock+1 {
				t.Errorf("%d bytes: a range ending inside a block was summed", size)
			}
		}
	}
	var nilSums *Sums
	if _, ok := nilSums.of(0, 0); ok {
		t.Error("nil Sums summed")
	}
}
