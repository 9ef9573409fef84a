package restore

import (
	"testing"
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
	// One partition, three owners (alice, bob, the shared mailboxes):
	// one flush of the staged files and one per group.
	if want := 1 + 3; calls != want {
		t.Errorf("%d syncfs calls, want %d", calls, want)
	}
}
