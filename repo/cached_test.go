package repo

import (
	"bytes"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/syncrec"
)

// A MAILBOX line keeps CACHED (a line of an older mbtool has none), and
// Known gives a delta, in the same index generation or across, only on a
// base whose every record had its cache record, read from an index of
// the version the mailbox has now: archiving moves a record's cache
// record without a new MODSEQ or generation, which a delta on a base
// without CACHED could not see.
func TestCachedAcrossGenerations(t *testing.T) {
	base := BoxEntry{Name: "user.alice", UniqueID: "u1", Key: "k0", Box: idHex([32]byte{1}),
		Modseq: 100, Generation: 5, Cached: 17, UIDValidity: 9, Records: 40}
	var buf bytes.Buffer
	w := dlist.NewWriter(&buf)
	if err := writeBoxEntry(w, &base); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if !bytes.Contains(buf.Bytes(), []byte(" CACHED 17 ")) {
		t.Fatalf("no CACHED in %q", buf.String())
	}
	parse := func(line []byte) BoxEntry {
		t.Helper()
		rd := dlist.NewReader(bytes.NewReader(line))
		vt, err1 := rd.Next()
		nt, err2 := rd.Next()
		if err1 != nil || err2 != nil || string(vt.Bytes) != Verb || string(nt.Bytes) != "MAILBOX" {
			t.Fatalf("%q: %v %v", line, err1, err2)
		}
		v, err := rd.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		e, err := parseBoxEntry(v)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if got := parse(buf.Bytes()); got != base {
		t.Fatalf("read back %+v, wrote %+v", got, base)
	}
	old := parse(bytes.Replace(buf.Bytes(), []byte(" CACHED 17"), nil, 1))
	if old.Cached != 0 {
		t.Fatalf("a line without CACHED reads as %d", old.Cached)
	}

	for _, tc := range []struct {
		name       string
		cached     uint32 // of the base
		generation uint32 // of the mailbox now
		version    uint32 // of its index now
		since      bool   // a delta
	}{
		{"same generation, not all cached", 0, 5, 17, false},
		{"same generation, cached", 17, 5, 17, true},
		{"repacked, cached", 17, 6, 17, true},
		{"repacked, not all cached", 0, 6, 17, false},
		{"repacked to another version", 16, 6, 17, false},
	} {
		e := base
		e.Cached = tc.cached
		u := &UserIngest{prev: map[string]BoxEntry{"u1": e}, versions: map[string]uint32{}}
		mb := &syncrec.Mailbox{UniqueID: "u1", Name: "user.alice", HighestModseq: 120, UIDValidity: 9,
			Generation: tc.generation, IndexVersion: tc.version}
		k := u.Known(mb)
		if got := k.Since == base.Modseq; got != tc.since || k.Same {
			t.Errorf("%s: Known %+v, want a delta %v", tc.name, k, tc.since)
		}
		if k.Cached != (tc.since && tc.cached != 0) {
			t.Errorf("%s: Known %+v: the dump is to check the cache records: %v", tc.name, k, !k.Cached)
		}
		if v := u.indexVersion("u1"); v != tc.version {
			t.Errorf("%s: index version %d kept, want %d", tc.name, v, tc.version)
		}
	}
}
