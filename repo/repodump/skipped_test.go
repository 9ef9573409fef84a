package repodump

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/verify"
)

// An item the dump leaves out (a damaged message file) and a user gone
// before its turn stay in the snapshot as MBTOOL SKIPPED lines: the
// snapshot written out is partial as the standalone dump is, and verify
// --repo counts them, where it used to drop them.
func TestSkippedKept(t *testing.T) {
	ctx := context.Background()
	s := openSpool(t, fixtures.UnpackT(t))
	e, err := s.Lookup("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := s.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "1."), []byte("damaged\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	sum, err := Run(ctx, s, r, Options{Users: []string{"alice", "bob", "gone"}, Host: "h", Version: "v", Now: night})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) != 1 || len(sum.Skipped) != 1 {
		t.Fatalf("problems %v, skipped %v; want one of each", sum.Problems, sum.Skipped)
	}
	snap := sum.Snapshot
	if a := snap.User("alice"); a == nil || a.Skipped != 1 || len(snap.Skipped) != 1 || snap.SkippedItems() != 2 {
		t.Fatalf("snapshot: alice %+v, run skips %v", a, snap.Skipped)
	}
	// Read back from the file.
	again, err := r.ReadSnapshot(snap.ID)
	if err != nil || again.SkippedItems() != 2 || again.Skipped[0].Item != "user gone" {
		t.Fatalf("read back: %+v, %v", again, err)
	}
	// alice written out is her standalone dump, SKIPPED line included.
	if got, want := export(t, r, snap, "alice"), standalone(t, s, "alice"); !bytes.Equal(got, want) {
		t.Errorf("alice writes out differently from her standalone dump")
	}
	all := export(t, r, snap)
	vs, err := verify.Run(ctx, bytes.NewReader(all), verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !vs.OK() || vs.Skipped != 2 {
		t.Errorf("verify of the export: ok %v, %d skipped; want ok, 2", vs.OK(), vs.Skipped)
	}
	dr, err := dumpfile.NewReader(bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	dr.OnSkip = func(s dumpfile.Skip, _ int64) { items = append(items, s.Item) }
	for {
		if _, _, _, err := dr.Next(); err != nil {
			break
		}
		dr.SkipLine()
	}
	if len(items) != 2 || items[0] != "user.alice" || items[1] != "user gone" {
		t.Errorf("export's SKIPPED lines: %q", items)
	}
	cs, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || len(cs.Findings) > 0 || cs.Skipped != 2 {
		t.Fatalf("verify --repo: %v, findings %v, %d skipped; want 2", err, cs.Findings, cs.Skipped)
	}
}

// A shared mailbox that goes between the listing and the dump, and again
// after a second listing, is skipped by its name (in the summary, the
// warnings and the snapshot's MBTOOL SKIPPED line), and the other shared
// mailboxes are dumped; it used to be "user *shared*", with every shared
// mailbox left out.
func TestSharedMailboxGone(t *testing.T) {
	ctx := context.Background()
	c, _, err := gen.Partition(ctx, t.TempDir(), gen.Options{Seed: 41, Messages: 300, MeanSize: 2000, PerMailbox: 50})
	if err != nil {
		t.Fatal(err)
	}
	s := openSpool(t, c)
	shared, err := dump.SharedMailboxes(s)
	if err != nil || len(shared) == 0 {
		t.Fatalf("shared mailboxes of the generated partition: %v, %v", shared, err)
	}
	// Every listing sees a shared mailbox that is gone when the dump
	// looks it up.
	listShared = func(s *partition.Spool) ([]string, error) {
		names, err := dump.SharedMailboxes(s)
		return append(names, "shared.zz-gone"), err
	}
	defer func() { listShared = dump.SharedMailboxes }()
	r := newRepo(t)
	sum, err := Run(ctx, s, r, Options{All: true, Host: "h", Version: "v", Now: night})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Skipped) != 1 || sum.Skipped[0].Item() != "shared.zz-gone" ||
		!strings.HasPrefix(sum.Skipped[0].String(), "shared.zz-gone: skipped: ") {
		t.Fatalf("skipped %q; want shared.zz-gone", sum.Skipped)
	}
	if sum.Shared != int64(len(shared)) {
		t.Errorf("%d shared mailboxes dumped, want %d", sum.Shared, len(shared))
	}
	snap := sum.Snapshot
	if len(snap.Skipped) != 1 || snap.Skipped[0].Item != "shared.zz-gone" {
		t.Fatalf("the snapshot's skipped items: %+v", snap.Skipped)
	}
	// Written out: dump --all with the run's SKIPPED line at its end.
	var items []string
	dr, err := dumpfile.NewReader(bytes.NewReader(export(t, r, snap)))
	if err != nil {
		t.Fatal(err)
	}
	dr.OnSkip = func(s dumpfile.Skip, _ int64) { items = append(items, s.Item) }
	for {
		if _, _, _, err := dr.Next(); err != nil {
			break
		}
		dr.SkipLine()
	}
	if len(items) != 1 || items[0] != "shared.zz-gone" {
		t.Errorf("export's SKIPPED lines: %q", items)
	}
}
