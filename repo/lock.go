package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mbtool/mbtool/dlist"
)

// Locks: every command that uses the repository writes a lock file,
// locks/<random>, a dlist line
//
//	MBTOOL LOCK %(HOST <host> PID <pid> START <process start> TIME <unix> EXCLUSIVE 0|1)
//
// and removes it when done. dump takes a shared lock (two dumps of
// different users may run at once), prune an exclusive one; list, verify
// and restore take none (they only read immutable files, and only prune
// removes any). A lock conflicts with another when either is exclusive.
//
// A lock is stale, and ignored, when its process is gone: on this host
// (the same host name and, when the lock records one, the same boot ID,
// so that two machines both called "backup1" are not taken for one), no
// process has its PID with its start time (so a reused PID does not
// keep it alive); on another host, its TIME was not refreshed for
// StaleAfter. A holder refreshes its lock every RefreshEvery by writing a
// new one and removing the old. Stale locks of this host are removed by
// the next command that sees them.
//
// Another host's stale test needs its clock within a few minutes of
// ours, and the holder's own Check makes the rest safe: a holder that
// could not refresh its lock for StaleAfter-RefreshEvery (suspended,
// cut off from the store), or whose lock file is gone, stops before it
// writes a snapshot or removes anything (docs/storage.md, "Many hosts").
var (
	RefreshEvery = 5 * time.Minute
	StaleAfter   = 30 * time.Minute
)

// ErrLocked is returned when a conflicting lock is held.
var ErrLocked = errors.New("repository is locked")

// ErrLockLost is returned by Check when the lock may no longer hold.
var ErrLockLost = errors.New("repository lock lost")

// Lock is a held repository lock.
type Lock struct {
	r         *Repo
	exclusive bool
	mu        sync.Mutex
	name      string
	fresh     time.Time // when the last write of the lock file began
	stop      chan struct{}
	done      chan struct{}
}

type lockInfo struct {
	Name      string
	Host      string
	Boot      string
	PID       int
	Start     uint64
	Time      time.Time
	Exclusive bool
}

func (l lockInfo) String() string {
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock of PID %d on %s since %s (%s)", kind, l.PID, l.Host, l.Time.Format(time.RFC3339), l.Name)
}

// bootID tells this boot of this machine from any other, where Linux
// says it.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// thisHost reports whether the lock was written on this machine, since
// its last boot.
func (l lockInfo) thisHost() bool {
	if l.Host != hostname() {
		return false
	}
	return l.Boot == "" || l.Boot == bootID()
}

func hostname() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "localhost"
	}
	return h
}

// processStart returns the start time of process pid (in clock ticks
// since boot, /proc/PID/stat field 22), or 0 and false if it does not
// exist.
func processStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, true
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, true
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n, true
}

func encodeLock(l lockInfo) []byte {
	var buf bytes.Buffer
	w := dlist.NewWriter(&buf)
	w.BeginLine(Verb, "LOCK")
	w.BeginKVList()
	w.Key("HOST")
	w.Atom(l.Host)
	if l.Boot != "" {
		w.Key("BOOT")
		w.Atom(l.Boot)
	}
	w.Key("PID")
	w.Num(uint64(l.PID))
	w.Key("START")
	w.Num(l.Start)
	w.Key("TIME")
	w.Num(uint64(l.Time.Unix()))
	w.Key("EXCLUSIVE")
	if l.Exclusive {
		w.Num(1)
	} else {
		w.Num(0)
	}
	w.EndList()
	w.EndLine()
	w.Flush()
	return buf.Bytes()
}

func (r *Repo) readLock(name string) (lockInfo, error) {
	f, err := r.store.Open(name)
	if err != nil {
		return lockInfo{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, min(f.Size(), 4096)))
	if err != nil {
		return lockInfo{}, err
	}
	line, err := dlist.NewReader(bytes.NewReader(b)).ReadLine()
	if err != nil || line.Verb != Verb || line.Value == nil || line.Value.Key != "LOCK" {
		return lockInfo{}, fmt.Errorf("lock file %s: %w", name, errNotLock)
	}
	v := line.Value
	pid, _ := v.Get("PID").Num32()
	start, _ := v.Get("START").Num64()
	t, _ := v.Get("TIME").Date()
	ex, _ := v.Get("EXCLUSIVE").Num32()
	return lockInfo{Name: name, Host: v.Get("HOST").String(), Boot: v.Get("BOOT").String(), PID: int(pid), Start: start,
		Time: time.Unix(t, 0), Exclusive: ex == 1}, nil
}

// stale reports whether l's holder is gone.
func (l lockInfo) stale(now time.Time) bool {
	if l.thisHost() {
		start, ok := processStart(l.PID)
		return !ok || (l.Start != 0 && start != l.Start)
	}
	return now.Sub(l.Time) > StaleAfter
}

// errNotLock: a file under locks/ that is not a lock line.
var errNotLock = errors.New("not a lock")

// lockListings bounds how many times locks lists locks/ again because a
// lock file vanished between the listing and its read.
const lockListings = 10

// locks lists the live lock files, removing stale ones of this host.
//
// A lock that vanishes between the listing and its read may have been
// released, or replaced by its holder's refresh (which writes the new
// file before it removes the old one, so the new one was not in this
// listing). Only a listing in which every lock could be read answers:
// otherwise a prune could miss a dump that refreshed its lock at that
// instant, and delete the packs it has not indexed yet.
func (r *Repo) locks() ([]lockInfo, error) {
	for range lockListings {
		var names []string
		err := r.store.List("locks", func(name string, size int64) error {
			if !strings.Contains(name, ".tmp-") {
				names = append(names, name)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		var ls []lockInfo
		now := time.Now()
		vanished := false
		for _, n := range names {
			l, err := r.readLock(n)
			if errors.Is(err, os.ErrNotExist) {
				vanished = true // released or refreshed meanwhile: list again
				continue
			}
			if err != nil {
				return nil, err
			}
			if l.stale(now) {
				if l.thisHost() {
					r.store.Remove(n)
				}
				continue
			}
			ls = append(ls, l)
		}
		if !vanished {
			return ls, nil
		}
	}
	return nil, fmt.Errorf("%w: the lock files changed under each of %d listings; try again", ErrLocked, lockListings)
}

// Lock takes a shared or exclusive lock: it writes its lock file, then
// looks for conflicting ones, and gives up (removing its own) if there
// are any. Two commands that start at once may thus both give up, never
// both go on.
func (r *Repo) Lock(exclusive bool) (*Lock, error) {
	l := &Lock{r: r, exclusive: exclusive, stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.write(); err != nil {
		return nil, fmt.Errorf("locking the repository: %w", err)
	}
	others, err := r.locks()
	if err != nil {
		l.remove()
		return nil, err
	}
	for _, o := range others {
		if o.Name == l.name || !(exclusive || o.Exclusive) {
			continue
		}
		l.remove()
		return nil, fmt.Errorf("%w: %s", ErrLocked, o)
	}
	go l.refresh()
	return l, nil
}

// LockWait takes a lock as Lock does, but while a conflicting lock is
// held it tries again, with waits from 1 second growing to 30, for at
// most wait (0: once). A nightly dump that meets a prune, or a prune that
// meets the night's dumps, so waits its turn instead of failing.
func (r *Repo) LockWait(ctx context.Context, exclusive bool, wait time.Duration) (*Lock, error) {
	deadline := time.Now().Add(wait)
	pause := time.Second
	for {
		l, err := r.Lock(exclusive)
		left := time.Until(deadline)
		if !errors.Is(err, ErrLocked) {
			return l, err // taken, or a failure that waiting does not cure
		}
		if left <= 0 {
			if wait > 0 {
				err = fmt.Errorf("%w (waited %s)", err, wait)
			}
			return nil, err
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 30*time.Second)
	}
}

func (l *Lock) write() error {
	start, _ := processStart(os.Getpid())
	name := "locks/" + randomName()
	now := time.Now()
	data := encodeLock(lockInfo{Host: hostname(), Boot: bootID(), PID: os.Getpid(), Start: start, Time: now, Exclusive: l.exclusive})
	if err := l.r.store.PutExclusive(name, data); err != nil {
		return err
	}
	l.mu.Lock()
	l.name = name
	l.fresh = now
	l.mu.Unlock()
	return nil
}

func (l *Lock) remove() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.name != "" {
		l.r.store.Remove(l.name)
		l.name = ""
	}
}

// refresh replaces the lock file with a fresh one every RefreshEvery.
func (l *Lock) refresh() {
	defer close(l.done)
	t := time.NewTicker(RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.renew()
		}
	}
}

// renew replaces the lock file with a fresh one. The new file is written
// before the old one is removed, so the lock is never absent from the
// store (locks relies on it).
func (l *Lock) renew() {
	l.mu.Lock()
	old := l.name
	l.mu.Unlock()
	if err := l.write(); err == nil && old != "" {
		l.r.store.Remove(old)
	}
}

// Check reports whether the lock still holds: its file was rewritten
// less than StaleAfter-RefreshEvery ago (by this process's monotonic
// clock), so no other host can think it stale yet, and the file is still
// there (unlock --all, or another host, did not remove it). A nil Lock
// (a dry run) holds.
func (l *Lock) Check() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	name, fresh := l.name, l.fresh
	l.mu.Unlock()
	if name == "" {
		return fmt.Errorf("%w: released", ErrLockLost)
	}
	if age := time.Since(fresh); age > StaleAfter-RefreshEvery {
		return fmt.Errorf("%w: %s was last refreshed %s ago; other hosts may think it stale (nothing was written or removed after that)",
			ErrLockLost, name, age.Round(time.Second))
	}
	f, err := l.r.store.Open(name)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (removed by unlock, or by another host that thought it stale)", ErrLockLost, name, err)
	}
	f.Close()
	return nil
}

// Release removes the lock.
func (l *Lock) Release() {
	close(l.stop)
	<-l.done
	l.remove()
}

// Unlock removes the locks of processes that are gone (and, with all,
// every lock: only when nothing uses the repository), and returns what it
// removed.
func (r *Repo) Unlock(all bool) ([]string, error) {
	var names []string
	err := r.store.List("locks", func(name string, size int64) error {
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var removed []string
	now := time.Now()
	for _, n := range names {
		l, err := r.readLock(n)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // released meanwhile
		case err != nil && !errors.Is(err, errNotLock):
			// The store did not answer: the lock may be live, and is
			// kept.
			return removed, fmt.Errorf("reading %s: %w", n, err)
		case err == nil && !all && !l.stale(now):
			continue
		}
		if err := r.store.Remove(n); err != nil {
			return removed, err
		}
		removed = append(removed, n)
	}
	return removed, nil
}
