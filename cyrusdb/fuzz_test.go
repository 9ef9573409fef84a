package cyrusdb

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// addSeeds adds the real samples matching pattern to f's corpus.
func addSeeds(f *testing.F, pattern string) {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds %s: %v", pattern, err)
	}
	for _, p := range paths {
		f.Add(readFile(f, p))
	}
}

// FuzzTwoskip: any input gives records or a *CorruptError, never a panic
// or hang; what reads cleanly is consistent across ForEach and Get, and
// survives a WriteTwoskip round trip.
func FuzzTwoskip(f *testing.F) {
	addSeeds(f, "twoskip-*.db")
	f.Add(writeTwoskip(f, 1, genRecords(20)))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ReadTwoskip("fuzz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadTwoskip: %v is not ErrCorrupt", err)
			}
			return
		}
		recs, err := collect(ts, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ForEach: %v is not ErrCorrupt", err)
			}
			for _, r := range recs {
				ts.Get(r[0]) // must not panic or hang
			}
			return
		}
		for _, r := range recs {
			v, ok, err := ts.Get(r[0])
			if err != nil || !ok || !bytes.Equal(v, r[1]) {
				t.Fatalf("ForEach has %q = %q, Get gives %q, %v, %v", r[0], r[1], v, ok, err)
			}
		}
		out := writeTwoskip(t, ts.Generation()+1, recs)
		again, err := collect(readTwoskip(t, out), nil)
		if err != nil || !equalRecords(again, recs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzFlat: any input gives records or a *CorruptError; what reads cleanly
// is what WriteFlat writes of those records, byte for byte.
func FuzzFlat(f *testing.F) {
	addSeeds(f, "flat-*.db")
	f.Add([]byte("a\t1\nb\t\xff\x80\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := readFlatAll(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadFlat: %v is not ErrCorrupt", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteFlat(&buf, recs); err != nil {
			t.Fatalf("WriteFlat of what ReadFlat read: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Fatalf("WriteFlat(ReadFlat(%q)) = %q", b, buf.Bytes())
		}
	})
}
