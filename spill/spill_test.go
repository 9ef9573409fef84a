package spill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"testing"
)

func TestLogRecords(t *testing.T) {
	var l Log
	defer l.Close()
	var offs []int64
	for i := range 1000 {
		off, err := l.Append(bytes.Repeat([]byte{byte(i)}, i%300))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	var buf []byte
	for i := len(offs) - 1; i >= 0; i-- {
		got, err := l.Read(offs[i], buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := bytes.Repeat([]byte{byte(i)}, i%300); !bytes.Equal(got, want) {
			t.Fatalf("record %d: %d bytes, want %d", i, len(got), len(want))
		}
		buf = got
	}
	// Written after a read: readable too.
	off, err := l.Append([]byte("late"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Read(off, nil); err != nil || string(got) != "late" {
		t.Fatalf("late record: %q, %v", got, err)
	}
	if _, err := l.Read(l.Size(), nil); err == nil {
		t.Fatal("a read beyond the end succeeded")
	}
	if _, err := l.Read(offs[1]+1, nil); err == nil {
		t.Fatal("a read at a bad offset succeeded") // its length runs past the end
	}
}

// Read brings a record with its length in one read when the record fits
// its guess, and reads the rest when it does not: records around the
// guess and its bound, read with buffers too small, as large as the
// record and larger, the last record of the file included.
func TestLogReadSizes(t *testing.T) {
	var l Log
	defer l.Close()
	sizes := []int{0, 1, readGuess - 5, readGuess - 4, readGuess - 3, readGuess, 5000,
		readWindow - 4, readWindow - 3, readWindow + 100, pendSize, 3}
	rec := func(i int) []byte {
		b := make([]byte, sizes[i])
		for j := range b {
			b[j] = byte(i*7 + j)
		}
		return b
	}
	var offs []int64
	for i := range sizes {
		off, err := l.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	for _, bufCap := range []int{0, 10, readGuess, 6000, readWindow + 200, 200 << 10} {
		for i := range sizes {
			got, err := l.Read(offs[i], make([]byte, 0, bufCap))
			if err != nil {
				t.Fatalf("record %d (%d bytes), buffer of %d: %v", i, sizes[i], bufCap, err)
			}
			if !bytes.Equal(got, rec(i)) {
				t.Fatalf("record %d (%d bytes), buffer of %d: wrong content (%d bytes)", i, sizes[i], bufCap, len(got))
			}
		}
	}
}

// Records read in the order they were written come from a window of the
// file read at once, and a record read back and written again (a
// mailbox parked after use) costs no write of its own: the system calls
// of a pass over many records are a few per window, not one or two per
// record. Every record read is checked, wherever it came from: the
// window, the pending bytes, or both (a record written across the
// moment they were written out).
func TestLogReadsInOrder(t *testing.T) {
	var l Log
	defer l.Close()
	const n = 10000
	rec := func(i, gen int) []byte {
		b := make([]byte, 100+i%400)
		for j := range b {
			b[j] = byte(i*31 + j + gen)
		}
		return b
	}
	offs := make([]int64, n)
	for i := range offs {
		off, err := l.Append(rec(i, 0))
		if err != nil {
			t.Fatal(err)
		}
		offs[i] = off
	}
	size := l.Size()
	// A pass that reads each record and writes it again, changed.
	r0, w0 := l.reads, l.writes
	var buf []byte
	for i, off := range offs {
		got, err := l.Read(off, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, rec(i, 0)) {
			t.Fatalf("record %d: wrong content", i)
		}
		buf = got
		if offs[i], err = l.Append(rec(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	windows := int(size/readWindow) + 1
	if r := l.reads - r0; r > windows+1 {
		t.Errorf("a pass over %d records (%d bytes) read the file %d times, want at most %d", n, size, r, windows+1)
	}
	if w := l.writes - w0; w > int(size/pendSize)+2 {
		t.Errorf("a pass over %d records wrote the file %d times, want at most %d", n, w, int(size/pendSize)+2)
	}
	// The second generation, read in order, then out of order.
	for i, off := range offs {
		got, err := l.Read(off, buf)
		if err != nil || !bytes.Equal(got, rec(i, 1)) {
			t.Fatalf("record %d of the second pass: %v", i, err)
		}
		buf = got
	}
	r0 = l.reads
	for i := n - 1; i >= 0; i -= 97 {
		got, err := l.Read(offs[i], buf)
		if err != nil || !bytes.Equal(got, rec(i, 1)) {
			t.Fatalf("record %d out of order: %v", i, err)
		}
		buf = got
	}
	if r := l.reads - r0; r > n/97+1 {
		t.Errorf("%d records out of order took %d reads", n/97+1, r)
	}
}

func TestLogSections(t *testing.T) {
	var l Log
	defer l.Close()
	for i := range 100 {
		if _, err := l.Write([]byte(fmt.Sprintf("%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	r, err := l.Section(4*10, 4*3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "001000110012" {
		t.Fatalf("section: %q, %v", got, err)
	}
	if _, err := l.Section(4*99, 8); err == nil {
		t.Fatal("a section beyond the end succeeded")
	}
}

func TestCodec(t *testing.T) {
	var e Enc
	e.Uint(1 << 40)
	e.Int(-5)
	e.Bool(true)
	e.String("user.alice")
	e.Bytes(nil)
	e.Bytes([]byte{})
	e.Bytes([]byte("v"))
	d := Dec{B: e.B}
	if v := d.Uint(); v != 1<<40 {
		t.Errorf("Uint %d", v)
	}
	if v := d.Int(); v != -5 {
		t.Errorf("Int %d", v)
	}
	if !d.Bool() {
		t.Error("Bool")
	}
	if s := d.String(); s != "user.alice" {
		t.Errorf("String %q", s)
	}
	if p := d.Bytes(); p != nil {
		t.Errorf("nil Bytes: %q", p)
	}
	if p := d.Bytes(); p == nil || len(p) != 0 {
		t.Errorf("empty Bytes: %q", p)
	}
	if p := d.Bytes(); string(p) != "v" {
		t.Errorf("Bytes %q", p)
	}
	if d.Err != nil || len(d.B) != 0 {
		t.Errorf("left %d bytes, %v", len(d.B), d.Err)
	}
	// A truncated record is an error, not a panic.
	d = Dec{B: e.B[:len(e.B)-8]}
	d.Uint()
	d.Int()
	d.Bool()
	_ = d.String()
	if !errors.Is(d.Err, ErrDamaged) {
		t.Errorf("truncated: %v", d.Err)
	}
}

// TestLogEach reads back every record in order through Each, records
// larger than its reader's buffer too, and reports a damaged length.
func TestLogEach(t *testing.T) {
	var l Log
	defer l.Close()
	if err := l.Each(func([]byte) error { t.Fatal("a record in an empty log"); return nil }); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 40 << 10, 3, 17 << 10, 0, 5}
	for i, n := range sizes {
		if _, err := l.Append(bytes.Repeat([]byte{byte(i)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	err := l.Each(func(p []byte) error {
		if want := bytes.Repeat([]byte{byte(i)}, sizes[i]); !bytes.Equal(p, want) {
			t.Fatalf("record %d: %d bytes, want %d", i, len(p), len(want))
		}
		i++
		return nil
	})
	if err != nil || i != len(sizes) {
		t.Fatalf("%d records of %d: %v", i, len(sizes), err)
	}
	// A length beyond the end is damage, not a panic.
	var bad Log
	defer bad.Close()
	if _, err := bad.Write([]byte{0xff, 0xff, 0, 0, 'x'}); err != nil {
		t.Fatal(err)
	}
	if err := bad.Each(func([]byte) error { return nil }); err == nil {
		t.Fatal("a damaged length read")
	}
}

// TestCount refuses a count of more items than the record has bytes
// left, before its reader allocates for them.
func TestCount(t *testing.T) {
	var e Enc
	e.Uint(3)
	e.String("a")
	e.String("b")
	e.String("c")
	d := Dec{B: e.B}
	if n := d.Count(); n != 3 || d.Err != nil {
		t.Fatalf("Count %d, %v", n, d.Err)
	}
	e.Reset()
	e.Uint(1 << 40)
	e.String("a")
	d = Dec{B: e.B}
	if n := d.Count(); n != 0 || !errors.Is(d.Err, ErrDamaged) {
		t.Fatalf("Count of a damaged record %d, %v", n, d.Err)
	}
}

// TestNamesHot maps more names than a Names keeps in memory and in its
// hot keys, then asks for each again after changing some: every answer
// is the value last put, whether it comes from the hot keys, the recent
// entries or a run's file.
func TestNamesHot(t *testing.T) {
	defer func(l int64) { NamesMemLimit = l }(NamesMemLimit)
	NamesMemLimit = 64 << 10 // 64 hot keys; the recent entries hold 585
	n := NewNames()
	defer n.Close()
	count := 30 * n.hotMax
	want := map[string]uint32{}
	for i := range count {
		s := fmt.Sprintf("user.u%d", i)
		if err := n.Put(KeyName, s, uint32(i+1)); err != nil {
			t.Fatal(err)
		}
		want[s] = uint32(i + 1)
	}
	check := func() {
		t.Helper()
		for s, v := range want {
			got, ok, err := n.Get(KeyName, s)
			if err != nil || !ok || got != v {
				t.Fatalf("Get(%q) = %d, %v, %v; want %d", s, got, ok, err, v)
			}
			if len(n.hot) > n.hotMax {
				t.Fatalf("%d hot keys; want at most %d", len(n.hot), n.hotMax)
			}
		}
		if _, ok, err := n.Get(KeySrcID, "user.u1"); ok || err != nil {
			t.Fatalf("another kind's key found (%v, %v)", ok, err)
		}
	}
	// Changed while hot: just asked for, and asked for again before
	// any other key.
	for i := range 10 {
		s := fmt.Sprintf("user.u%d", i)
		if _, _, err := n.Get(KeyName, s); err != nil {
			t.Fatal(err)
		}
		if err := n.Put(KeyName, s, uint32(200000+i)); err != nil {
			t.Fatal(err)
		}
		want[s] = uint32(200000 + i)
		if got, ok, err := n.Get(KeyName, s); err != nil || !ok || got != want[s] {
			t.Fatalf("Get(%q) after Put = %d, %v, %v; want %d", s, got, ok, err, want[s])
		}
	}
	check()
	// Changed while hot or not (asked for long ago).
	for i := 0; i < count; i += 7 {
		s := fmt.Sprintf("user.u%d", i)
		if err := n.Put(KeyName, s, uint32(100000+i)); err != nil {
			t.Fatal(err)
		}
		want[s] = uint32(100000 + i)
	}
	check()
}

// TestLogWriteErrorRetried: a write of the pending bytes that fails part
// way (here the file size limit, EFBIG) moves no record: the bytes are
// written at their offset, so the next write, once there is room again,
// writes them there whole and every record reads back as appended.
func TestLogWriteErrorRetried(t *testing.T) {
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	var l Log
	defer l.Close()
	rec := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000) }
	var offs []int64
	for i := range 65 {
		off, err := l.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	lim := old
	lim.Cur = 10000
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	if _, err := l.Append(rec(65)); err == nil {
		t.Fatal("a write beyond the file size limit succeeded")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	off, err := l.Append(rec(66))
	if err != nil {
		t.Fatal(err)
	}
	offs = append(offs, off)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, off := range offs {
		want := rec(i)
		if i == len(offs)-1 {
			want = rec(66)
		}
		if got, err := l.Read(off, nil); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("record %d at %d: %v, %d bytes", i, off, err, len(got))
		}
	}
}
