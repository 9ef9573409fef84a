package dump

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/partition"
)

// dumpWithOpeners dumps everything of s with the given number of
// goroutines opening mailboxes ahead.
func dumpWithOpeners(t *testing.T, s *partition.Spool, openers int) []byte {
	t.Helper()
	src := NewSpoolSource(s, 0, 0).(*spoolSource)
	src.openers = openers
	var buf bytes.Buffer
	sum, err := Write(context.Background(), src, &buf, Options{All: true, Host: "h", Version: "v", Now: time.Unix(1_700_000_000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("problems: %v", sum.Problems)
	}
	if src.missed > 0 {
		t.Fatalf("%d openers: %d mailboxes were not the next the prefetcher opened", openers, src.missed)
	}
	return buf.Bytes()
}

// TestParallelOpenersOrder dumps a partition of many users (10 mailboxes
// each, and a shared one) with one goroutine opening mailboxes ahead and
// with several: the openers open different users' mailboxes at once, and
// the dump must still be the same bytes, every mailbox in the order of
// the plan.
func TestParallelOpenersOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	conf, _, err := gen.Partition(context.Background(), dir, gen.Options{Seed: 5, Users: 12, Messages: 400, SmallOnly: true, MeanSize: 1_000})
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
	want := dumpWithOpeners(t, s, 1)
	for _, n := range []int{2, 3, 7} {
		for range 3 {
			if got := dumpWithOpeners(t, s, n); !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("%d openers: dump differs from one opener's at byte %d of %d (%d)", n, i, len(want), len(got))
			}
		}
	}
	// The units of the plan: one per user, the shared mailbox alone.
	src := NewSpoolSource(s, 0, 0).(*spoolSource)
	if _, err := src.Plan(context.Background(), Selection{All: true}); err != nil {
		t.Fatal(err)
	}
	units := src.units()
	if len(units) != 13 {
		t.Errorf("%d units of one owner, want 13 (12 users and the shared mailboxes)", len(units))
	}
	n := 0
	for _, u := range units {
		for _, name := range u.names {
			if name != src.order[n] {
				t.Fatalf("unit mailbox %d is %s, the plan's is %s", n, name, src.order[n])
			}
			n++
		}
	}
	if n != len(src.order) {
		t.Errorf("units hold %d mailboxes, the plan %d", n, len(src.order))
	}
}
