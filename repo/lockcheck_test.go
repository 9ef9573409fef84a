package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A run whose lock file was removed (unlock --remove-all, or another host
// that took it for stale) must not write its snapshot: a prune may be
// deleting what it refers to.
func TestLostLockStopsTheSnapshot(t *testing.T) {
	r := newRepo(t)
	l, err := r.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := l.Check(); err != nil {
		t.Fatalf("a fresh lock: %v", err)
	}
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	b := r.NewBackup(idx)
	b.Guard = l.Check
	if _, err := b.Ingest(t.Context(), "alice", bytes.NewReader(genDump(t, 1, 20))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Unlock(true); err != nil {
		t.Fatal(err)
	}
	s, err := b.Commit("h", "v", time.Now())
	if !errors.Is(err, ErrLockLost) || s != nil {
		t.Fatalf("commit after the lock was removed: %v, %v; want ErrLockLost", s, err)
	}
	if ss, err := r.Snapshots(); err != nil || len(ss) != 0 {
		t.Fatalf("snapshots after a lost lock: %d, %v", len(ss), err)
	}
	// Nor its index: an index names files as stored, and later runs would
	// trust it for files whose packs a prune may have removed.
	var idx2 []string
	r.store.List("index", func(name string, size int64) error {
		idx2 = append(idx2, name)
		return nil
	})
	if len(idx2) != 0 {
		t.Fatalf("index files committed after the lock was lost: %v", idx2)
	}
}

// renewingStore renews a held lock right after the first listing of
// locks/ has been taken, before its files are read: the instant at which
// a prune used to see neither the old lock file (gone) nor the new one
// (not listed).
type renewingStore struct {
	Store
	held *Lock
	done bool
}

func (s *renewingStore) List(dir string, fn func(string, int64) error) error {
	err := s.Store.List(dir, fn)
	if dir == "locks" && !s.done {
		s.done = true
		s.held.renew()
	}
	return err
}

func TestExclusiveLockSeesARenewedLock(t *testing.T) {
	r := newRepo(t)
	dump, err := r.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	defer dump.Release()
	rs := &renewingStore{Store: r.store, held: dump}
	prune := *r
	prune.store = rs
	if l, err := prune.Lock(true); !errors.Is(err, ErrLocked) {
		if l != nil {
			l.Release()
		}
		t.Fatalf("exclusive lock taken while a shared one was being renewed: %v", err)
	}
	if !rs.done {
		t.Fatal("the lock was not renewed during the listing")
	}
	if err := dump.Check(); err != nil {
		t.Fatalf("the renewed lock: %v", err)
	}
}

// brokenStore fails every read of a lock file as a store that does not
// answer would.
type brokenStore struct{ Store }

func (s brokenStore) Open(name string) (File, error) {
	if strings.HasPrefix(name, "locks/") {
		return nil, syscall.EIO
	}
	return s.Store.Open(name)
}

// unlock without --remove-all removes only locks it knows to be stale:
// a lock it could not read may be live.
func TestUnlockKeepsUnreadableLocks(t *testing.T) {
	r := newRepo(t)
	l, err := r.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	broken := *r
	broken.store = brokenStore{r.store}
	if removed, err := broken.Unlock(false); err == nil || len(removed) != 0 {
		t.Fatalf("unlock with unreadable locks: removed %v, %v; want an error and nothing removed", removed, err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("the live lock after unlock: %v", err)
	}
}

// A lock not refreshed for StaleAfter-RefreshEvery (a suspended host) no
// longer holds, even if its file is still there.
func TestLockTooOldToHold(t *testing.T) {
	r := newRepo(t)
	l, err := r.Lock(true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	l.mu.Lock()
	l.fresh = time.Now().Add(-(StaleAfter - RefreshEvery) - time.Second)
	l.mu.Unlock()
	if err := l.Check(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Check of a lock not refreshed for %s: %v", StaleAfter-RefreshEvery, err)
	}
}

// Two machines with one host name are told apart by their boot IDs: the
// other's lock is not taken for one of this host's dead processes.
func TestLockOfAnotherMachineWithOurName(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot ID on this system")
	}
	r := newRepo(t)
	twin := encodeLock(lockInfo{Host: hostname(), Boot: "00000000-0000-0000-0000-000000000000", PID: 1, Start: 12345678901,
		Time: time.Now(), Exclusive: true})
	if err := r.store.PutExclusive("locks/twin", twin); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(false); !errors.Is(err, ErrLocked) {
		t.Fatalf("the live lock of another machine named %s was ignored: %v", hostname(), err)
	}
	if _, err := r.store.Open("locks/twin"); err != nil {
		t.Fatalf("the other machine's lock was removed: %v", err)
	}
}

// LockWait waits for a conflicting lock to go, within its bound, and
// fails with ErrLocked after it.
func TestLockWait(t *testing.T) {
	r := newRepo(t)
	dump, err := r.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.LockWait(t.Context(), true, 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("no wait beside a shared lock: %v", err)
	}
	start := time.Now()
	if _, err := r.LockWait(t.Context(), true, 1500*time.Millisecond); !errors.Is(err, ErrLocked) || time.Since(start) < 1500*time.Millisecond {
		t.Fatalf("1.5 s wait beside a shared lock held throughout: %v after %s", err, time.Since(start))
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		dump.Release()
	}()
	l, err := r.LockWait(t.Context(), true, time.Minute)
	if err != nil {
		t.Fatalf("waiting for a shared lock released after 0.5 s: %v", err)
	}
	l.Release()
}

// LockWait says it waited only when it waited for a lock: a store that
// fails at the first try fails at once, with the store's error alone.
func TestLockWaitStoreFailure(t *testing.T) {
	r := newRepo(t)
	locks := filepath.Join(r.store.Location(), "locks")
	if err := os.RemoveAll(locks); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(locks, nil, 0o600); err != nil { // no directory to put a lock in
		t.Fatal(err)
	}
	start := time.Now()
	_, err := r.LockWait(t.Context(), true, time.Minute)
	if err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("a lock in a repository whose locks/ is a file: %v", err)
	}
	if strings.Contains(err.Error(), "waited") || time.Since(start) > 10*time.Second {
		t.Errorf("a store failure at the first try says %q after %s", err, time.Since(start))
	}
}
