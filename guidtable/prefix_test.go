package guidtable

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/mbtool/mbtool/guid"
)

// TestAdversarialPrefixes: GUIDs whose first 8 bytes are on either side
// of the sign bit or all equal, differing only in their last bytes, go to
// runs on file (sorted by their first 8 bytes as a number, then the rest);
// every one must be found, none that was not added, and Sorted must give
// them in the order of their bytes.
func TestAdversarialPrefixes(t *testing.T) {
	prefixes := []uint64{0, 1, 1<<63 - 1, 1 << 63, 1<<63 + 1, 1<<64 - 1, 0x00ff00ff00ff00ff}
	r := rand.New(rand.NewPCG(5, 6))
	mk := func() guid.GUID {
		var g guid.GUID
		binary.BigEndian.PutUint64(g[:8], prefixes[r.IntN(len(prefixes))])
		switch r.IntN(3) {
		case 0:
			g[19] = byte(r.IntN(256))
		case 1:
			g[8] = byte(r.IntN(4))
			g[19] = byte(r.IntN(4))
		default:
			for i := 8; i < 20; i++ {
				g[i] = byte(r.IntN(256))
			}
		}
		return g
	}
	tab := New(Options{ValueSize: 4, MemLimit: 4096, Dir: t.TempDir()})
	defer tab.Close()
	want := map[guid.GUID]uint32{}
	for i := range 50_000 {
		g := mk()
		var v [4]byte
		binary.LittleEndian.PutUint32(v[:], uint32(i))
		added, err := tab.Add(g, v[:])
		if err != nil {
			t.Fatal(err)
		}
		if _, had := want[g]; added == had {
			t.Fatalf("Add(%s) = %v, map had it: %v", g, added, had)
		}
		if added {
			want[g] = uint32(i)
		}
	}
	if tab.Runs() == 0 {
		t.Fatal("no run on file")
	}
	var got [4]byte
	for range 50_000 {
		g := mk()
		ok, err := tab.Get(g, got[:])
		if err != nil {
			t.Fatal(err)
		}
		w, had := want[g]
		if ok != had || ok && binary.LittleEndian.Uint32(got[:]) != w {
			t.Fatalf("Get(%s) = %v %x, map: %v %d", g, ok, got, had, w)
		}
	}
	var prev *guid.GUID
	n := 0
	err := tab.Sorted(func(g guid.GUID, val []byte) error {
		if prev != nil && bytes.Compare(prev[:], g[:]) >= 0 {
			t.Fatalf("Sorted: %s after %s", g, *prev)
		}
		if w, ok := want[g]; !ok || binary.LittleEndian.Uint32(val) != w {
			t.Fatalf("Sorted: %s %x, map: %v %d", g, val, ok, w)
		}
		prev = &g
		n++
		return nil
	})
	if err != nil || n != len(want) {
		t.Fatalf("Sorted: %d entries, %v; want %d", n, err, len(want))
	}
}
