package dump_test

import (
	"context"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/partition"
)

// dumpAllocs generates a partition of one user's 11 mailboxes with n
// small messages and returns the heap allocations of dumping it (all
// goroutines: the hashing workers' too), the least of three runs.
func dumpAllocs(t *testing.T, n int) (allocs uint64, records int64) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "p")
	conf, _, err := gen.Partition(context.Background(), dir, gen.Options{Seed: 3, Users: 1, Messages: n, SmallOnly: true, MeanSize: 1_700})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		sum, err := dump.Run(context.Background(), s, io.Discard, dump.Options{All: true, Host: "h"})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if a := after.Mallocs - before.Mallocs; i == 0 || a < allocs {
			allocs = a
		}
		records = sum.Records
	}
	return allocs, records
}

// TestHandOffPerFile measures the allocations per message file of a dump
// (the difference between 600 and 2,400 messages in the same 11
// mailboxes, so that what a run and a mailbox cost drops out). Each file
// used to be handed to a worker and to the writer on its own: a job and
// a channel allocated per file, 19.1 allocations per file in all; small
// files now go in batches of up to 16 (17.3).
func TestHandOffPerFile(t *testing.T) {
	if testing.Short() {
		t.Skip("generates two partitions")
	}
	a1, r1 := dumpAllocs(t, 600)
	a2, r2 := dumpAllocs(t, 2_400)
	per := float64(a2-a1) / float64(r2-r1)
	t.Logf("%d allocations for %d records, %d for %d: %.1f per record", a1, r1, a2, r2, per)
	if per > 18.2 {
		t.Errorf("dump makes %.1f allocations per message file; want at most 18.2 (no job and channel per file)", per)
	}
}
