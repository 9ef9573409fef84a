package restore

// A commit group cut by a busy lock between a missing parent folder
// (intermediate.go, withParents) and its child, or at the parent; and
// kills at every crash point of a restore that makes a missing parent.

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/partition"
)

// headers lists the cyrus.header files under the target's partitions,
// staging directories left out.
func headers(t *testing.T, target *partition.Spool) []string {
	t.Helper()
	var out []string
	root := filepath.Dir(target.Config.Path)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), stagePrefix) {
			return filepath.SkipDir
		}
		if d.Name() == partition.FileHeader {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// runCut restores bob and user.alice.Archive.2019 into an empty target
// (user.alice.Archive is a missing parent, made with its child) while
// hold keeps a lock of alice's, let go once the first group flushed its
// renames: that group commits bob's mailbox only, without a lock of
// alice's, and the next one the parent with its child.
func runCut(t *testing.T, hold func(target *partition.Spool, child partition.Entry) *lock.File, wantCalls int) {
	dump, src := fixtureDump(t, []string{"bob"}, "user.alice.Archive.2019")
	target := emptyTarget(t, "")
	ce, ok, err := src.LookupAny("user.alice.Archive.2019")
	if err != nil || !ok {
		t.Fatal(err, ok)
	}
	held := hold(target, ce)
	defer held.Release()
	var atCut []string
	aliceHeld := false
	calls := countFlushes(t, func(n int) {
		if n == preGroupFlushes+1 { // the first group's renames (bob's alone)
			atCut = headers(t, target)
			held.Release()
			// Nothing of alice's is committed by this group.
			aliceHeld = !nsFree(t, target, "alice")
		}
	})
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("problems: %v", sum.Problems)
	}
	t.Logf("mailboxes: %+v", sum.Mailboxes)
	t.Logf("headers placed when the first group flushed: %v", atCut)
	if len(atCut) != 1 {
		t.Errorf("%d mailboxes placed by the first group, want 1 (bob's; the parent waits for its child)", len(atCut))
	}
	compareMailbox(t, src, "user.bob", target, "user.bob", same)
	// The target has no user.alice, so not her quota root: the entry only.
	if e, ok, err := target.LookupAny("user.alice.Archive.2019"); err != nil || !ok || e.UniqueID != ce.UniqueID {
		t.Errorf("child not registered as dumped: %+v %v %v", e, ok, err)
	}
	p, ok, err := target.LookupAny("user.alice.Archive")
	if err != nil || !ok || p.Deleted() || p.Intermediate() {
		t.Errorf("parent user.alice.Archive not registered: %+v %v %v", p, ok, err)
	}
	mbs, err := target.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	if len(mbs) != 3 {
		t.Errorf("%d mailboxes registered, want 3: %+v", len(mbs), mbs)
	}
	if h := headers(t, target); len(h) != 3 {
		t.Errorf("%d mailbox directories in the target, want 3: %v", len(h), h)
	}
	if aliceHeld {
		t.Errorf("the first group, which commits nothing of alice's, held alice's namespace lock while it committed")
	}
	if calls() != wantCalls {
		t.Errorf("%d syncfs calls, want %d", calls(), wantCalls)
	}
}

// The child's name lock is busy: the group [bob, parent, child] is cut
// before the parent, which goes with its child (it held alice's namespace
// lock through bob's commit when the cut fell between them).
func TestCommitGroupCutKeepsParentWithChild(t *testing.T) {
	runCut(t, func(target *partition.Spool, child partition.Entry) *lock.File {
		l, err := target.LockMailboxName(context.Background(), partition.Entry{Name: child.Name, UniqueID: child.UniqueID}, true)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}, preGroupFlushes+2+2) // the staged files, two groups, the users' new files
}

// alice's namespace lock is busy: the group is cut at the parent.
func TestCommitGroupCutAtParent(t *testing.T) {
	runCut(t, func(target *partition.Spool, child partition.Entry) *lock.File {
		l, err := target.LockNamespace(context.Background(), "alice", true)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}, preGroupFlushes+2+2) // the staged files, two groups, the users' new files
}

// Kills at every crash point with a missing parent: the child is never
// registered without its parent, and a rerun completes the target.
func TestCrashMissingParent(t *testing.T) {
	dump, _ := fixtureDump(t, []string{"bob"}, "user.alice.Archive.2019")
	dumpPath := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(dumpPath, dump, 0o600); err != nil {
		t.Fatal(err)
	}
	state := func(target *partition.Spool) (parent, child bool, n int) {
		f, err := lock.OpenLocked(target.Config.MboxlistPath, os.O_RDWR, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cyrusdb.Recover(target.Config.MboxlistPath, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		mbs, err := target.Mailboxes()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range mbs {
			parent = parent || e.Name == "user.alice.Archive"
			child = child || e.Name == "user.alice.Archive.2019"
		}
		return parent, child, len(mbs)
	}
	for _, group := range []int{0, 1} {
		for n := 1; ; n++ {
			target := emptyTarget(t, "")
			err := startChildGroup(t, target, dumpPath, "", n, group).Wait()
			if err == nil {
				t.Logf("groups of %d: %d crash points", group, n-1)
				break
			}
			if !killed(err) {
				t.Fatalf("groups of %d, crash point %d: %v", group, n, err)
			}
			p, c, got := state(target)
			if c && !p {
				t.Errorf("groups of %d, crash point %d: child registered without its parent", group, n)
			}
			dirs := len(headers(t, target))
			if err := startChildGroup(t, target, dumpPath, "", 0, group).Wait(); err != nil {
				t.Fatalf("rerun: %v", err)
			}
			p, c, all := state(target)
			after := len(headers(t, target))
			t.Logf("groups of %d, crash point %d: %d registered, %d dirs; after rerun %d registered, %d dirs", group, n, got, dirs, all, after)
			if !p || !c || all != 3 {
				t.Errorf("groups of %d, crash point %d: after rerun parent %v child %v, %d registered", group, n, p, c, all)
			}
			if after != all {
				t.Errorf("groups of %d, crash point %d: %d mailbox directories after the rerun, %d registered (an orphan)", group, n, after, all)
			}
		}
	}
}
