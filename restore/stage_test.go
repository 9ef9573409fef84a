package restore

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/partition"
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

// TestStagePrivate: while a restore reads the dump, its staging directory
// and the msg/, mbox/ and trash/ in it (and its lock file) belong to the
// user running it, mode 0700 (0600), so that no other user can enter
// them; the staged mailbox directories and files in them already have
// the owner the restore gives them, under their own names (no temporary
// name of package cyrusfs). As root the files go to nobody.
func TestStagePrivate(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"})
	target := emptyTarget(t, "")
	owner := testOwner
	if os.Geteuid() == 0 {
		owner = partition.Owner{UID: 65534, GID: 65534}
	}
	wantUID := owner.UID
	if wantUID < 0 {
		wantUID = os.Geteuid()
	}
	checked := 0
	SetPhaseHook(func(phase string) {
		if phase != "read" {
			return
		}
		root := target.Config.Partitions["default"]
		stages, _ := filepath.Glob(filepath.Join(root, stagePrefix+"*"))
		if len(stages) != 1 {
			t.Errorf("staging directories %v", stages)
			return
		}
		filepath.WalkDir(stages[0], func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				t.Error(err)
				return nil
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Error(err)
				return nil
			}
			rel, _ := filepath.Rel(stages[0], p)
			uid, mode := wantUID, uint32(0o600)
			switch {
			case rel == "." || rel == "msg" || rel == "mbox" || rel == "trash":
				uid, mode = os.Geteuid(), 0o700
			case rel == "lock":
				uid = os.Geteuid()
			case e.IsDir():
				mode = 0o700
			}
			if int(st.Uid) != uid || st.Mode&0o7777 != mode {
				t.Errorf("%s: owner %d mode %o, want %d %o", rel, st.Uid, st.Mode&0o7777, uid, mode)
			}
			if strings.HasPrefix(e.Name(), ".mbtool-tmp-") {
				t.Errorf("%s: a temporary name", rel)
			}
			checked++
			return nil
		})
	})
	defer SetPhaseHook(nil)
	sum, err := run(t, target, dump, Options{Owner: &owner})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("problems: %v", sum.Problems)
	}
	if checked < 10 {
		t.Errorf("only %d entries of the staging directory checked", checked)
	}
	checkConsistent(t, src, target)
}
