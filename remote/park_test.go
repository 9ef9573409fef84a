package remote

import (
	"errors"
	"reflect"
	"testing"

	"github.com/mbtool/mbtool/spill"
)

// fill sets every field of the struct v points to to a value of its own
// (n, counting), so that a field the codec forgets fails the test.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.String:
		v.SetString("s\x00\xff" + string(rune('a'+*n%26)))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Int, reflect.Int64:
		v.SetInt(-int64(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Interface: // result.Mailbox.Err
		v.Set(reflect.ValueOf(errors.New("refused")))
	default:
		panic("fill: " + v.Kind().String())
	}
}

// TestParkRoundTrip parks a box whose every field is set and reads it
// back: the codec keeps every field (a field added to syncrec.Mailbox or
// result.Mailbox and not to the codec fails here).
func TestParkRoundTrip(t *testing.T) {
	n := 0
	d := &boxData{}
	fill(reflect.ValueOf(&d.src), &n)
	fill(reflect.ValueOf(&d.mb), &n)
	fill(reflect.ValueOf(&d.existing), &n)
	fill(reflect.ValueOf(&d.res), &n)
	d.items, d.probed = span{first: 7, n: 9}, true
	d.mb.UserFlags = []string{} // carried, empty: not nil
	d.existing.UserFlags = nil
	inv := &inventory{parked: newParked()}
	defer inv.parked.Close()
	b := &box{ref: -1, boxData: d}
	if err := inv.park(b); err != nil {
		t.Fatal(err)
	}
	ref := b.ref
	if err := inv.load(b); err != nil {
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
	if err := inv.park(b); err != nil || b.ref != ref {
		t.Fatalf("unchanged box parked at %d (was %d): %v", b.ref, ref, err)
	}
	if err := inv.load(b); err != nil {
		t.Fatal(err)
	}
	b.res.Reason = "changed"
	if err := inv.park(b); err != nil || b.ref == ref {
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
