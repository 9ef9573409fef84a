package partition

import (
	"context"
	"os"
	"testing"

	"github.com/mbtool/mbtool/lock"
)

// TestNamespaceLockKept checks what keeping the owner's namespace lock
// file open between mailboxes must not change: the lock is held only
// while a mailbox is opened (an exclusive holder, as a Cyrus repack
// would be, gets it between two opens), and the file kept is opened once
// for consecutive mailboxes of one owner.
func TestNamespaceLockKept(t *testing.T) {
	s, _ := openFixture(t)
	ctx := context.Background()
	boxes := aliceBoxes(t, s)
	path := s.Config.lockPath(namespaceLockName("alice"))
	var kept int
	for i, e := range boxes {
		m, err := s.OpenMailbox(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		// Another open file description takes the lock exclusive only
		// if OpenMailbox released it.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := lock.TryExclusive(f); err != nil {
			t.Errorf("%s: namespace lock still held after OpenMailbox: %v", e.Name, err)
		}
		f.Close()
		m.Close()
		s.nsLock.mu.Lock()
		ok, owner, fd := s.nsLock.ok, s.nsLock.owner, s.nsLock.kept.Fd()
		s.nsLock.mu.Unlock()
		if !ok || owner != "alice" {
			t.Fatalf("%s: namespace lock file of %q kept (%v), want alice's", e.Name, owner, ok)
		}
		if i == 0 {
			kept = fd
		} else if fd != kept {
			t.Errorf("%s: namespace lock file opened again (descriptor %d, was %d)", e.Name, fd, kept)
		}
	}
}

// aliceBoxes returns the fixture's mailboxes of alice that OpenMailbox
// opens (at least two: the tests open consecutive ones).
func aliceBoxes(t *testing.T, s *Spool) []Entry {
	t.Helper()
	var boxes []Entry
	all, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Owner(s.Config) == "alice" && s.real(e) && !e.Moving() {
			boxes = append(boxes, e)
		}
	}
	if len(boxes) < 2 {
		t.Fatalf("fixture: %d mailboxes of alice, want 2 or more", len(boxes))
	}
	return boxes
}
