package restore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// TestRealCyrusPlantedSymlinks restores alice and bob as root into real
// Cyrus labs in which one directory the user cyrus owns has been replaced
// by a symlink to a root-owned directory outside (issue 13 finding 2):
// spool/uuid (mailbox directories), config/user/uuid (seen and
// subscription databases), config/quota (quota files) and run/lock (name
// lock files). Nothing outside changes (checksum listing); the run does
// not report success; once the symlink is gone a rerun exits cleanly and
// Cyrus serves every mailbox as the source does, with nothing for
// reconstruct -n to repair.
func TestRealCyrusPlantedSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the attack is on a root-run mbtool")
	}
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	dump := labDump(t, src, "alice", "bob")
	want := map[string]map[string]imapView{}
	for _, u := range []string{"alice", "bob"} {
		want[u] = userViews(t, src, u)
	}
	cyrus := partition.CyrusOwner()
	for _, rel := range []string{"spool/uuid", "config/user/uuid", "config/quota", "run/lock"} {
		t.Run(strings.ReplaceAll(rel, "/", "_"), func(t *testing.T) {
			lab := cyruslab.Start(t, cyruslab.Options{})
			outside := cyruslab.TempDir(t)
			if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("root's\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			before, err := cyruslab.Listing(outside)
			if err != nil {
				t.Fatal(err)
			}
			at := filepath.Join(lab.Dir, rel)
			_, statErr := os.Lstat(at)
			existed := statErr == nil
			if existed {
				if err := os.Rename(at, at+".real"); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(outside, at); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(at, cyrus.UID, cyrus.GID); err != nil {
				t.Fatal(err)
			}
			sum, err := Run(context.Background(), openSpool(t, lab.Conf), bytes.NewReader(dump), Options{})
			if err == nil && len(sum.Problems) == 0 {
				t.Errorf("restore through a planted %s symlink reported full success", rel)
			}
			t.Logf("with %s planted: %v; problems %v", rel, err, sum.Problems)
			after, err := cyruslab.Listing(outside)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("outside changed:\n%s\nwas\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
			}
			if err := os.Remove(at); err != nil {
				t.Fatal(err)
			}
			if existed {
				if err := os.Rename(at+".real", at); err != nil {
					t.Fatal(err)
				}
			}
			sum, err = Run(context.Background(), openSpool(t, lab.Conf), bytes.NewReader(dump), Options{})
			if err != nil || len(sum.Problems) > 0 {
				t.Fatalf("rerun: %v; problems %v", err, sum.Problems)
			}
			for _, u := range []string{"alice", "bob"} {
				compareAll(t, u, userViews(t, lab, u), want[u])
			}
			lab.CheckServes(t, "alice", "bob")
		})
	}
}
