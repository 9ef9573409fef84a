package repodump

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/partition"
)

// A mailbox unchanged since the last night costs the reads of its
// headers only: after its first index record is damaged and a message
// file removed (which any read of them reports, as dump shows), the next
// night reports nothing and keeps the mailbox's box.
func TestUnchangedMailboxNotRead(t *testing.T) {
	ctx := context.Background()
	s := openSpool(t, fixtures.UnpackT(t))
	r := newRepo(t)
	sum1, err := Run(ctx, s, r, Options{Users: []string{"alice"}, Host: "h", Version: "v", Now: night})
	if err != nil || len(sum1.Problems) > 0 {
		t.Fatalf("night 1: %v %v", err, sum1)
	}
	const box = "user.alice"
	e, err := s.Lookup(box)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := s.MetaPath(e, partition.FileIndex)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := partition.ParseIndexHeader(b)
	if err != nil || h.NumRecords == 0 {
		t.Fatalf("%s: %v, %d records", idx, err, h.NumRecords)
	}
	b[h.StartOffset+3] ^= 0xff // the first record's UID: its CRC no longer matches
	if err := os.WriteFile(idx, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dir, _, err := s.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := filepath.Glob(filepath.Join(dir, "*."))
	if len(msgs) == 0 {
		t.Fatalf("no message file in %s", dir)
	}
	if err := os.Rename(msgs[0], msgs[0]+"gone"); err != nil {
		t.Fatal(err)
	}
	// Read, the damage shows.
	ds, err := dump.Run(ctx, s, discard{}, dump.Options{Users: []string{"alice"}, Host: "h", Version: "v", Now: night})
	if err != nil || len(ds.Problems) == 0 {
		t.Fatalf("a dump of the damaged mailbox: %v, %v; want problems", err, ds)
	}
	sum2, err := Run(ctx, s, r, Options{Users: []string{"alice"}, Host: "h", Version: "v", Now: night.Add(1)})
	if err != nil || len(sum2.Problems) > 0 || len(sum2.Skipped) > 0 {
		t.Fatalf("night 2 read the unchanged mailbox: %v, %v", err, sum2.Problems)
	}
	was, now := boxes(t, r, *sum1.Snapshot.User("alice")), boxes(t, r, *sum2.Snapshot.User("alice"))
	if was[box] != now[box] || len(now) != len(was) {
		t.Errorf("night 2 changed the entry of %s: %+v, was %+v", box, now[box], was[box])
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
