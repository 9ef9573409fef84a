package partition

import (
	"context"
	"testing"
)

// TestLockNameAllocs counts the allocations of taking and releasing a
// mailbox name lock whose file exists, which a dump does twice per
// mailbox (the owner's namespace, then the name). The spool's roots are
// resolved once (Spool.tree); building them for every lock was 7 of
// its allocations, 17 before and 10 after.
func TestLockNameAllocs(t *testing.T) {
	s, _ := openFixture(t)
	ctx := context.Background()
	take := func() {
		l, err := s.lockName(ctx, "alloctest", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
	take() // creates the lock file
	n := testing.AllocsPerRun(100, take)
	t.Logf("%.0f allocations per lock", n)
	if n > 13 {
		t.Errorf("taking a name lock allocates %.0f times; want at most 13", n)
	}
}
