package guidtable

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/mbtool/mbtool/guid"
)

func gid(i int) guid.GUID {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return guid.GUID(sha1.Sum(b[:]))
}

// TestAgainstMap drives tables in memory and on file with the same random
// operations as a map, and compares every answer.
func TestAgainstMap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		value    int
		memLimit int64
		prefixes bool // GUIDs share their first 8 bytes, three ways (runs sort by them first)
	}{
		{"set in memory", 0, -1, false},
		{"set on file", 0, 4096, false},
		{"values in memory", 12, -1, false},
		{"values on file", 12, 4096, false},
		{"values moving to file", 5, 256 << 10, false},
		{"values on file, shared prefixes", 12, 4096, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := New(Options{ValueSize: tc.value, MemLimit: tc.memLimit, Dir: t.TempDir()})
			defer tab.Close()
			want := map[guid.GUID][]byte{}
			r := rand.New(rand.NewPCG(1, 2))
			val := func() []byte {
				v := make([]byte, tc.value)
				for i := range v {
					v[i] = byte(r.IntN(256))
				}
				return v
			}
			const keys = 60_000
			got := make([]byte, tc.value)
			for op := 0; op < 200_000; op++ {
				k := r.IntN(keys)
				g := gid(k)
				if tc.prefixes {
					p := gid(k % 3)
					copy(g[:8], p[:8])
				}
				switch r.IntN(4) {
				case 0:
					v := val()
					added, err := tab.Add(g, v)
					if err != nil {
						t.Fatal(err)
					}
					_, had := want[g]
					if added == had {
						t.Fatalf("op %d: Add(%s) = %v, map had it: %v", op, g, added, had)
					}
					if added {
						want[g] = v
					}
				case 1:
					v := val()
					if err := tab.Put(g, v); err != nil {
						t.Fatal(err)
					}
					want[g] = v
				default:
					ok, err := tab.Get(g, got)
					if err != nil {
						t.Fatal(err)
					}
					w, had := want[g]
					if ok != had {
						t.Fatalf("op %d: Get(%s) = %v, map has it: %v", op, g, ok, had)
					}
					if ok && string(got) != string(w) {
						t.Fatalf("op %d: Get(%s) = %x, want %x", op, g, got, w)
					}
				}
			}
			if tab.Len() != len(want) {
				t.Errorf("Len = %d, want %d", tab.Len(), len(want))
			}
			for g, w := range want {
				if ok, err := tab.Get(g, got); err != nil || !ok || string(got) != string(w) {
					t.Fatalf("Get(%s) = %v %v %x, want %x", g, ok, err, got, w)
				}
			}
			if onDisk := tc.memLimit > 0; (tab.Runs() > 0) != onDisk {
				t.Errorf("OnDisk = %v, want %v", (tab.Runs() > 0), onDisk)
			}
		})
	}
}

// TestRunsStayFew: runs merge as they come to about the same size, so a
// table of n entries has at most about log2(n/recent) files.
func TestRunsStayFew(t *testing.T) {
	tab := New(Options{MemLimit: 1, Dir: t.TempDir()}) // one recent entry
	defer tab.Close()
	most := 0
	for i := 0; i < 2000; i++ {
		if _, err := tab.Add(gid(i), nil); err != nil {
			t.Fatal(err)
		}
		most = max(most, tab.Runs())
	}
	if most > 13 { // log2(2000) = 11
		t.Errorf("%d runs at most for 2000 entries", most)
	}
	for i := 0; i < 2000; i++ {
		if ok, err := tab.Has(gid(i)); !ok || err != nil {
			t.Fatalf("GUID %d: %v %v", i, ok, err)
		}
	}
}

// TestFileLeavesNothing: the file is unlinked at once, so the directory
// stays empty while the table is on file and after.
func TestFileLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	tab := New(Options{MemLimit: 1024, Dir: dir})
	for i := 0; i < 5000; i++ {
		tab.Add(gid(i), nil)
	}
	if !(tab.Runs() > 0) {
		t.Fatal("table not on file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%s holds %d entries while the table is open", dir, len(ents))
	}
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNoDirStaysInMemory: a table whose directory cannot hold a file keeps
// working in memory.
func TestNoDirStaysInMemory(t *testing.T) {
	tab := New(Options{MemLimit: 1, Dir: "/nonexistent/mbtool"})
	defer tab.Close()
	for i := 0; i < 5000; i++ {
		if _, err := tab.Add(gid(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if tab.Runs() > 0 {
		t.Error("table on file in a directory that does not exist")
	}
	if ok, _ := tab.Has(gid(4999)); !ok || tab.Len() != 5000 {
		t.Errorf("Has = %v, Len = %d", ok, tab.Len())
	}
}

// TestFileError: once the file fails, every call returns the error.
func TestFileError(t *testing.T) {
	tab := New(Options{MemLimit: 1, Dir: t.TempDir()})
	for i := 0; !(tab.Runs() > 0); i++ {
		tab.Add(gid(i), nil)
	}
	tab.runs[0].f.Close() // the descriptor goes bad under it
	var err error
	for i := 0; err == nil && i < 100_000; i++ {
		_, err = tab.Add(gid(-i-1), nil)
	}
	if !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Add after the file closed: %v", err)
	}
	if _, err2 := tab.Has(gid(1)); !errors.Is(err2, os.ErrClosed) {
		t.Errorf("Has after a failure: %v", err2)
	}
}

// TestMemoryFlat: past its recent entries, a table's heap grows by what
// it keeps of each run only (a 14-bit Bloom filter entry and a share of
// the block index per GUID): from 100,000 to a million GUIDs by under 3
// bytes per GUID, where a map takes 40 or more.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("a million GUIDs")
	}
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	base := heap()
	tab := New(Options{Dir: t.TempDir()})
	defer tab.Close()
	add := func(from, to int) int64 {
		for i := from; i < to; i++ {
			if _, err := tab.Add(gid(i), nil); err != nil {
				t.Fatal(err)
			}
		}
		return heap() - base
	}
	at100k := add(0, 100_000)
	at1m := add(100_000, 1_000_000)
	t.Logf("heap: %d bytes at 100,000 GUIDs, %d at 1,000,000 (on file: %v)", at100k, at1m, (tab.Runs() > 0))
	if per := float64(at1m-at100k) / 900_000; per > 3 {
		t.Errorf("heap grew by %.1f bytes per GUID from 100,000 to 1,000,000 GUIDs; want under 3", per)
	}
	if at1m > DefaultMemLimit+3_000_000 {
		t.Errorf("heap at 1,000,000 GUIDs is %d bytes; want under DefaultMemLimit + 3 MB", at1m)
	}
	runtime.KeepAlive(tab)
}

func BenchmarkAdd(b *testing.B) {
	for _, tc := range []struct {
		name     string
		memLimit int64
	}{{"memory", -1}, {"file", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			tab := New(Options{MemLimit: tc.memLimit, Dir: b.TempDir()})
			defer tab.Close()
			gs := make([]guid.GUID, 1<<20)
			for i := range gs {
				gs[i] = gid(i)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(gs) == 0 && i > 0 {
					tab.Close()
					tab = New(Options{MemLimit: tc.memLimit, Dir: b.TempDir()})
				}
				tab.Add(gs[i%len(gs)], nil)
			}
		})
	}
}

func BenchmarkGetHit(b *testing.B) {
	for _, tc := range []struct {
		name     string
		memLimit int64
	}{{"memory", -1}, {"file", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			tab := New(Options{ValueSize: 16, MemLimit: tc.memLimit, Dir: b.TempDir()})
			defer tab.Close()
			const n = 1 << 20
			for i := 0; i < n; i++ {
				tab.Add(gid(i), nil)
			}
			var v [16]byte
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tab.Get(gid(i%n), v[:])
			}
		})
	}
}

// TestBloomFalsePositives: a run's filter answers "maybe" for about 0.3%
// of the GUIDs it does not hold (14 bits per entry, blocked).
func TestBloomFalsePositives(t *testing.T) {
	tab := New(Options{Dir: t.TempDir()})
	defer tab.Close()
	const n = 100_000
	w, err := tab.newRun(n)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		g := gid(i)
		w.add(g[:])
	}
	r, err := w.finish()
	if err != nil {
		t.Fatal(err)
	}
	defer r.f.Close()
	hits := 0
	for i := n; i < 2*n; i++ {
		g := gid(i)
		if r.bloom.MaybeHas(maphash.Bytes(tab.seed, g[:])) {
			hits++
		}
	}
	for i := 0; i < n; i++ {
		if g := gid(i); !r.bloom.MaybeHas(maphash.Bytes(tab.seed, g[:])) {
			t.Fatalf("GUID %d in the run, but not in its filter", i)
		}
	}
	rate := float64(hits) / n
	t.Logf("false positives: %.2f%%", 100*rate)
	if rate > 0.006 {
		t.Errorf("false positive rate %.2f%%, want under 0.6%%", 100*rate)
	}
}

func TestSorted(t *testing.T) {
	for _, mem := range []int64{-1, 2000} {
		tb := New(Options{ValueSize: 4, MemLimit: mem, Dir: t.TempDir()})
		var want []guid.GUID
		for i := 0; i < 5000; i++ {
			g := guid.GUID(sha1.Sum([]byte(strconv.Itoa(i))))
			if _, err := tb.Add(g, []byte{byte(i), byte(i >> 8)}); err != nil {
				t.Fatal(err)
			}
			want = append(want, g)
		}
		slices.SortFunc(want, func(a, b guid.GUID) int { return bytes.Compare(a[:], b[:]) })
		var got []guid.GUID
		err := tb.Sorted(func(g guid.GUID, val []byte) error {
			got = append(got, g)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if mem > 0 && tb.Runs() == 0 {
			t.Fatalf("no runs with MemLimit %d", mem)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("MemLimit %d: Sorted gave %d entries, not the %d in order", mem, len(got), len(want))
		}
		tb.Close()
	}
}
