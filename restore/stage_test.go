package restore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/lock"
)

// TestRemoveStale: the staging directories a dead run can leave (empty
// and without a lock file; with a free lock file, whole or half removed)
// go at once; a live run's (its lock held) and a fresh one without a lock
// file but with content (an older mbtool's, until staleAge) stay.
func TestRemoveStale(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, files ...string) string {
		dir := filepath.Join(root, stagePrefix+name)
		if err := os.MkdirAll(filepath.Join(dir, "msg"), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	empty := filepath.Join(root, stagePrefix+"empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	dead := mk("dead", "lock", "msg/x")
	halfGone := mk("halfgone", "lock")
	live := mk("live", "lock", "msg/y")
	old := mk("old", "msg/z")
	lf, err := os.OpenFile(filepath.Join(live, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := lock.TryExclusive(lf); err != nil {
		t.Fatal(err)
	}

	rootd, err := cyrusfs.NewTree(root).OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rootd.Close()
	removeStale(rootd)
	for dir, want := range map[string]bool{empty: false, dead: false, halfGone: false, live: true, old: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(dir), err == nil, want)
		}
	}
}
