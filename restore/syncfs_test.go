package restore

import (
	"context"
	"testing"

	"github.com/mbtool/mbtool/partition"
)

// The staged files of every mailbox, its cyrus.header and index header
// included, are flushed once for the whole run before the first group is
// locked: a group flushes only its renames, once, before it registers
// them (not once more for its metadata).
func TestCommitFlushesOncePerGroup(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"}, "shared", "shared.team")
	target := emptyTarget(t, "")
	calls := 0
	saved := syncfs
	syncfs = func(fd int) error { calls++; return saved(fd) }
	defer func() { syncfs = saved }()
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAliceBobShared(t, sum, src, target)
	// One partition, three owners (alice, bob, the shared mailboxes) in
	// one group: one flush of the staged files and one for the group,
	// not one per owner; then two for the users' new seen dbs,
	// subscription files and quota roots, however many
	// (partition.NewFiles), not an fsync of each and of its directory.
	if want := 1 + 1 + 2; calls != want {
		t.Errorf("%d syncfs calls, want %d", calls, want)
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
	calls := 0
	saved := syncfs
	syncfs = func(fd int) error {
		calls++
		if calls == 2 { // the first group's renames: bob's lock is let go
			held.Release()
		}
		return saved(fd)
	}
	defer func() { syncfs = saved }()
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAliceBobShared(t, sum, src, target)
	// alice's group, then bob's and the shared mailboxes'; then the
	// users' new files, two.
	if want := 1 + 2 + 2; calls != want {
		t.Errorf("%d syncfs calls, want %d", calls, want)
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
