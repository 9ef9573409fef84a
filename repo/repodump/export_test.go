package repodump

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/repo"
)

// Every user of a generated partition (mailbox lines of hundreds of KB,
// many annotations) writes out of the repository as its standalone dump.
// With this content a state's verb token once straddled the reader's
// buffer and was read after the buffer moved on.
func TestExportGenerated(t *testing.T) {
	ctx := context.Background()
	c, _, err := gen.Partition(ctx, t.TempDir(), gen.Options{Seed: 40, Messages: 2000, MeanSize: 6000, PerMailbox: 300})
	if err != nil {
		t.Fatal(err)
	}
	s := openSpool(t, c)
	r := newRepo(t)
	sum, err := Run(ctx, s, r, Options{All: true, Host: "h", Version: "v", Now: night})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range sum.Snapshot.Users {
		if u.Name == repo.SharedName {
			continue
		}
		if got, want := export(t, r, sum.Snapshot, u.Name), standalone(t, s, u.Name); !bytes.Equal(got, want) {
			t.Errorf("user %s writes out differently from its standalone dump", u.Name)
		}
	}
	// The shared mailboxes are in the snapshot too (as the entry
	// repo.SharedName), and the whole snapshot writes out as dump --all.
	if sh := sum.Snapshot.User(repo.SharedName); sh == nil || sh.Mailboxes == 0 || sum.Shared != sh.Mailboxes {
		t.Fatalf("shared mailboxes: snapshot %+v, summary %d", sh, sum.Shared)
	}
	var all bytes.Buffer
	if _, err := dump.Run(ctx, s, &all, dump.Options{All: true, Host: "h", Version: "v", Now: night}); err != nil {
		t.Fatal(err)
	}
	if got := export(t, r, sum.Snapshot); !bytes.Equal(got, all.Bytes()) {
		t.Errorf("the snapshot writes out differently from dump --all (%d bytes, %d)", len(got), all.Len())
	}
	again, err := r.ReadSnapshot(sum.Snapshot.ID)
	if err != nil || again.User(repo.SharedName) == nil || again.Users[len(again.Users)-1].Name != repo.SharedName {
		t.Fatalf("read back: %v, %+v", err, again)
	}
	// A second night finds them unchanged.
	sum2, err := Run(ctx, openSpool(t, c), r, Options{All: true, Host: "h", Version: "v", Now: night.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := sum.Snapshot.User(repo.SharedName), sum2.Snapshot.User(repo.SharedName); b == nil || a.State != b.State {
		t.Errorf("night 2 stored the unchanged shared mailboxes anew: %+v, %+v", a, b)
	}
	if cs, err := r.Check(ctx, repo.CheckOptions{ReadData: true}); err != nil || len(cs.Findings) > 0 {
		t.Fatalf("verify --repo: %v %v", err, cs.Findings)
	}
}
