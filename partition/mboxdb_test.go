package partition

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/lock"
)

// A commit made in place in mailboxes.db (the same inode, as Cyrus's
// writer makes one) is seen by the next look of a Spool that keeps the
// database open and reuses its view of a clean file on the size alone
// (dbHandle.read): the entry the plan holds is read again, not handed
// back, and the new view has a new stamp.
func TestMboxlistInPlaceCommitSeen(t *testing.T) {
	s, _ := openFixture(t)
	e := fixtureEntry(t, s)
	cur, err := s.current(e)
	if err != nil {
		t.Fatal(err)
	}
	if cur.stamp != e.stamp {
		t.Fatalf("unchanged mailboxes.db: stamp %d, want the plan's %d", cur.stamp, e.stamp)
	}
	path := s.Config.MboxlistPath
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	f, err := lock.OpenLocked(path, os.O_RDWR, true)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := cyrusdb.BeginTwoskip(path, f)
	if err != nil {
		t.Fatal(err)
	}
	key := NameKey(e.Name)
	v, ok, err := tx.Get(key)
	if err != nil || !ok {
		t.Fatalf("get %q: %v %v", key, ok, err)
	}
	rights := e.ACL[0].Rights
	nv := strings.Replace(string(v), " "+rights, " lr", 1)
	if nv == string(v) {
		t.Fatalf("entry %q: no rights %q to change", v, rights)
	}
	if err := tx.Set(key, []byte(nv)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if before.Sys().(*syscall.Stat_t).Ino != after.Sys().(*syscall.Stat_t).Ino {
		t.Fatal("the commit replaced mailboxes.db: the in-place path is not tested")
	}

	cur, err = s.current(e)
	if err != nil {
		t.Fatal(err)
	}
	if cur.stamp == e.stamp || len(cur.ACL) == 0 || cur.ACL[0].Rights != "lr" {
		t.Errorf("after an in-place commit: stamp %d (plan's %d), ACL %v, want rights lr from a new view",
			cur.stamp, e.stamp, cur.ACL)
	}
	// The new view is reused as long as nothing changes.
	again, err := s.current(cur)
	if err != nil || again.stamp != cur.stamp {
		t.Errorf("unchanged again: stamp %d, %v; want %d", again.stamp, err, cur.stamp)
	}
}
