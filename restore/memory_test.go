package restore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/benchstat"
	"github.com/mbtool/mbtool/restore"
)

// restoreHeap restores a generated dump of users users (10 mailboxes
// each and one shared, 3 small messages per mailbox) into an empty
// partition and returns the largest live heap at the phases of the run
// (the dump read and staged; committed), less the heap before, and the
// number of mailboxes.
func restoreHeap(t *testing.T, users int) (uint64, int64) {
	t.Helper()
	dir := t.TempDir()
	name := filepath.Join(dir, "gen.dump")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := gen.WriteDump(f, gen.Options{Seed: 3, Users: users, Messages: 30 * users, SmallOnly: true, MeanSize: 1_700})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, spool, err := gen.OpenEmpty(filepath.Join(dir, "target"))
	if err != nil {
		t.Fatal(err)
	}
	base := benchstat.LiveHeap()
	var peak uint64
	restore.SetPhaseHook(func(string) { peak = max(peak, benchstat.LiveHeap()) })
	defer restore.SetPhaseHook(nil)
	sum, err := restore.Run(context.Background(), spool, f, restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(sum.Mailboxes)) != st.Mailboxes {
		t.Fatalf("%d mailboxes restored, want %d", len(sum.Mailboxes), st.Mailboxes)
	}
	if peak < base {
		return 0, st.Mailboxes
	}
	return peak - base, st.Mailboxes
}

// TestHeapPerMailbox measures what an offline restore holds per mailbox
// of the dump, between 201 and 1,001 mailboxes (MBTOOL_SCALE_LONG=1:
// 2,001 and 20,001 too). Every mailbox's box lives from its APPLY MAILBOX
// line to the commit (the restore commits only a dump that verified
// whole), so this is a constant per mailbox, not yet a bound on the run:
// 1,741 bytes per mailbox at 201 to 2,001 mailboxes, of which 704 are
// the box itself, the rest its names, ACL and map entries. The bound
// here keeps it from growing.
func TestHeapPerMailbox(t *testing.T) {
	if testing.Short() {
		t.Skip("restores 1,000 mailboxes")
	}
	users := []int{20, 100}
	if os.Getenv("MBTOOL_SCALE_LONG") == "1" {
		users = append(users, 200, 2000)
	}
	var heaps []uint64
	var boxes []int64
	for _, u := range users {
		h, n := restoreHeap(t, u)
		t.Logf("%d mailboxes: live heap %d bytes (%.0f per mailbox)", n, h, float64(h)/float64(n))
		heaps, boxes = append(heaps, h), append(boxes, n)
	}
	for i := 1; i < len(heaps); i++ {
		per := (float64(heaps[i]) - float64(heaps[i-1])) / float64(boxes[i]-boxes[i-1])
		t.Logf("%d to %d mailboxes: %.0f bytes per mailbox", boxes[i-1], boxes[i], per)
		if per > maxHeapPerMailbox {
			t.Errorf("offline restore holds %.0f bytes per mailbox; want at most %d", per, maxHeapPerMailbox)
		}
	}
}

const maxHeapPerMailbox = 2_500
