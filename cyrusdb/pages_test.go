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

// rwFile is a ReaderAt and WriterAt over b that counts its writes.
type rwFile struct {
	countingReader
	writes int
}

func (f *rwFile) WriteAt(p []byte, off int64) (int, error) {
	f.writes++
	if end := off + int64(len(p)); end > int64(len(f.b)) {
		f.b = append(f.b, make([]byte, end-int64(len(f.b)))...)
	}
	return copy(f.b[off:], p), nil
}

// TestWriteCache writes through a transaction's cache (write-back): reads
// see the writes at once, the file only after a flush (or an eviction),
// and a flush writes each run of consecutive dirty pages in one write.
func TestWriteCache(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, 10*pageSize+100)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	f := &rwFile{countingReader: countingReader{b: bytes.Clone(data)}}
	pc := newWriteCache(f, int64(len(data)))
	write := func(b []byte, off int64) {
		t.Helper()
		if end := off + int64(len(b)); end > int64(len(data)) {
			data = append(data, make([]byte, end-int64(len(data)))...)
		}
		copy(data[off:], b)
		if _, err := pc.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	read := func() {
		t.Helper()
		p := make([]byte, len(data))
		if _, err := pc.ReadAt(p, 0); err != nil || !bytes.Equal(p, data) {
			t.Fatalf("read back: %v, equal %v", err, bytes.Equal(p, data))
		}
	}
	// Heads rewritten in pages 1 and 7, an append of three pages.
	write(bytes.Repeat([]byte{'h'}, 40), pageSize+8)
	write(bytes.Repeat([]byte{'i'}, 40), 7*pageSize+8)
	write(bytes.Repeat([]byte{'a'}, 3*pageSize), int64(len(data)))
	read()
	if f.writes != 0 {
		t.Fatalf("%d writes before the flush", f.writes)
	}
	if err := pc.flush(); err != nil {
		t.Fatal(err)
	}
	// Pages 1, 7, and 10 to 13 (the old last page and the append).
	if f.writes != 3 {
		t.Errorf("the flush made %d writes, want 3", f.writes)
	}
	if !bytes.Equal(f.b, data) {
		t.Fatal("the file differs from what was written")
	}
	// More dirty pages than slots: evicted ones are written, and what
	// is read back, from the cache or the file, is what was written.
	for n := range 2 * slots {
		write([]byte{byte(n), 1, 2, 3}, int64(len(data))) // 4 bytes, unaligned
		write(bytes.Repeat([]byte{byte(n)}, pageSize), int64(len(data)))
	}
	read()
	if err := pc.flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.b, data) {
		t.Fatal("the file differs from what was written after evictions")
	}
	// A write larger than half the cache goes to the file at once.
	before := f.writes
	write(bytes.Repeat([]byte{'L'}, slots*pageSize), 2*pageSize)
	if f.writes == before {
		t.Error("a large write stayed in the cache")
	}
	read()
	if err := pc.flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.b, data) {
		t.Fatal("the file differs after a large write")
	}
}
