package repodump

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

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
	r, err := repo.OpenDirRepo(filepath.Join(t.TempDir(), "repo"), true)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(ctx, s, r, Options{All: true, Host: "h", Version: "v", Now: night})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range sum.Snapshot.Users {
		if got, want := export(t, r, sum.Snapshot, u.Name), standalone(t, s, u.Name); !bytes.Equal(got, want) {
			t.Errorf("user %s writes out differently from its standalone dump", u.Name)
		}
	}
}
