package remote

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/internal/benchstat"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/spill"
)

// restorePeak restores a generated dump of messages records into a fresh
// sync_server and returns the largest live heap seen at the phase hooks
// (after the check, the plan, the reservations, and as the second pass
// starts), less the live heap before.
func restorePeak(t *testing.T, users, messages int, dryRun bool) (uint64, int64) {
	t.Helper()
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	defer noCrash(t, lab)
	name := filepath.Join(t.TempDir(), "gen.dump")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := gen.WriteDump(f, gen.Options{Seed: 3, Users: users, Messages: messages, SmallOnly: true, MeanSize: 600})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	base := benchstat.LiveHeap()
	var peak uint64
	phaseHook = func(string) {
		if h := benchstat.LiveHeap(); h > peak {
			peak = h
		}
	}
	defer func() { phaseHook = nil }()
	f, err = os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The report goes to RestoreOptions.Report, as the command line has
	// it, and is counted, not kept.
	var planned, applied int64
	sum, err := Restore(context.Background(), f, dialer(lab, lab.SyncAddr), RestoreOptions{DryRun: dryRun,
		Report: func(_ *RestoreSummary, m MailboxResult) {
			planned++
			if m.Applied {
				applied++
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if dryRun {
		if planned != st.Mailboxes {
			t.Fatalf("%d mailboxes planned of %d", planned, st.Mailboxes)
		}
	} else if applied != st.Mailboxes {
		t.Fatalf("applied %d mailboxes of %d: %v", applied, st.Mailboxes, sum.Problems)
	}
	n := int64(st.Records)
	if users > 2 {
		n = st.Mailboxes
	}
	if peak < base {
		return 0, n
	}
	return peak - base, n
}

// TestRealCyrusRestoreServerMemoryFlat restores dumps of 2,000 and 20,000
// records (in the same 21 mailboxes) with restore --server and compares
// the live heap at its phases: what restore --server keeps of the dump
// (the records of every mailbox, the GUIDs and sizes of the files, which
// GUIDs the server has and lacks) goes to files, so the heap must not
// grow with the messages beyond a few bytes each (the Bloom filters and
// block index of the spilled tables). It held about 150 bytes per
// message in maps and slices before.
func TestRealCyrusRestoreServerMemoryFlat(t *testing.T) {
	cyruslab.Require(t)
	defer func(l int64) { guidtable.DefaultMemLimit = l }(guidtable.DefaultMemLimit)
	guidtable.DefaultMemLimit = 64 << 10 // a small budget, so that most entries go to files
	small, n1 := restorePeak(t, 2, 2000, false)
	large, n2 := restorePeak(t, 2, 20000, false)
	perMsg := (float64(large) - float64(small)) / float64(n2-n1)
	t.Logf("live heap: %d bytes at %d records, %d at %d: %.1f bytes per record", small, n1, large, n2, perMsg)
	if perMsg > 16 {
		t.Errorf("restore --server keeps %.1f bytes per record in memory; want at most 16", perMsg)
	}
}

// TestRealCyrusRestoreServerHeapPerMailbox plans (--dry-run) dumps of 201
// and 1,001 mailboxes (3 small messages each) against a real sync_server
// and reports the live heap per mailbox. Each mailbox of the dump keeps
// its keys as dumped and as sent (names, ACL, annotations) and its result
// until the report, parked in a spill file between uses (park.go): what
// stays in memory per mailbox is its handle. It was 1,225 bytes per
// mailbox before they were parked; the bound fails on that. The tables
// that keep their recent entries in memory hold at most their limit
// whatever the dump; small limits here keep that from passing for a cost
// per mailbox.
func TestRealCyrusRestoreServerHeapPerMailbox(t *testing.T) {
	cyruslab.Require(t)
	defer func(g, n int64) { guidtable.DefaultMemLimit, spill.NamesMemLimit = g, n }(guidtable.DefaultMemLimit, spill.NamesMemLimit)
	guidtable.DefaultMemLimit, spill.NamesMemLimit = 16<<10, 16<<10
	small, n1 := restorePeak(t, 20, 600, true)
	large, n2 := restorePeak(t, 100, 3000, true)
	per := (float64(large) - float64(small)) / float64(n2-n1)
	t.Logf("live heap: %d bytes at %d mailboxes, %d at %d: %.0f bytes per mailbox", small, n1, large, n2, per)
	if per > maxServerHeapPerMailbox {
		t.Errorf("restore --server keeps %.0f bytes per mailbox in memory; want at most %d", per, maxServerHeapPerMailbox)
	}
}

// maxServerHeapPerMailbox bounds what restore --server holds per mailbox.
const maxServerHeapPerMailbox = 200
