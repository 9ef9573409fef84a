package seencleanup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// TestRealCyrusPlantedSymlinks plants, in a real Cyrus lab, the symlinks
// the user cyrus could plant (seen.db.NEW, seen.db itself, the user's
// directory under config/user/uuid) pointing at a root-owned file and
// directory outside the lab, and runs seen-cleanup --delete as root
// (issue 13 finding 1). Nothing outside changes; a planted seen.db.NEW
// is removed, not followed, and the cleanup goes through; a planted
// seen.db or directory is refused and left as it was; Cyrus serves every
// mailbox afterwards and reconstruct -n finds nothing to repair.
func TestRealCyrusPlantedSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the attack is on a root-run mbtool")
	}
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	spool := openLabSpool(t, lab)
	inbox, err := spool.Lookup("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	seen, err := spool.SeenPath("alice")
	if err != nil {
		t.Fatal(err)
	}
	outside := cyruslab.TempDir(t)
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("root's precious file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cyrus := partition.CyrusOwner()
	plantLink := func(target, at string) {
		t.Helper()
		if err := os.Symlink(target, at); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(at, cyrus.UID, cyrus.GID); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		plant   func() (undo func())
		removed int // records removed; 0: refused
	}{
		{"seen.db.NEW", func() func() {
			plantLink(victim, seen+".NEW")
			return func() { os.Remove(seen + ".NEW") }
		}, 1},
		{"seen.db", func() func() {
			if err := os.Rename(seen, seen+".real"); err != nil {
				t.Fatal(err)
			}
			plantLink(victim, seen)
			return func() {
				os.Remove(seen)
				if err := os.Rename(seen+".real", seen); err != nil {
					t.Fatal(err)
				}
			}
		}, 0},
		{"config/user/uuid directory", func() func() {
			dir := filepath.Dir(seen)
			if err := os.Rename(dir, dir+".real"); err != nil {
				t.Fatal(err)
			}
			plantLink(outside, dir)
			return func() {
				os.Remove(dir)
				if err := os.Rename(dir+".real", dir); err != nil {
					t.Fatal(err)
				}
			}
		}, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lab.Tool(t, "cyr_dbtool", seen, "twoskip", "set", inbox.UniqueID, "1 0 36 0 1:36")
			before := listing(t, outside)
			oldSeen, _ := os.ReadFile(seen)
			undo := tc.plant()
			sum, err := Run(context.Background(), spool, Options{Users: []string{"alice"}, Delete: true,
				UndoFile: filepath.Join(t.TempDir(), "undo"+string(rune('a'+i)))})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("summary: %s; problems %v", sum, sum.Problems)
			if sum.Removed != tc.removed {
				t.Errorf("removed %d records, want %d", sum.Removed, tc.removed)
			}
			if after := listing(t, outside); after != before {
				t.Errorf("outside the lab changed:\n%s\nwas\n%s", after, before)
			}
			undo()
			if tc.removed == 0 {
				if b, _ := os.ReadFile(seen); string(b) != string(oldSeen) {
					t.Errorf("seen db changed by a refused run")
				}
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(seen, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&syscall.S_IFMT != syscall.S_IFREG || int(st.Uid) != cyrus.UID || st.Mode&0o777 != 0o600 {
				t.Errorf("seen db: mode %o owner %d, want a regular file 0600 owned by %d", st.Mode, st.Uid, cyrus.UID)
			}
			if _, err := os.Lstat(seen + ".NEW"); err == nil {
				t.Errorf("%s.NEW left", seen)
			}
			lab.Tool(t, "cyr_dbtool", seen, "twoskip", "consistent")
			lab.CheckServes(t, "alice", "bob")
		})
	}
}

func openLabSpool(t *testing.T, lab *cyruslab.Lab) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return spool
}

// listing is a checksum listing of dir: every file's path, mode, owner
// and content.
func listing(t *testing.T, dir string) string {
	t.Helper()
	out, err := cyruslab.Listing(dir)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}
