package restore

import (
	"errors"
	"reflect"
	"testing"
	"unsafe"

	"github.com/mbtool/mbtool/internal/fill"
	"github.com/mbtool/mbtool/spill"
)

// TestParkRoundTrip parks a box whose every parked field is set and
// reads it back: the codec keeps every field (a field added to boxData,
// or to a type it holds, and not to the codec fails here). The snapshot
// and comparison of an existing mailbox live only while the box is
// loaded; the stages are parked as their ids.
func TestParkRoundTrip(t *testing.T) {
	rs := &restorer{stageList: []*stage{{id: 1}, {id: 2}}}
	rs.parked = spill.NewStore(func(d *boxData, e *spill.Enc) { d.encode(e, rs) },
		func(d *boxData, dec *spill.Dec) { d.decode(dec, rs) })
	defer rs.parked.Close()
	n := 0
	d := &boxData{}
	v := reflect.ValueOf(d).Elem()
	for i := range v.NumField() {
		switch v.Type().Field(i).Name {
		case "snap", "cmp", "st", "sides":
			continue
		}
		f := v.Field(i)
		fill.Fill(reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem(), &n)
	}
	d.st = rs.stageList[1]
	d.sides = []side{{st: rs.stageList[0], dir: "a", final: "b"}, {st: rs.stageList[1], dir: "", final: "c"}}
	b := &box{ref: -1, id: 3, boxData: d}
	if err := rs.parked.Park(b); err != nil {
		t.Fatal(err)
	}
	if b.boxData != nil {
		t.Fatal("parked box still loaded")
	}
	ref := b.ref
	if err := rs.parked.Load(b); err != nil {
		t.Fatal(err)
	}
	got := b.boxData
	if got.res.Err == nil || got.res.Err.Error() != d.res.Err.Error() {
		t.Fatalf("Err %v, want %v", got.res.Err, d.res.Err)
	}
	gotErr := got.res.Err
	got.res.Err, d.res.Err = nil, nil
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("parked and loaded:\n%+v\nwant\n%+v", got, d)
	}
	got.res.Err = gotErr
	// A peek is a copy; the box stays parked.
	if err := rs.parked.Park(b); err != nil || b.ref != ref {
		t.Fatalf("unchanged box parked at %d (was %d): %v", b.ref, ref, err)
	}
	c, err := spill.Peek(rs.parked, b)
	if err != nil || c == b || b.boxData != nil || c.name != d.name || c.id != 3 {
		t.Fatalf("peek: %v, %v", c, err)
	}
	// A damaged record is an error naming the mailbox, not a panic.
	p, err := rs.parked.Read(ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	dec := &spill.Dec{B: p[:len(p)/2]}
	if (&boxData{}).decode(dec, rs); !errors.Is(dec.Err, spill.ErrDamaged) {
		t.Fatalf("truncated record: %v", dec.Err)
	}
	if err := rs.parked.Load(&box{ref: -1, id: 7}); !errors.Is(err, spill.ErrDamaged) || err.Error() != "mailbox 7 of the dump: damaged spill record: nothing parked" {
		t.Fatalf("nothing parked: %v", err)
	}
}
