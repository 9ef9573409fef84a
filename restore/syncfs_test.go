package restore

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/partition"
)

// preGroupFlushes is how many flushes of a partition's file system the
// commit makes before its first group: one while the metadata is written
// (of what the read phase staged), one after it.
const preGroupFlushes = 2

// countFlushes counts the flushes of the file system (syncfs) until the
// test ends, calling at, if not nil, before the flush numbered n (from
// 1); calls returns the count so far.
func countFlushes(t *testing.T, at func(n int)) (calls func() int) {
	t.Helper()
	n := 0
	saved := syncfs
	syncfs = func(fd int) error {
		n++
		if at != nil {
			at(n)
		}
		return saved(fd)
	}
	t.Cleanup(func() { syncfs = saved })
	return func() int { return n }
}

// The staged files of every mailbox, its cyrus.header and index header
// included, are flushed for the whole run before the first group is
// locked (preGroupFlushes): a group flushes only its renames, once, before
// it registers them (not once more for its metadata).
func TestCommitFlushesOncePerGroup(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"}, "shared", "shared.team")
	target := emptyTarget(t, "")
	calls := countFlushes(t, nil)
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAliceBobShared(t, sum, src, target)
	// One partition, three owners (alice, bob, the shared mailboxes) in
	// one group: the flushes of the staged files and one for the group,
	// not one per owner; then two for the users' new seen dbs,
	// subscription files and quota roots, however many
	// (partition.NewFiles), not an fsync of each and of its directory.
	if want := preGroupFlushes + 1 + 2; calls() != want {
		t.Errorf("%d syncfs calls, want %d", calls(), want)
	}
}

// A group of several owners only tries the locks of owners after its
// first: while a Cyrus process holds bob's namespace lock, the group ends
// before bob's mailboxes (committed by the next group, which waits for
// the lock) rather than waiting with alice's locks held.
func TestCommitGroupEndsAtBusyOwner(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"}, "shared", "shared.team")
	target := emptyTarget(t, "")
	held, err := target.LockNamespace(context.Background(), "bob", true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	calls := countFlushes(t, func(n int) {
		if n == preGroupFlushes+1 { // the first group's renames: bob's lock is let go
			held.Release()
		}
	})
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAliceBobShared(t, sum, src, target)
	// alice's group, then bob's and the shared mailboxes'; then the
	// users' new files, two.
	if want := preGroupFlushes + 2 + 2; calls() != want {
		t.Errorf("%d syncfs calls, want %d", calls(), want)
	}
}

// checkAliceBobShared checks that the restore of fixtureDump's alice, bob
// and shared mailboxes created each of them, without a problem, the same
// as in src.
func checkAliceBobShared(t *testing.T, sum *Summary, src, target *partition.Spool) {
	t.Helper()
	if len(sum.Problems) > 0 {
		t.Fatalf("problems: %v", sum.Problems)
	}
	names := append(append([]string{}, fixtureAlice...), "user.bob", "shared", "shared.team")
	if n := sum.Count(ActionCreate); n != len(names) {
		t.Fatalf("%d created, want %d", n, len(names))
	}
	for _, name := range names {
		compareMailbox(t, src, name, target, name, same)
	}
}

// The lock files the groups lock are made while the staged files are
// flushed: when the last flush before the first group is made, the name
// lock file of every mailbox of the dump and the namespace lock file of
// each owner exist already, so that a group, which holds its locks until
// mailboxes.db is written, only opens them.
func TestLockFilesMadeBeforeGroups(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"}, "shared", "shared.team")
	target := emptyTarget(t, "")
	want := map[string]bool{"*U*alice.lock": true, "*U*bob.lock": true}
	for _, name := range append(append([]string{}, fixtureAlice...), "user.bob", "shared", "shared.team") {
		e, ok, err := src.LookupAny(name)
		if err != nil || !ok {
			t.Fatal(name, err, ok)
		}
		want[e.UniqueID+".lock"] = true
	}
	var made map[string]bool
	countFlushes(t, func(n int) {
		if n == preGroupFlushes {
			made = map[string]bool{}
			filepath.WalkDir(target.Config.LockPath, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					made[d.Name()] = true
				}
				return nil
			})
		}
	})
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAliceBobShared(t, sum, src, target)
	for name := range want {
		if !made[name] {
			t.Errorf("lock file %s not made before the first group (made: %v)", name, made)
		}
	}
}
