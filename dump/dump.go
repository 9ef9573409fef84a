package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// ErrNoSelection is returned when neither users, mailboxes nor All were
// asked for: mbtool never dumps a whole server by accident.
var ErrNoSelection = errors.New("nothing selected to dump")

// Options select what to dump and how.
type Options struct {
	Users     []string // whole users: every mailbox they own, seen db, subscriptions, quota roots
	Mailboxes []string // single mailboxes by internal name
	All       bool     // every user, and every mailbox no user owns
	Compress  bool     // zstd
	Host      string   // for the header; os.Hostname when empty
	Version   string   // mbtool's version, for the header
	Now       time.Time
	Workers   int // hashing workers; GOMAXPROCS when 0
	// ReadAhead is how many bytes of message files the workers read and
	// hash ahead of the writer, at most; when 0, DefaultReadAhead, or
	// CompressReadAhead with Compress.
	ReadAhead int64
	// Progress, if set, is called after each message and mailbox is written.
	Progress func(Progress)
	// Plan, if set, is called once with the totals to be dumped before any
	// output is written (for a progress bar).
	Plan func(Progress)
	// Have, if set, reports the message files the destination already
	// holds (a backup repository): they are neither read nor embedded,
	// and the records that refer to them are written as usual. It may be
	// called from several goroutines.
	Have func(guid.GUID) (bool, error)
	// Known, if set, is asked about each mailbox once its mailbox-level
	// keys are read and before its records are (a backup repository
	// that holds the mailbox from an earlier night). The dump is then no
	// standalone dump: each mailbox is preceded by an MBTOOL BOX line,
	// and a mailbox Known reports Same is that line alone (see
	// Known). Only a Source that is a KnownSource asks it.
	Known func(mb *syncrec.Mailbox) (Known, error)
	// NoDeleted leaves out the users' deleted mailboxes
	// (DELETED.user.alice.Gone.6B0F37A3, delete_mode: delayed), which a
	// user's dump includes otherwise, as Cyrus's replication lists them
	// with the user. A deleted mailbox named in Mailboxes is dumped.
	NoDeleted bool
	// Unsealed writes no digest (dumpfile.Options.Unsealed): for a dump
	// read within the process by a reader that hashes every message
	// file against its GUID (dump --repo's ingest, repo.IngestOptions).
	Unsealed bool
}

// Known is what a destination holds of a mailbox already (Options.Known).
// The dump writes, before the mailbox's APPLY MAILBOX,
//
//	MBTOOL BOX %(UNIQUEID <id> KEY <Key> [SAME 1 | SINCE <modseq> UIDS (<first>:<last> ...)])
//
// With Same the mailbox's files and records are not read and the line
// stands for the whole mailbox. With Since, only the records whose MODSEQ
// is above it are (their files, and the APPLY MAILBOX carries only them);
// UIDS names the UIDs of all the mailbox's records, as ranges.
//
// With Cached, the destination holds every record as of Since with its
// cache record: a source that reads the index drops Since (the mailbox is
// dumped whole) when a record at or below Since has none now, a change
// Cyrus makes without a new MODSEQ (an archived record).
type Known struct {
	Key    string // the destination's name for the mailbox-level keys
	Same   bool   // the destination holds the mailbox exactly as it is
	Since  uint64 // the destination holds every record as of this MODSEQ
	Cached bool   // ... each with its cache record
}

// Progress counts what has been written so far (or, for Plan, what will be).
type Progress struct {
	Mailboxes, Messages, Bytes int64
}

// Problem is an item that was not dumped, or dumped with a warning.
type Problem struct {
	Mailbox string
	UID     uint32
	GUID    guid.GUID
	Err     error
}

func (p Problem) String() string {
	// The line starts with the mailbox; the error, from the layers
	// below, may name it again ("mailbox user.bob: lock file ...").
	msg := strings.Replace(fmt.Sprint(p.Err), "mailbox "+p.Mailbox+": ", "", 1)
	if p.UID == 0 {
		return fmt.Sprintf("%s: %s", p.Mailbox, msg)
	}
	return fmt.Sprintf("%s UID %d (GUID %s): %s", p.Mailbox, p.UID, p.GUID, msg)
}

// Summary is what Run did.
type Summary struct {
	dumpfile.Counts
	Users   int
	Records int64 // RECORD entries, expunged included
	Shared  int64 // records whose message file was already in the dump
	Skipped int64 // problems recorded in the dump as MBTOOL SKIPPED lines
	// Deleted counts the users' deleted mailboxes dumped with them;
	// DeletedLeftOut those Options.NoDeleted left out.
	Deleted, DeletedLeftOut int64
	Problems                []Problem
}

// Run writes a dump of what opts selects from spool to w.
func Run(ctx context.Context, spool *partition.Spool, w io.Writer, opts Options) (*Summary, error) {
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	ahead := opts.ReadAhead
	if ahead == 0 && opts.Compress {
		ahead = CompressReadAhead
	}
	return Write(ctx, NewSpoolSource(spool, opts.Workers, ahead), w, opts)
}

// SharedMailboxes lists the mailboxes of spool no user owns (shared
// folders), as dump --all dumps them after the users.
func SharedMailboxes(spool *partition.Spool) ([]string, error) {
	var names []string
	err := spool.MailboxChunks(func(chunk []partition.Entry) error {
		for _, e := range chunk {
			if e.Owner(spool.Config) == "" {
				names = append(names, e.Name)
			}
		}
		return nil
	})
	return names, err
}

// spoolSource reads a partition offline. Its plan holds names only: a
// user's mailboxes are listed from mailboxes.db when the user's turn
// comes (partition.Spool.UserMailboxes, O(log n) plus the user's own),
// and a single mailbox is looked up at its turn, so that memory does not
// grow with the number of mailboxes.
type spoolSource struct {
	spool   *partition.Spool
	workers int
	bufs    *bufPool
	plan    *Plan
	// cur holds the mailboxes of the user being dumped, by name; it is
	// the writer's alone (User sets it, Mailbox reads it).
	cur map[string]partition.Entry
	pf  *prefetcher // set by Prefetch, for the whole run
	// serverAnnots are users' private server annotations, once read.
	serverAnnots map[string][]syncrec.Annotation
}

// NewSpoolSource returns the Source of an offline dump of spool; workers
// is the number of hashing workers (GOMAXPROCS when 0), readAhead the
// bytes of message files they read ahead (Options.ReadAhead).
func NewSpoolSource(spool *partition.Spool, workers int, readAhead int64) Source {
	return &spoolSource{spool: spool, workers: workers, bufs: newBufPool(readAhead)}
}

// Plan resolves the selection against mailboxes.db: users, then single
// mailboxes not dumped with a user, and reads the index headers of their
// mailboxes for the totals (when sel.Totals asks for them) and the
// header's index version. With All, the users, the shared mailboxes and
// the totals come from one walk of mailboxes.db in chunks
// (partition.Spool.UsersWalk), whose index headers are read on every
// core while the walk goes on; the plan keeps the names of the users and
// of the single mailboxes, no mailbox entry.
func (s *spoolSource) Plan(ctx context.Context, sel Selection) (*Plan, error) {
	spool := s.spool
	p := &Plan{}
	tot := newTotals(spool, !sel.Totals)
	defer tot.stop()
	planned := map[string]bool{}
	var all, shared []string
	if sel.All {
		var err error
		all, err = spool.UsersWalk(func(chunk []partition.Entry) error {
			for _, e := range chunk {
				if e.Owner(spool.Config) == "" {
					shared = append(shared, e.Name)
				}
			}
			tot.add(chunk)
			return ctx.Err()
		})
		if err != nil {
			return nil, err
		}
	}
	missing := &NotFoundError{}
	for _, u := range sel.Users {
		if planned[u] {
			continue
		}
		planned[u] = true
		owns := false
		if sel.All {
			// The walk counted the user's mailboxes.
			_, owns = slices.BinarySearch(all, u)
		} else {
			mbs, err := spool.UserMailboxes(u)
			if err != nil {
				return nil, fmt.Errorf("user %s: %w", u, err)
			}
			tot.add(mbs)
			owns = len(mbs) > 0
		}
		if !owns {
			// A user who owns no mailbox but reads others' (seen state,
			// subscriptions) is dumped with those alone.
			state, err := spool.UserState(u)
			if err != nil {
				return nil, fmt.Errorf("user %s: %w", u, err)
			}
			if !state {
				missing.Users = append(missing.Users, u)
				continue
			}
		}
		p.Users = append(p.Users, u)
	}
	for _, u := range all {
		if !planned[u] {
			planned[u] = true
			p.Users = append(p.Users, u)
		}
	}
	singles := map[string]bool{}
	for _, name := range sel.Mailboxes {
		if singles[name] {
			continue
		}
		e, err := spool.Lookup(name)
		if errors.Is(err, partition.ErrNoMailbox) {
			missing.Mailboxes = append(missing.Mailboxes, name)
			continue
		}
		if err != nil {
			return nil, err // it names the mailbox
		}
		ownerPlanned := planned[spool.Config.NameOwner(name)]
		if ownerPlanned && withUser(name, sel.NoDeleted) {
			continue
		}
		singles[name] = true
		if !sel.All && !ownerPlanned { // else counted with its user
			tot.add([]partition.Entry{e})
		}
		p.Mailboxes = append(p.Mailboxes, name)
	}
	for _, name := range shared {
		if !singles[name] {
			p.Mailboxes = append(p.Mailboxes, name)
		}
	}
	if len(missing.Users) > 0 || len(missing.Mailboxes) > 0 {
		missing.suggest(spool)
		return nil, missing
	}
	total, version := tot.wait()
	p.IndexVersion = version
	if sel.Totals {
		p.Total = &total
	}
	s.plan = p
	return p, nil
}

// withUser reports whether the mailbox name, whose owner is a user of the
// plan, is dumped with the user: it is in the user's namespace, or in the
// user's deleted tree (DELETED.user.alice.*) unless those are left out
// (Selection.NoDeleted: named on its own, it is dumped all the same).
func withUser(name string, noDeleted bool) bool {
	// The writer's test of the deleted tree (dumper.user).
	return mboxname.Owner(name) != "" || !noDeleted
}

// totals reads the index headers of the plan's mailboxes, unlocked, for
// the totals and the highest index version, on every core while the plan
// is made: a mailbox costs a few system calls here, and the dump's
// header waits for the last. At most a few chunks are in its hands.
//
// With versionOnly (no totals wanted) it stops reading at the first
// header of partition.MaxIndexVersion: no header it can read has a higher
// one (partition.ParseIndexHeader refuses it), so the highest version is
// known, and the rest of the plan's mailboxes cost no system call here.
type totals struct {
	ch          chan []partition.Entry
	wg          sync.WaitGroup
	parts       []totalsPart
	done        bool
	versionOnly bool
	top         atomic.Bool // versionOnly, and a header of MaxIndexVersion was read
}

type totalsPart struct {
	total   Progress
	version int
}

func newTotals(spool *partition.Spool, versionOnly bool) *totals {
	t := &totals{ch: make(chan []partition.Entry, 2), versionOnly: versionOnly}
	t.parts = make([]totalsPart, runtime.GOMAXPROCS(0))
	for w := range t.parts {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			pt := &t.parts[w]
			for chunk := range t.ch {
				if t.top.Load() {
					continue
				}
				spool.ReadIndexHeaders(chunk, func(_ partition.Entry, h partition.IndexHeader, err error) bool {
					pt.total.Mailboxes++
					if err == nil {
						pt.total.Messages += int64(h.Exists)
						pt.total.Bytes += int64(h.QuotaMailboxUsed)
						pt.version = max(pt.version, int(h.MinorVersion))
						if t.versionOnly && h.MinorVersion >= partition.MaxIndexVersion {
							t.top.Store(true)
						}
					}
					return !t.top.Load()
				})
			}
		}()
	}
	return t
}

// add hands mailboxes to the workers; it waits while they are busy with
// the chunks before.
func (t *totals) add(entries []partition.Entry) {
	if len(entries) > 0 && !t.top.Load() {
		t.ch <- entries
	}
}

// wait returns the totals once every mailbox added is read.
func (t *totals) wait() (Progress, int) {
	t.stop()
	var total Progress
	version := 0
	for _, pt := range t.parts {
		total.Mailboxes += pt.total.Mailboxes
		total.Messages += pt.total.Messages
		total.Bytes += pt.total.Bytes
		version = max(version, pt.version)
	}
	return total, version
}

// stop ends the workers.
func (t *totals) stop() {
	if !t.done {
		t.done = true
		close(t.ch)
		t.wg.Wait()
	}
}

// spoolUser is a user of the plan.
type spoolUser struct {
	s     *spoolSource
	name  string
	names []string
	// The paths of the user's seen and subscription databases, from one
	// look-up of the user's INBOX.
	dbOnce             sync.Once
	seenPath, subsPath string
	dbErr              error
}

func (u *spoolUser) dbPaths() error {
	u.dbOnce.Do(func() { u.seenPath, u.subsPath, u.dbErr = u.s.spool.UserDBPaths(u.name) })
	return u.dbErr
}

// ServerAnnotations returns the user's private annotations of the server,
// read for all users at the first call.
func (u *spoolUser) ServerAnnotations(ctx context.Context) ([]syncrec.Annotation, error) {
	s := u.s
	if s.serverAnnots == nil {
		s.serverAnnots = map[string][]syncrec.Annotation{}
		err := s.spool.ServerAnnotations(func(user string, as []partition.Annotation) error {
			for _, a := range as {
				s.serverAnnots[user] = append(s.serverAnnots[user], syncrec.Annotation(a))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s.serverAnnots[u.name], nil
}

// User lists the user's mailboxes from mailboxes.db as its turn comes,
// or takes the list the prefetcher made for it, so that the writer asks
// for the mailboxes the prefetcher opens. The user's mailboxes are those
// of Mailboxes until the next call.
func (s *spoolSource) User(ctx context.Context, name string) (User, error) {
	var mbs []partition.Entry
	var err error
	if s.pf != nil && s.pf.ahead {
		var ok bool
		if mbs, err, ok = s.pf.takeUser(name); !ok {
			mbs, err = s.spool.UserMailboxes(name)
		}
	} else {
		mbs, err = s.spool.UserMailboxes(name)
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	if len(mbs) == 0 {
		// The plan had the user because of a mailbox or of seen state
		// or subscriptions: one of them is still there, or the user is
		// gone.
		state, err := s.spool.UserState(name)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", name, err)
		}
		if !state {
			return nil, ErrUserGone // the problem names the user
		}
	}
	clear(s.cur)
	if s.cur == nil {
		s.cur = make(map[string]partition.Entry, len(mbs))
	}
	names := make([]string, len(mbs))
	for i, e := range mbs {
		names[i] = e.Name
		s.cur[e.Name] = e
	}
	return &spoolUser{s: s, name: name, names: names}, nil
}

// entry returns the mailboxes.db entry of a mailbox of the plan: from the
// list of the user being dumped, or looked up (a single mailbox).
func (s *spoolSource) entry(name string) (partition.Entry, error) {
	if e, ok := s.cur[name]; ok {
		return e, nil
	}
	return s.spool.Lookup(name)
}

func (u *spoolUser) Mailboxes() []string { return u.names }

func (u *spoolUser) Subs(ctx context.Context) ([]string, error) {
	if err := u.dbPaths(); err != nil {
		return nil, fmt.Errorf("subscriptions of %s: %w", u.name, err)
	}
	subs, err := u.s.spool.ReadSubsAt(u.name, u.subsPath)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return subs, err
}

func (u *spoolUser) Seen(ctx context.Context) ([]*syncrec.Seen, error) {
	if err := u.dbPaths(); err != nil {
		return nil, fmt.Errorf("seen db of %s: %w", u.name, err)
	}
	seen, err := u.s.spool.ReadSeenAt(u.name, u.seenPath)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	out := make([]*syncrec.Seen, len(seen))
	for i, s := range seen {
		out[i] = &syncrec.Seen{UserID: u.name, UniqueID: s.UniqueID, LastRead: s.LastRead,
			LastUID: s.LastUID, LastChange: s.LastChange, SeenUIDs: s.SeenUIDs}
	}
	return out, err
}

// Quota reads a quota root's limits.
func (s *spoolSource) Quota(ctx context.Context, root string) (*syncrec.Quota, error) {
	q, err := s.spool.ReadQuota(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // a quota root named in a header but without limits
	}
	if err != nil {
		return nil, err
	}
	return quotaRecord(q), nil
}

func quotaRecord(q partition.Quota) *syncrec.Quota {
	r := &syncrec.Quota{Root: q.Root, Modseq: q.Modseq}
	for i, name := range syncrec.QuotaNames {
		r.Limits[i] = syncrec.Unlimited
		if l, ok := q.Limits[name]; ok {
			r.Limits[i] = l
		}
	}
	return r
}
