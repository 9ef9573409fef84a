package cyrusdb

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// countingReader is a ReaderAt over b that counts its reads.
type countingReader struct {
	b     []byte
	reads int
}

func (r *countingReader) ReadAt(p []byte, off int64) (int, error) {
	r.reads++
	return bytes.NewReader(r.b).ReadAt(p, off)
}

// TestPageCache reads random ranges through the cache and compares them
// with the bytes: reads of cached pages cost no read below, a write drops
// the pages it touches (the next read sees the new bytes), and pages
// evicted from their slot are read again.
func TestPageCache(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3*pageSize+100)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	src := &countingReader{b: data}
	pc := newPageCache(src, int64(len(data)))
	check := func() {
		t.Helper()
		for range 500 {
			off := rnd.Int64N(int64(len(data)))
			n := 1 + rnd.Int64N(min(2*pageSize, int64(len(data))-off))
			p := make([]byte, n)
			if got, err := pc.ReadAt(p, off); err != nil || got != len(p) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d, %v", n, off, got, err)
			}
			if !bytes.Equal(p, data[off:off+n]) {
				t.Fatalf("ReadAt(%d bytes, %d): wrong bytes", n, off)
			}
		}
	}
	check()
	if src.reads > 4 {
		t.Errorf("%d reads below the cache for 4 pages", src.reads)
	}
	// A write across the second and third pages, and an append.
	copy(data[pageSize+10:], bytes.Repeat([]byte{'x'}, pageSize))
	pc.wrote(pageSize+10, pageSize, int64(len(data)))
	data = append(data, bytes.Repeat([]byte{'y'}, 50)...)
	src.b = data
	pc.wrote(int64(len(data))-50, 50, int64(len(data)))
	before := src.reads
	check()
	if d := src.reads - before; d > 3 {
		t.Errorf("%d reads below the cache after a write that dropped 3 pages", d)
	}
	// Dropped: read again, correctly.
	pc.drop()
	before = src.reads
	check()
	if d := src.reads - before; d < 1 || d > 5 {
		t.Errorf("%d reads below the cache after a drop", d)
	}
	// Past the end: read through.
	if _, err := pc.ReadAt(make([]byte, 10), int64(len(data))); err == nil {
		t.Error("a read past the end succeeded")
	}
	// More pages than slots: evicted ones are read again, correctly.
	big := make([]byte, (2*slots+10)*pageSize)
	for i := range big {
		big[i] = byte(i / pageSize)
	}
	src = &countingReader{b: big}
	pc = newPageCache(src, int64(len(big)))
	for range 2 {
		for n := range 2*slots + 10 {
			p := make([]byte, 8)
			if _, err := pc.ReadAt(p, int64(n)*pageSize+8); err != nil || p[0] != byte(n) {
				t.Fatalf("page %d: %v, %v", n, p, err)
			}
		}
	}
}
