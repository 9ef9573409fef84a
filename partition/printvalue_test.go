package partition

import (
	"bytes"
	"runtime"
	"testing"
)

// A restore encodes a mailboxes.db entry, its I record and a cyrus.header
// per mailbox: each must cost about its own size, not a fresh dlist
// buffer of 68 KiB.
func TestEncodeEntryAllocatesLittle(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector sync.Pool drops its buffers, and this counts allocations")
	}
	e := Entry{Name: "user.alice.Sent", UniqueID: "pdvxqscrwnco3xd6lk2h5rj1", Partition: "default", Type: "e",
		UIDValidity: 1700000000, CreatedModseq: 4, FolderModseq: 9, MTime: 1700000000,
		ACL: []ACLEntry{{ID: "alice", Rights: "lrswipkxtecdan"}}}
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		if _, err := EncodeEntry(e); err != nil {
			t.Fatal(err)
		}
		if _, err := EncodeHeader(Header{Type: "e", Name: e.Name, UniqueID: e.UniqueID, ACL: e.ACL}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// The pool may be emptied by a GC in between; a few fresh printers
	// are fine, one per call is not.
	if per := (after.TotalAlloc - before.TotalAlloc) / (2 * n); per > 8<<10 {
		t.Errorf("%d bytes allocated per encoded value, want under 8 KiB", per)
	}
}

// The printers are reused: a value returned earlier must not change when
// the next one is printed.
func TestEncodeEntryValuesDoNotAlias(t *testing.T) {
	a := Entry{Name: "user.alice", UniqueID: "aaaaaaaaaaaaaaaaaaaaaaaa", Partition: "default", Type: "e", MTime: 1}
	b := Entry{Name: "user.bob.Trash", UniqueID: "bbbbbbbbbbbbbbbbbbbbbbbb", Partition: "p2", Type: "e", MTime: 2}
	va, err := EncodeEntry(a)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(va)
	for i := 0; i < 10; i++ {
		if _, err := EncodeEntry(b); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(va, want) {
		t.Fatalf("first value changed to %q, was %q", va, want)
	}
	if again, _ := EncodeEntry(a); !bytes.Equal(again, want) {
		t.Fatalf("encoding again gives %q, first %q", again, want)
	}
}
