// Package repodump runs the nightly job: it dumps users of a live Cyrus
// partition into a backup repository, one snapshot per run, reading and
// storing only the message files the repository does not hold yet.
//
// Each user is dumped by package dump exactly as a standalone dump would
// be, and the stream is ingested by package repo as it is written; with
// Jobs > 1 several users are dumped at once.
package repodump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/syncrec"
)

// Options select the users and shape the run.
type Options struct {
	Users   []string
	All     bool // every user of the partition
	Jobs    int  // users dumped at once; 1 when 0
	Host    string
	Version string
	Now     time.Time
	// LockWait is how long to wait for a prune running to finish (0:
	// fail at once with repo.ErrLocked).
	LockWait time.Duration
	// Progress, if set, is called after each user.
	Progress func(Summary)
}

// Skip is a user, or a shared mailbox, that was not dumped, and why.
type Skip struct {
	User    string // the user; "" for a shared mailbox
	Mailbox string // the shared mailbox (one no user owns)
	Reason  error
}

// Item names what was skipped as the snapshot's MBTOOL SKIPPED line
// does: "user bob", or the shared mailbox's name.
func (s Skip) Item() string {
	if s.User == "" {
		return s.Mailbox
	}
	return "user " + s.User
}

func (s Skip) String() string { return fmt.Sprintf("%s: skipped: %v", s.Item(), s.Reason) }

// Summary is what a run did.
type Summary struct {
	Snapshot    *repo.Snapshot // nil when no user was dumped
	Users       int
	Shared      int64 // shared mailboxes (no user's), with All
	Mailboxes   int64
	Files       int64 // message files the users' states refer to
	Bytes       int64 // their size
	Records     int64
	NewFiles    int64 // stored by this run
	NewBytes    int64
	ReusedBytes int64 // referenced, already in the repository
	Skipped     []Skip
	Problems    []dump.Problem
	Duration    time.Duration
}

// Run dumps the selected users into r as one snapshot.
func Run(ctx context.Context, spool *partition.Spool, r *repo.Repo, opts Options) (*Summary, error) {
	start := time.Now()
	if !opts.All && len(opts.Users) == 0 {
		return nil, dump.ErrNoSelection
	}
	users := append([]string(nil), opts.Users...)
	if opts.All {
		all, err := spool.Users()
		if err != nil {
			return nil, err
		}
		users = append(users, all...)
	}
	sort.Strings(users)
	users = dedup(users)
	if opts.All {
		// The mailboxes no user owns, as one entry (repo.SharedName).
		users = append(users, repo.SharedName)
	}
	lock, err := r.LockWait(ctx, false, opts.LockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	idx, err := r.LoadIndex()
	if err != nil {
		return nil, err
	}
	defer idx.Close()
	b := r.NewBackup(idx)
	b.Guard = lock.Check
	jobs := max(1, opts.Jobs)
	workers := max(1, runtime.GOMAXPROCS(0)/jobs)
	host := opts.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}

	sum := &Summary{}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstErr error
	todo := make(chan string)
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range todo {
				ds, ue, gone, err := one(ctx, spool, b, u, dump.Options{Users: []string{u}, Host: host, Version: opts.Version,
					Now: now, Workers: workers, Have: b.Have, ReadAhead: readAhead})
				mu.Lock()
				for _, sk := range gone {
					sum.Skipped = append(sum.Skipped, sk)
					b.Skip(dumpfile.Skip{Item: sk.Item(), Reason: sk.Reason.Error()})
				}
				if u == repo.SharedName && errors.Is(err, errNoShared) {
					mu.Unlock()
					continue
				}
				switch {
				case err == nil:
					if u == repo.SharedName {
						sum.Shared = ue.Mailboxes
					} else {
						sum.Users++
					}
					sum.Mailboxes += ue.Mailboxes
					sum.Files += ue.Files
					sum.Bytes += ue.Bytes
					sum.Records += ds.Records
					sum.Problems = append(sum.Problems, ds.Problems...)
				case vanished(err) && u != repo.SharedName:
					sk := Skip{User: u, Reason: err}
					sum.Skipped = append(sum.Skipped, sk)
					b.Skip(dumpfile.Skip{Item: sk.Item(), Reason: err.Error()})
				default:
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				}
				if opts.Progress != nil {
					opts.Progress(*sum)
				}
				mu.Unlock()
			}
		}()
	}
	for _, u := range users {
		select {
		case todo <- u:
		case <-ctx.Done():
		}
	}
	close(todo)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		b.Abort()
		return sum, firstErr
	}
	snap, err := b.Commit(host, opts.Version, now)
	if err != nil {
		b.Abort()
		return sum, err
	}
	sum.Snapshot = snap
	sum.NewFiles, sum.NewBytes = b.Stats()
	sum.ReusedBytes = max(0, sum.Bytes-sum.NewBytes)
	sum.Duration = time.Since(start)
	return sum, nil
}

// one dumps one user into the run: dump.Run writes the user's standalone
// dump into a pipe, Ingest reads it. For the shared mailboxes it returns
// those that went between the listing and the dump as skipped.
func one(ctx context.Context, spool *partition.Spool, b *repo.Backup, user string, opts dump.Options) (*dump.Summary, repo.UserEntry, []Skip, error) {
	if user != repo.SharedName {
		ds, ue, err := oneDump(ctx, spool, b, user, opts)
		return ds, ue, nil, err
	}
	// The shared mailboxes as they are now. When some go between this
	// listing and the dump's, they are listed again once (a renamed one
	// is then found under its new name); those gone again are skipped,
	// each by its name, and the rest dumped.
	names, err := listShared(spool)
	var gone []Skip
	for try := 0; ; try++ {
		if err != nil {
			return nil, repo.UserEntry{}, gone, err
		}
		if len(names) == 0 {
			return nil, repo.UserEntry{}, gone, errNoShared
		}
		opts.Users, opts.Mailboxes = nil, names
		ds, ue, err := oneDump(ctx, spool, b, user, opts)
		var nf *dump.NotFoundError
		if !errors.As(err, &nf) || len(nf.Mailboxes) == 0 {
			return ds, ue, gone, err
		}
		if try == 0 {
			names, err = listShared(spool)
			continue
		}
		missing := map[string]bool{}
		for _, m := range nf.Mailboxes {
			missing[m] = true
			gone = append(gone, Skip{Mailbox: m, Reason: fmt.Errorf("deleted or renamed since the run listed it: %w", partition.ErrNoMailbox)})
		}
		kept := names[:0]
		for _, m := range names {
			if !missing[m] {
				kept = append(kept, m)
			}
		}
		if len(kept) == len(names) {
			return ds, ue, gone, err
		}
		names = kept
	}
}

// listShared lists the shared mailboxes (a variable for the test of a
// mailbox that goes between the listing and the dump).
var listShared = dump.SharedMailboxes

// errNoShared: the partition has no shared mailbox.
var errNoShared = errors.New("no shared mailboxes")

func oneDump(ctx context.Context, spool *partition.Spool, b *repo.Backup, user string, opts dump.Options) (*dump.Summary, repo.UserEntry, error) {
	ui, err := b.User(user)
	if err != nil {
		return nil, repo.UserEntry{}, err
	}
	// What the repository holds of each mailbox from the latest night
	// already: unchanged mailboxes are not read, changed ones only for
	// the records changed since.
	opts.Known = func(mb *syncrec.Mailbox) (dump.Known, error) {
		k := ui.Known(mb)
		return dump.Known{Key: k.Key, Same: k.Same, Since: k.Since, Cached: k.Cached}, nil
	}
	// The dump goes from one goroutine to the other unsealed: the ingest
	// hashes every message file it stores against its GUID, as the dump
	// did reading it from the spool, and a digest of the stream would
	// be computed by the one and checked by the other: two BLAKE3s of
	// every byte of the dump (repo.IngestOptions).
	opts.Unsealed = true
	pr, pw := io.Pipe()
	var ds *dump.Summary
	var derr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ds, derr = dump.Run(ctx, spool, pw, opts)
		pw.CloseWithError(derr)
	}()
	ue, ierr := ui.Ingest(ctx, pr, repo.IngestOptions{Unsealed: true})
	pr.CloseWithError(errIngest)
	<-done
	if derr != nil && (ierr == nil || vanished(derr) || errors.Is(ierr, derr)) {
		return ds, ue, fmt.Errorf("%s: %w", what(user), derr)
	}
	if ds == nil {
		ds = &dump.Summary{}
	}
	return ds, ue, ierr
}

var errIngest = errors.New("repository ingest ended")

// readAhead is each job's read-ahead of message files (dump.Options.
// ReadAhead): a quarter of a standalone dump's, because the repository's
// side of the run (packs, index, zstd encoders of states and boxes)
// needs memory of its own under the same 64 MiB. On 50,000 small
// messages it took the run's peak live heap from 23 to 18 MB and its peak
// RSS from about 52 to 43 MB, with the same CPU time (the workers hash
// as fast as the ingest takes files; 2 MiB is still a thousand small
// messages, or two of the largest read ahead).
const readAhead = 2 << 20

func what(user string) string {
	if user == repo.SharedName {
		return "shared mailboxes"
	}
	return "user " + user
}

// vanished reports whether err says the user has no mailboxes (any more).
func vanished(err error) bool {
	return errors.Is(err, partition.ErrNoMailbox)
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
