package repo

import (
	"bytes"
	"errors"
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
