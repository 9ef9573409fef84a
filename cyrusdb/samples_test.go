package cyrusdb

// Real database samples made by Cyrus's own cyr_dbtool. `go test -run
// TestSamples -update` (as root, with Cyrus installed) rebuilds
// testdata/*.db and, beside each, *.show: Cyrus's batch-mode SHOW output,
// the content Cyrus itself reads from the file.

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rebuild testdata samples with real Cyrus")

// sample is a recipe for one real database.
type sample struct {
	name    string // file name under testdata
	backend string // twoskip or flat
	dirty   bool   // built by cyr_dbtool damage: left unclean
	build   func(d *dbtool, path string)
}

var samples = []sample{
	{name: "twoskip-empty.db", backend: "twoskip", build: func(d *dbtool, path string) {
		d.batch(path, "twoskip", nil) // opening a zero-length file initialises it
	}},
	{name: "twoskip-basic.db", backend: "twoskip", build: func(d *dbtool, path string) {
		d.batch(path, "twoskip", basicOps())
	}},
	{name: "twoskip-dirty.db", backend: "twoskip", dirty: true, build: func(d *dbtool, path string) {
		d.batch(path, "twoskip", basicOps())
		d.run(nil, true, path, "twoskip", "damage") // dies inside a transaction
	}},
	{name: "twoskip-alldeleted.db", backend: "twoskip", build: func(d *dbtool, path string) {
		var b []byte
		for i := range 20 {
			b = append(b, batchSet(fmt.Appendf(nil, "k%02d", i), []byte("v"))...)
		}
		for i := range 20 {
			b = append(b, batchDelete(fmt.Appendf(nil, "k%02d", i))...)
		}
		d.batch(path, "twoskip", b)
	}},
	{name: "twoskip-many.db", backend: "twoskip", build: func(d *dbtool, path string) {
		d.batch(path, "twoskip", manyOps(400, 1))
	}},
	{name: "twoskip-history.db", backend: "twoskip", build: func(d *dbtool, path string) {
		d.batch(path, "twoskip", manyOps(90, 2)) // stays below the checkpoint size
	}},
	{name: "flat-basic.db", backend: "flat", build: func(d *dbtool, path string) {
		d.batch(path, "flat", flatOps())
	}},
}

// basicOps: single sets, a multi-record transaction with a delete and a
// replacement, binary keys and values that need escapes and literals.
func basicOps() []byte {
	var b []byte
	set := func(k, v string) { b = append(b, batchSet([]byte(k), []byte(v))...) }
	del := func(k string) { b = append(b, batchDelete([]byte(k))...) }
	set("a", "1")
	set("b", "2")
	set("c", "3")
	b = append(b, "BEGIN\n"...)
	set("c", "33")
	del("b")
	set("bin\t\n\x00\xff\rkey", "val\x00\n\t\xff")
	set("empty-value", "")
	b = append(b, "COMMIT\n"...)
	set("Nuser\x1falice", "%(T e I 290v19764h5ax1lg17aclxy2 P default V 1795877547 C 1 F 1 M 1795877546)")
	set("a.b", "x")
	del("a")
	set("a", "again")
	set("zz", strings.Repeat("long value ", 40))
	return b
}

// manyOps: n keys in transactions of varying size with deletes of live
// keys and replacements. Past Cyrus's checkpoint size (16834 bytes) the
// file gets rewritten by rename; below it, it keeps its whole history:
// DELETE records, both level-0 pointer slots in use, BLANK padding.
func manyOps(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	var b []byte
	live := map[int]bool{}
	key := func(i int) []byte { return fmt.Appendf(nil, "Nuser\x1fu%05d\x1fbox%d", i*7919%n, i%3) }
	del := func(i int) {
		if live[i] {
			b = append(b, batchDelete(key(i))...)
			delete(live, i)
		}
	}
	set := func(i int, v []byte) {
		b = append(b, batchSet(key(i), v)...)
		live[i] = true
	}
	for i := 0; i < n; {
		tx := 1 + r.IntN(30)
		b = append(b, "BEGIN\n"...)
		for j := 0; j < tx && i < n; j, i = j+1, i+1 {
			set(i, fmt.Appendf(nil, "%%(T e V %d M %d)", r.Uint32(), i))
			if r.IntN(5) == 0 {
				del(r.IntN(i + 1))
			}
			if r.IntN(4) == 0 {
				set(r.IntN(i+1), []byte("replaced"))
			}
		}
		b = append(b, "COMMIT\n"...)
	}
	for range n / 8 {
		b = append(b, "BEGIN\n"...)
		del(r.IntN(n))
		set(r.IntN(n), []byte("late"))
		b = append(b, "COMMIT\n"...)
	}
	return b
}

// flatOps: keys whose order differs between byte order and Cyrus's flat
// order, and keys and values needing every escape.
func flatOps() []byte {
	var b []byte
	for _, k := range []string{"ab", "a-b", "a b", "a.b", "a", "a.a", "\x1fVER\x1f",
		"NINBOX\x1fSent", "NINBOX", "NINBOX.x", "tab\tkey", "nl\nkey", "nul\x00key", "ff\xffkey", "cr\rkey", "\x01\x08"} {
		b = append(b, batchSet([]byte(k), []byte("v:"+k))...)
	}
	b = append(b, batchSet([]byte("empty"), nil)...)
	b = append(b, batchDelete([]byte("a.a"))...)
	return b
}

// buildSample builds s in d and returns the file's bytes and Cyrus's SHOW
// output. For a dirty sample the bytes are taken before Cyrus reads the
// file again, since any Cyrus open recovers it.
func buildSample(d *dbtool, s sample) (db, show []byte) {
	d.t.Helper()
	path := d.create(s.name)
	s.build(d, path)
	db, err := os.ReadFile(path)
	if err != nil {
		d.t.Fatal(err)
	}
	return db, d.batch(path, s.backend, []byte("SHOW\n"))
}

// TestSamples checks every committed sample against Cyrus's own reading of
// it; with -update it rebuilds them first.
func TestSamples(t *testing.T) {
	if *update {
		d := newDBTool(t)
		for _, s := range samples {
			db, show := buildSample(d, s)
			writeFile(t, filepath.Join("testdata", s.name), db)
			writeFile(t, filepath.Join("testdata", s.name+".show"), show)
		}
	}
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			db := readFile(t, filepath.Join("testdata", s.name))
			show := readFile(t, filepath.Join("testdata", s.name+".show"))
			checkSample(t, s, db, show)
		})
	}
}

// TestSamplesLive builds the samples afresh with Cyrus and checks them, so a
// change in Cyrus shows even without -update.
func TestSamplesLive(t *testing.T) {
	d := newDBTool(t)
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			db, show := buildSample(d, s)
			checkSample(t, s, db, show)
		})
	}
}

// checkSample compares our reading of db with Cyrus's SHOW output.
func checkSample(t *testing.T, s sample, db, show []byte) {
	t.Helper()
	want, err := parseShow(show)
	if err != nil {
		t.Fatalf("parsing SHOW: %v", err)
	}
	if s.backend == "flat" {
		got, err := readFlatAll(db)
		if err != nil {
			t.Fatal(err)
		}
		if !equalRecords(got, want) {
			t.Fatalf("ReadFlat:\n got %q\nwant %q", got, want)
		}
		var buf bytes.Buffer
		if err := WriteFlat(&buf, want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), db) {
			t.Errorf("WriteFlat of Cyrus's records differs from Cyrus's file:\n got %q\nwant %q", buf.Bytes(), db)
		}
		return
	}
	ts, err := ReadTwoskip(s.name, bytes.NewReader(db), int64(len(db)))
	if err != nil {
		t.Fatal(err)
	}
	if ts.Clean() == s.dirty {
		t.Errorf("Clean() = %v for a sample with dirty = %v", ts.Clean(), s.dirty)
	}
	got, err := collect(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, want) {
		t.Fatalf("ForEach:\n got %q\nwant %q", got, want)
	}
	if !s.dirty && ts.NumRecords() != uint64(len(want)) {
		t.Errorf("NumRecords() = %d, want %d", ts.NumRecords(), len(want))
	}
	checkGets(t, ts, want)
	checkPrefixes(t, ts, want)
}

// checkGets looks up every key of want, and keys just around each.
func checkGets(t *testing.T, ts *Twoskip, want [][2][]byte) {
	t.Helper()
	for _, rec := range want {
		v, ok, err := ts.Get(rec[0])
		if err != nil || !ok || !bytes.Equal(v, rec[1]) {
			t.Fatalf("Get(%q) = %q, %v, %v; want %q", rec[0], v, ok, err, rec[1])
		}
		for _, k := range [][]byte{append(slices.Clone(rec[0]), 0), rec[0][:len(rec[0])-1]} {
			_, ok, err := ts.Get(k)
			if err != nil || ok != containsKey(want, k) {
				t.Fatalf("Get(%q) = %v, %v; want %v", k, ok, err, !ok)
			}
		}
	}
}

// checkPrefixes runs ForEach with prefixes taken from the keys.
func checkPrefixes(t *testing.T, ts *Twoskip, want [][2][]byte) {
	t.Helper()
	step := max(1, len(want)/40)
	for i, rec := range want {
		if i%step != 0 {
			continue
		}
		for _, n := range []int{1, len(rec[0]) / 2, len(rec[0])} {
			prefix := rec[0][:max(n, 1)]
			got, err := collect(ts, prefix)
			if err != nil {
				t.Fatal(err)
			}
			var exp [][2][]byte
			for _, r := range want {
				if bytes.HasPrefix(r[0], prefix) {
					exp = append(exp, r)
				}
			}
			if !equalRecords(got, exp) {
				t.Fatalf("ForEach(%q):\n got %q\nwant %q", prefix, got, exp)
			}
		}
	}
}

func containsKey(recs [][2][]byte, k []byte) bool {
	for _, r := range recs {
		if bytes.Equal(r[0], k) {
			return true
		}
	}
	return false
}

// collect returns copies of the records ForEach yields.
func collect(ts *Twoskip, prefix []byte) ([][2][]byte, error) {
	var recs [][2][]byte
	err := ts.ForEach(prefix, func(k, v []byte) error {
		recs = append(recs, [2][]byte{slices.Clone(k), slices.Clone(v)})
		return nil
	})
	return recs, err
}

func readFlatAll(b []byte) ([][2][]byte, error) {
	var recs [][2][]byte
	err := ReadFlat("flat", bytes.NewReader(b), func(k, v []byte) error {
		recs = append(recs, [2][]byte{slices.Clone(k), slices.Clone(v)})
		return nil
	})
	return recs, err
}

func equalRecords(a, b [][2][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y [2][]byte) bool {
		return bytes.Equal(x[0], y[0]) && bytes.Equal(x[1], y[1])
	})
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
