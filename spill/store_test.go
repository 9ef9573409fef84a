package spill

import (
	"errors"
	"strings"
	"testing"
)

// val is a value parked in a Store in the tests: a string, and an
// optional value encoded with Enc.Fixed.
type val struct {
	s     string
	fixed any
}

type holder struct {
	ref    int64
	v      *val
	pinned bool
}

func (h *holder) Slot() (*int64, **val) { return &h.ref, &h.v }
func (h *holder) Item() string          { return "value" }
func (h *holder) Pinned() bool          { return h.pinned }

func newValStore() *Store[val] {
	return NewStore(func(v *val, e *Enc) {
		e.String(v.s)
		if v.fixed != nil {
			e.Fixed(v.fixed)
		}
	}, func(v *val, d *Dec) { v.s = d.String() })
}

// TestStoreUse: Use loads, runs and parks, also when the function fails,
// and returns the function's error first.
func TestStoreUse(t *testing.T) {
	s := newValStore()
	defer s.Close()
	h := &holder{ref: -1, v: &val{s: "a"}}
	if err := s.Park(h); err != nil || h.v != nil {
		t.Fatalf("park: %v, %v", h.v, err)
	}
	err := s.Use(h, func() error {
		if h.v == nil || h.v.s != "a" {
			t.Errorf("not loaded in Use: %+v", h.v)
		}
		h.v.s = "b"
		return nil
	})
	if err != nil || h.v != nil {
		t.Fatalf("Use: %v, %+v left loaded", err, h.v)
	}
	failed := errors.New("failed")
	err = s.Use(h, func() error {
		h.v.s = "c"
		return failed
	})
	if err != failed || h.v != nil {
		t.Fatalf("Use of a failing function: %v, %+v left loaded", err, h.v)
	}
	got, err := s.Get(h.ref)
	if err != nil || got.s != "c" {
		t.Fatalf("parked after a failure: %+v, %v; want c", got, err)
	}
	// A value that cannot be encoded: Park's error, after fn's.
	err = s.Use(h, func() error { h.v.fixed = []int{1}; return nil })
	if err == nil || !strings.Contains(err.Error(), "value") {
		t.Fatalf("Use with a value Fixed cannot write: %v", err)
	}
	h.v = nil
	err = s.Use(h, func() error { h.v.fixed = []int{1}; return failed })
	if err != failed {
		t.Fatalf("Use: %v, want the function's error first", err)
	}
}

// TestStorePinned: a pinned holder stays loaded and is not written.
func TestStorePinned(t *testing.T) {
	s := newValStore()
	defer s.Close()
	h := &holder{ref: -1, v: &val{s: "a"}, pinned: true}
	if err := s.Use(h, func() error { h.v.s = "b"; return nil }); err != nil {
		t.Fatal(err)
	}
	if h.v == nil || h.v.s != "b" || h.ref != -1 {
		t.Fatalf("pinned value parked: %+v at %d", h.v, h.ref)
	}
}

// TestEncFixed: Fixed appends what binary writes, and a value it cannot
// write is the Enc's Err (and Reset clears it), not a silently shorter
// record.
func TestEncFixed(t *testing.T) {
	var e Enc
	e.Fixed(&struct{ A, B uint16 }{1, 2})
	if string(e.B) != "\x01\x00\x02\x00" || e.Err != nil {
		t.Fatalf("Fixed: %q, %v", e.B, e.Err)
	}
	e.Fixed("not fixed")
	if e.Err == nil || len(e.B) != 4 {
		t.Fatalf("Fixed of a string: %q, %v; want an error and nothing appended", e.B, e.Err)
	}
	e.Reset()
	if e.Err != nil || len(e.B) != 0 {
		t.Fatalf("Reset: %q, %v", e.B, e.Err)
	}
}

// TestStoreParkComparesLoaded: Park compares a loaded value's encoding
// with the bytes it was loaded from, not with the file read again, and
// writes it only if it changed; a value parked without being loaded
// (or loaded by a Store that emptied its list) is compared with the file.
func TestStoreParkComparesLoaded(t *testing.T) {
	s := newValStore()
	defer s.Close()
	h := &holder{ref: -1, v: &val{s: "unchanged"}}
	if err := s.Park(h); err != nil {
		t.Fatal(err)
	}
	ref := h.ref
	if err := s.Load(h); err != nil {
		t.Fatal(err)
	}
	// The file's bytes change under the loaded value: a Park that read
	// them back would find them different and append the value again.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.f.WriteAt([]byte("X"), ref+4+9); err != nil { // "unchangeX"
		t.Fatal(err)
	}
	size := s.size
	if err := s.Park(h); err != nil {
		t.Fatal(err)
	}
	if h.ref != ref || s.size != size {
		t.Fatalf("an unchanged loaded value was written again (ref %d -> %d, size %d -> %d)", ref, h.ref, size, s.size)
	}
	// Changed: written, and read back as changed.
	if err := s.Load(h); err != nil {
		t.Fatal(err)
	}
	h.v.s = "changed"
	if err := s.Park(h); err != nil {
		t.Fatal(err)
	}
	if h.ref == ref {
		t.Fatal("a changed value was not written")
	}
	if err := s.Load(h); err != nil || h.v.s != "changed" {
		t.Fatalf("loaded %+v, %v; want changed", h.v, err)
	}
	// Loaded, then forgotten by the Store: compared with the file.
	s.loaded = nil
	ref = h.ref
	if err := s.Park(h); err != nil || h.ref != ref {
		t.Fatalf("unchanged value compared with the file: ref %d -> %d, %v", ref, h.ref, err)
	}
}
