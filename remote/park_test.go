package remote

import (
	"errors"
	"reflect"
	"testing"

	"github.com/mbtool/mbtool/internal/fill"
	"github.com/mbtool/mbtool/spill"
)

// TestParkRoundTrip parks a box whose every field is set and reads it
// back: the codec keeps every field (a field added to syncrec.Mailbox or
// result.Mailbox and not to the codec fails here).
func TestParkRoundTrip(t *testing.T) {
	n := 0
	d := &boxData{}
	fill.Fill(reflect.ValueOf(&d.src), &n)
	fill.Fill(reflect.ValueOf(&d.mb), &n)
	fill.Fill(reflect.ValueOf(&d.existing), &n)
	fill.Fill(reflect.ValueOf(&d.res), &n)
	d.items, d.probed = span{first: 7, n: 9}, true
	d.mb.UserFlags = []string{} // carried, empty: not nil
	d.existing.UserFlags = nil
	inv := &inventory{parked: newParked()}
	defer inv.parked.Close()
	b := &box{ref: -1, boxData: d}
	if err := inv.parked.Park(b); err != nil {
		t.Fatal(err)
	}
	ref := b.ref
	if err := inv.parked.Load(b); err != nil {
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
	// Parked again unchanged, it is not written again.
	if err := inv.parked.Park(b); err != nil || b.ref != ref {
		t.Fatalf("unchanged box parked at %d (was %d): %v", b.ref, ref, err)
	}
	if err := inv.parked.Load(b); err != nil {
		t.Fatal(err)
	}
	b.res.Reason = "changed"
	if err := inv.parked.Park(b); err != nil || b.ref == ref {
		t.Fatalf("changed box parked at %d (was %d): %v", b.ref, ref, err)
	}
	// A damaged record is an error, not a panic.
	p, err := inv.parked.Read(ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.parked.Get(-1); !errors.Is(err, spill.ErrDamaged) {
		t.Fatalf("nothing parked: %v", err)
	}
	dec := &spill.Dec{B: p[:len(p)/2]}
	if (&boxData{}).decode(dec); !errors.Is(dec.Err, spill.ErrDamaged) {
		t.Fatalf("truncated record: %v", dec.Err)
	}
}
