package cyrusdb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/lock"
)

// genRecords returns n records in key order, shaped like mailboxes.db.
func genRecords(n int) [][2][]byte {
	recs := make([][2][]byte, n)
	for i := range recs {
		recs[i] = [2][]byte{
			fmt.Appendf(nil, "Nuser\x1fu%07d\x1fINBOX", i),
			fmt.Appendf(nil, "%%(T e I %024x P default V %d C 1 F 1 M 1795877546 A %%(u%d lrswipkxtecdan))", i, 1795877547+i, i),
		}
	}
	return recs
}

// iter returns a next function over recs for WriteTwoskip.
func iter(recs [][2][]byte) func() ([]byte, []byte, bool) {
	i := 0
	return func() ([]byte, []byte, bool) {
		if i == len(recs) {
			return nil, nil, false
		}
		i++
		return recs[i-1][0], recs[i-1][1], true
	}
}

// writeTwoskip returns the bytes WriteTwoskip makes of recs.
func writeTwoskip(t testing.TB, gen uint64, recs [][2][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTwoskip(&buf, gen, iter(recs)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readTwoskip(t testing.TB, b []byte) *Twoskip {
	t.Helper()
	ts, err := ReadTwoskip("mem", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

var writeCases = []struct {
	name string
	recs [][2][]byte
}{
	{"empty", nil},
	{"one", [][2][]byte{{[]byte("k"), []byte("v")}}},
	{"prefixes", [][2][]byte{{[]byte("a"), nil}, {[]byte("a\x00"), []byte("x")}, {[]byte("aa"), []byte("y")}, {[]byte("ab"), []byte("")}, {[]byte("b"), []byte("z")}}},
	{"binary", [][2][]byte{{[]byte("\x00"), []byte("\xff\x00\n")}, {[]byte("\t\n"), []byte("\r")}, {[]byte("\xff\xff"), []byte("\x00")}}},
	{"key lengths around the escape", [][2][]byte{
		{bytes.Repeat([]byte("a"), 0xFFFE), []byte("short")},
		{bytes.Repeat([]byte("b"), 0xFFFF), []byte("escaped")},
		{bytes.Repeat([]byte("c"), 0x10000), bytes.Repeat([]byte("v"), 100000)},
	}},
	{"mailboxes", genRecords(5000)},
}

// TestWriteTwoskipRoundTrip writes record sets and reads them back with
// every method, through both the io.WriterAt and the buffering path.
func TestWriteTwoskipRoundTrip(t *testing.T) {
	for _, tc := range writeCases {
		t.Run(tc.name, func(t *testing.T) {
			b := writeTwoskip(t, 7, tc.recs)
			if again := writeTwoskip(t, 7, tc.recs); !bytes.Equal(b, again) {
				t.Fatal("WriteTwoskip is not deterministic")
			}
			f, err := os.Create(filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := WriteTwoskip(f, 7, iter(tc.recs)); err != nil {
				t.Fatal(err)
			}
			if fb := readFile(t, f.Name()); !bytes.Equal(fb, b) {
				t.Fatalf("file (WriteAt) and buffer outputs differ: %d vs %d bytes", len(fb), len(b))
			}
			ts := readTwoskip(t, b)
			if !ts.Clean() || ts.Generation() != 7 || ts.NumRecords() != uint64(len(tc.recs)) {
				t.Fatalf("header %+v, clean %v", ts.Header(), ts.Clean())
			}
			if err := ts.Check(); err != nil {
				t.Fatal(err)
			}
			got, err := collect(ts, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !equalRecords(got, tc.recs) {
				t.Fatalf("ForEach gave %d records, want %d", len(got), len(tc.recs))
			}
			if len(tc.recs) > 0 {
				checkGets(t, ts, tc.recs)
				checkPrefixes(t, ts, tc.recs)
			}
			if _, ok, err := ts.Get([]byte("\xff\xff\xff")); ok || err != nil {
				t.Fatalf("Get(missing) = %v, %v", ok, err)
			}
		})
	}
}

func TestWriteTwoskipErrors(t *testing.T) {
	tests := []struct {
		name string
		recs [][2][]byte
		want error
	}{
		{"descending", [][2][]byte{{[]byte("b"), nil}, {[]byte("a"), nil}}, ErrKeyOrder},
		{"duplicate", [][2][]byte{{[]byte("a"), nil}, {[]byte("a"), nil}}, ErrKeyOrder},
		{"prefix after longer", [][2][]byte{{[]byte("ab"), nil}, {[]byte("a"), nil}}, ErrKeyOrder},
		{"empty key", [][2][]byte{{[]byte(""), nil}}, ErrEmptyKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTwoskip(&buf, 1, iter(tc.recs)); !errors.Is(err, tc.want) {
				t.Fatalf("WriteTwoskip = %v, want %v", err, tc.want)
			}
		})
	}
	tw := NewTwoskipWriter(&memWriterAt{}, 1)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tw.Add([]byte("a"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v", err)
	}
}

// TestWriteTwoskipLevels checks the level distribution and that the
// writer's waiting heads stay bounded.
func TestWriteTwoskipLevels(t *testing.T) {
	tw := NewTwoskipWriter(&memWriterAt{}, 1)
	counts := make([]int, maxLevel+1)
	for range 1 << 16 {
		counts[tw.level()]++
	}
	for l := 1; l <= 8; l++ {
		want := float64(1<<16) / float64(int(1)<<l)
		if got := float64(counts[l]); got < 0.8*want || got > 1.2*want {
			t.Errorf("level %d: %v records, want about %v", l, got, want)
		}
	}
}

func TestReadTwoskipEmptyFile(t *testing.T) {
	ts, err := ReadTwoskip("empty", bytes.NewReader(nil), 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(ts, nil)
	if err != nil || len(got) != 0 || ts.Generation() != 0 {
		t.Fatalf("empty file: %q, %v, generation %d", got, err, ts.Generation())
	}
}

// TestDirtySample reads the file cyr_dbtool damage left mid-transaction: the
// uncommitted record must not show, by any method.
func TestDirtySample(t *testing.T) {
	b := readFile(t, "testdata/twoskip-dirty.db")
	ts := readTwoskip(t, b)
	if ts.Clean() || !ts.Header().Dirty() {
		t.Fatalf("sample is clean: %+v", ts.Header())
	}
	if !bytes.Contains(b[ts.Header().CurrentSize:], []byte("INVALIDCRASHME")) {
		t.Fatal("sample lacks the uncommitted record past current_size")
	}
	if _, ok, err := ts.Get([]byte("INVALID")); ok || err != nil {
		t.Fatalf("Get(INVALID) = %v, %v; want absent", ok, err)
	}
	if _, ok, err := ts.Get([]byte("c")); !ok || err != nil {
		t.Fatalf("Get(c) = %v, %v; want present", ok, err)
	}
}

// TestOpenTwoskipLock checks that an open Twoskip holds the shared lock
// that keeps Cyrus writers out, and that Close releases it.
func TestOpenTwoskipLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen.db")
	writeFile(t, path, writeTwoskip(t, 1, genRecords(10)))
	ts, err := OpenTwoskip(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lock.TryExclusive(f); !errors.Is(err, lock.ErrWouldBlock) {
		t.Fatalf("exclusive lock while open: %v, want ErrWouldBlock", err)
	}
	if err := lock.TryShared(f); err != nil {
		t.Fatalf("shared lock while open: %v", err)
	}
	lock.Unlock(f)
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lock.TryExclusive(f); err != nil {
		t.Fatalf("exclusive lock after Close: %v", err)
	}
	if err := ts.ForEach(nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("ForEach after Close = %v", err)
	}
	if _, _, err := ts.Get([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if _, err := OpenTwoskip(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenTwoskip(missing) = %v", err)
	}
}

// TestForEachStops checks that fn's error ends the walk and comes back
// unchanged.
func TestForEachStops(t *testing.T) {
	ts := readTwoskip(t, writeTwoskip(t, 1, genRecords(100)))
	stop := errors.New("stop")
	n := 0
	err := ts.ForEach(nil, func(k, v []byte) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	})
	if err != stop || n != 10 {
		t.Fatalf("ForEach = %v after %d records", err, n)
	}
}

func TestKeyLess(t *testing.T) {
	keys := []string{"", "\x00", "A", "a", "a\x00", "a.b", "ab", "b", "\xff"}
	for i, a := range keys {
		for j, b := range keys {
			if got := KeyLess([]byte(a), []byte(b)); got != (i < j) {
				t.Errorf("KeyLess(%q, %q) = %v", a, b, got)
			}
		}
	}
	if !slices.IsSortedFunc(keys, strings.Compare) {
		t.Fatal("table not sorted")
	}
}

// checkPadding walks a file linearly and checks that every run of BLANKs
// is exactly what Cyrus's add_padding puts before the record that follows.
// It returns the number of BLANKs.
func checkPadding(t *testing.T, name string, b []byte) int {
	t.Helper()
	ts := readTwoskip(t, b)
	c := newCursor(name, bytes.NewReader(b), int64(ts.Header().CurrentSize), 1024)
	blanks := 0
	var r record
	for off := int64(dummyOffset); off < c.end; off += r.headLen + r.dataLen {
		start := off
		for bytes.Equal(b[off:off+8], blank) {
			off += 8
			blanks++
		}
		if err := c.readRecord(uint64(off), &r); err != nil {
			t.Fatal(err)
		}
		want := start
		if r.headLen <= blockSize-8 {
			for (want+8)%blockSize > (want-8+r.headLen)%blockSize {
				want += 8
			}
		}
		if off != want {
			t.Fatalf("%s: record at %d with a %d-byte head follows padding from %d; Cyrus would place it at %d", name, off, r.headLen, start, want)
		}
	}
	return blanks
}

// TestPadding checks the padding rule on files Cyrus wrote (checkpointed,
// and grown by transactions) and on ours.
func TestPadding(t *testing.T) {
	for _, name := range []string{"twoskip-many.db", "twoskip-history.db"} {
		if n := checkPadding(t, name, readFile(t, "testdata/"+name)); n == 0 {
			t.Fatalf("%s has no BLANKs to check the rule against", name)
		}
	}
	if n := checkPadding(t, "ours", writeTwoskip(t, 1, genRecords(2000))); n == 0 {
		t.Fatal("no BLANKs in 2000 records")
	}
}

// TestConcurrentReads runs walks and lookups on one Twoskip at once (run
// with -race).
func TestConcurrentReads(t *testing.T) {
	recs := genRecords(500)
	path := filepath.Join(t.TempDir(), "db")
	writeFile(t, path, writeTwoskip(t, 1, recs))
	ts, err := OpenTwoskip(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			if g%2 == 0 {
				got, err := collect(ts, nil)
				if err == nil && !equalRecords(got, recs) {
					err = errors.New("ForEach differs")
				}
				errs <- err
				return
			}
			for _, r := range recs[g:] {
				if v, ok, err := ts.Get(r[0]); err != nil || !ok || !bytes.Equal(v, r[1]) {
					errs <- fmt.Errorf("Get(%q) = %q, %v, %v", r[0], v, ok, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
