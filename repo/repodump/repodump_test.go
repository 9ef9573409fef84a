package repodump

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
)

func openSpool(t testing.TB, conf string) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newRepo makes an empty repository in a temporary directory.
func newRepo(t testing.TB) *repo.Repo {
	t.Helper()
	r, err := repo.OpenDirRepo(filepath.Join(t.TempDir(), "repo"), true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var night = time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)

func standalone(t *testing.T, s *partition.Spool, users ...string) []byte {
	t.Helper()
	return standaloneAt(t, s, night, users...)
}

func standaloneAt(t *testing.T, s *partition.Spool, at time.Time, users ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := dump.Run(context.Background(), s, &buf, dump.Options{Users: users, Host: "h", Version: "v", Now: at}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func export(t *testing.T, r *repo.Repo, snap *repo.Snapshot, users ...string) []byte {
	t.Helper()
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	var buf bytes.Buffer
	if _, err := r.WriteDump(context.Background(), idx, snap, &buf, repo.ExportOptions{Users: users}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A user written out of the repository is byte for byte the standalone
// dump of that user, on the first night and on the second, when nothing
// is read again.
func TestExportIsStandaloneDump(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	r := newRepo(t)
	var states []string
	for n := 0; n < 2; n++ {
		sum, err := Run(context.Background(), s, r, Options{All: true, Host: "h", Version: "v", Now: night, Jobs: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Problems) > 0 || len(sum.Skipped) > 0 || sum.Snapshot == nil {
			t.Fatalf("night %d: %+v", n, sum)
		}
		if n == 0 && (sum.NewFiles == 0 || sum.Users < 2) {
			t.Fatalf("night 1 stored %d files of %d users", sum.NewFiles, sum.Users)
		}
		if n == 1 && sum.NewFiles != 0 {
			t.Errorf("night 2 stored %d files again", sum.NewFiles)
		}
		for i, u := range sum.Snapshot.Users {
			if u.Name == repo.SharedName {
				continue // TestExportGenerated
			}
			// Nothing changed: the same state files, nothing written but
			// the snapshot and the run's lock.
			if n == 0 {
				states = append(states, u.State)
			} else if states[i] != u.State {
				t.Errorf("user %s: night 2 wrote state %s, night 1 %s", u.Name, u.State, states[i])
			}
			got := export(t, r, sum.Snapshot, u.Name)
			want := standalone(t, s, u.Name)
			if !bytes.Equal(got, want) {
				t.Fatalf("night %d user %s: export (%d bytes) differs from the standalone dump (%d bytes)", n, u.Name, len(got), len(want))
			}
		}
	}
}

// Two dumps of different users into one repository run at once (shared
// locks); both snapshots are complete; a prune meanwhile is refused.
func TestConcurrentDumps(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	r := newRepo(t)
	errs := make(chan error, 2)
	for _, u := range []string{"alice", "bob"} {
		go func() {
			_, err := Run(context.Background(), s, r, Options{Users: []string{u}, Host: "h", Version: "v", Now: night})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ss, err := r.Snapshots()
	if err != nil || len(ss) != 2 {
		t.Fatalf("%d snapshots, %v", len(ss), err)
	}
	sum, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || len(sum.Findings) > 0 {
		t.Fatalf("verify: %v %v", err, sum.Findings)
	}
	for _, snap := range ss {
		u := snap.Users[0].Name
		if got, want := export(t, r, snap, u), standalone(t, s, u); !bytes.Equal(got, want) {
			t.Errorf("user %s writes out differently", u)
		}
	}
	l, err := r.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := r.Prune(context.Background(), repo.PruneOptions{}); !errors.Is(err, repo.ErrLocked) {
		t.Errorf("prune beside a running dump: %v, want ErrLocked", err)
	}
}
