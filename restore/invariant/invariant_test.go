package invariant

import (
	"testing"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

func g(b byte) guid.GUID { var x guid.GUID; x[0] = b; return x }

// feed returns a next function over recs.
func feed(recs []Record) func() (*Record, error) {
	i := 0
	return func() (*Record, error) {
		if i == len(recs) {
			return nil, nil
		}
		i++
		return &recs[i-1], nil
	}
}

func TestCompare(t *testing.T) {
	target := []Record{
		{UID: 1, GUID: g(1), Modseq: 4},
		{UID: 2, GUID: g(2), Modseq: 9}, // flags changed since the dump
		{UID: 3, GUID: g(3), Modseq: 10, Expunged: true},
		{UID: 5, GUID: g(5), Modseq: 11}, // new since the dump
		{UID: 6, GUID: g(6), Modseq: 12}, // new since the dump
	}
	dump := []Record{
		{UID: 1, GUID: g(1), Modseq: 4},
		{UID: 2, GUID: g(2), Modseq: 5},
		{UID: 3, GUID: g(3), Modseq: 6}, // expunged in the target since
		{UID: 4, GUID: g(4), Modseq: 7}, // expunged and purged in the target
	}
	var checked []uint32
	c := NewCompare(feed(target), func(r *Record) bool {
		checked = append(checked, r.UID)
		return r.UID != 2 // UID 2's file is damaged
	})
	for _, r := range dump {
		c.Add(r)
	}
	d, err := c.End()
	if err != nil {
		t.Fatal(err)
	}
	want := Diff{DumpOnly: 2, TargetOnly: 2, Changed: 1, Damaged: 1}
	if d != want {
		t.Errorf("diff %+v, want %+v", d, want)
	}
	if len(checked) != 2 || checked[0] != 1 || checked[1] != 2 {
		t.Errorf("files checked for UIDs %v, want [1 2]", checked)
	}
	got := Differences(State{UIDValidity: 7, LastUID: 4}, State{UIDValidity: 7, LastUID: 6}, &d)
	const words = "2 messages of the dump are not in the target, 2 in the target are not in the dump, " +
		"1 message has other flags or annotations in the target, 1 message file in the target is missing or damaged"
	if got != words {
		t.Errorf("differences:\n got %q\nwant %q", got, words)
	}
}

func TestDifferencesIdentical(t *testing.T) {
	s := State{UIDValidity: 1, LastUID: 9, HighestModseq: 20, SyncCRC: 3, SyncCRCAnnot: 4}
	if got := Differences(s, s, &Diff{}); got != "" {
		t.Errorf("identical: %q", got)
	}
	// Records alike, a key not: the key is named.
	o := s
	o.HighestModseq = 21
	if got := Differences(s, o, &Diff{}); got != "HIGHESTMODSEQ 20 in the dump, 21 in the target" {
		t.Errorf("modseq: %q", got)
	}
	o = s
	o.UIDValidity = 2
	if got := Differences(s, o, &Diff{TargetOnly: 1}); got != "1 in the target is not in the dump, UIDVALIDITY 1 in the dump, 2 in the target (the mailbox was recreated)" {
		t.Errorf("uidvalidity: %q", got)
	}
}

// A replace by an identical mailbox writes every record as it was and
// leaves HIGHESTMODSEQ where it was; one changed record moves it above
// both mailboxes'.
func TestReplaceHighestModseq(t *testing.T) {
	st := State{UIDValidity: 7, LastUID: 2, HighestModseq: 10}
	target := []Record{{UID: 1, GUID: g(1), Modseq: 4}, {UID: 2, GUID: g(2), Modseq: 10}}
	for _, changed := range []bool{false, true} {
		var wrote []uint64
		r := NewReplace(st, st, feed(target), 1700000000, func(d *syncrec.Record, file bool) error {
			wrote = append(wrote, d.Modseq)
			return nil
		})
		second := uint64(10)
		if changed {
			second = 9 // the dump's copy of UID 2 is older
		}
		for _, d := range []*syncrec.Record{{UID: 1, GUID: g(1), Modseq: 4}, {UID: 2, GUID: g(2), Modseq: second}} {
			if err := r.Add(d); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.End(); err != nil {
			t.Fatal(err)
		}
		want := uint64(10)
		if changed {
			want = 11
		}
		if got := r.HighestModseq(); got != want || len(wrote) != 2 || wrote[1] != want {
			t.Errorf("changed %v: HIGHESTMODSEQ %d, records written with %v; want %d", changed, got, wrote, want)
		}
	}
}
