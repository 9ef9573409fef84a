package partition

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mbtool/mbtool/lock"
)

// TestLockDirReplaced replaces the whole lock directory (renamed away, a
// new one made, as an administrator's clean-up or a new tmpfs would)
// between two mailboxes of one owner, while the roots are checked once
// per run of an owner's mailboxes (nsLockCache). The kept namespace lock
// file is then not what the path names, so the roots are checked again:
// a Cyrus process holding the next mailbox's name lock exclusively in
// the new directory must still exclude OpenMailbox.
func TestLockDirReplaced(t *testing.T) {
	s, _ := openFixture(t)
	boxes := aliceBoxes(t, s)
	// Two mailboxes: the first open walks the lock directory (caches its
	// descriptor), and the view made for the second (the first view's
	// count used up) takes it as checked; both lock files then exist.
	for i := 0; i < 2; i++ {
		m, err := s.OpenMailbox(context.Background(), boxes[i])
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		s.nsLock.mu.Lock()
		if i == 0 {
			s.nsLock.uses = rootCheckEvery
		}
		s.nsLock.mu.Unlock()
	}
	dir := s.Config.LockPath
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	path := s.Config.lockPath(boxes[1].UniqueID)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lock.TryExclusive(f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	m, err := s.OpenMailbox(ctx, boxes[1])
	if err == nil {
		m.Close()
		t.Fatalf("%s opened while another holder has %s exclusively (lock directory of before)", boxes[1].Name, path)
	}
	t.Logf("refused as it should: %v", err)
	f.Close()
	m, err = s.OpenMailbox(context.Background(), boxes[1])
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// TestRootsRecheckedPerOwnerRun checks that the view the roots are
// checked for is made anew for another owner and after rootCheckEvery
// mailboxes of one owner, not kept for a whole run.
func TestRootsRecheckedPerOwnerRun(t *testing.T) {
	s, _ := openFixture(t)
	boxes := aliceBoxes(t, s)
	ctx := context.Background()
	view := func() any {
		s.nsLock.mu.Lock()
		defer s.nsLock.mu.Unlock()
		return s.nsLock.tree
	}
	open := func(e Entry) {
		m, err := s.OpenMailbox(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	open(boxes[0])
	first := view()
	if first == nil {
		t.Fatal("no view kept after a mailbox of alice")
	}
	for i := 1; i < rootCheckEvery; i++ {
		open(boxes[i%len(boxes)])
		if v := view(); v != first {
			t.Fatalf("after %d mailboxes of alice: roots checked again, want once per %d", i+1, rootCheckEvery)
		}
	}
	open(boxes[0])
	if view() == first {
		t.Fatalf("after %d mailboxes of alice: roots not checked again", rootCheckEvery+1)
	}
}
