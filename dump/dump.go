package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
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
	if p.UID == 0 {
		return fmt.Sprintf("%s: %v", p.Mailbox, p.Err)
	}
	return fmt.Sprintf("%s UID %d (GUID %s): %v", p.Mailbox, p.UID, p.GUID, p.Err)
}

// Summary is what Run did.
type Summary struct {
	dumpfile.Counts
	Users    int
	Records  int64 // RECORD entries, expunged included
	Shared   int64 // records whose message file was already in the dump
	Problems []Problem
}

// Run writes a dump of what opts selects from spool to w.
func Run(ctx context.Context, spool *partition.Spool, w io.Writer, opts Options) (*Summary, error) {
	if !opts.All && len(opts.Users) == 0 && len(opts.Mailboxes) == 0 {
		return nil, ErrNoSelection
	}
	plan, err := makePlan(spool, opts)
	if err != nil {
		return nil, err
	}
	total, indexVersion := plan.scan(spool)
	if opts.Plan != nil {
		opts.Plan(total)
	}
	host := opts.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	fw, err := dumpfile.NewWriter(w, dumpfile.Header{Created: now, Host: host, Version: opts.Version, IndexVersion: indexVersion},
		dumpfile.Options{Compress: opts.Compress})
	if err != nil {
		return nil, err
	}
	d := &dumper{
		ctx:      ctx,
		spool:    spool,
		w:        fw.DL(),
		opts:     opts,
		embedded: guidtable.New(guidtable.Options{}),
		bufs:     newBufPool(),
		sum:      &Summary{},
	}
	defer d.embedded.Close()
	for _, u := range plan.users {
		if err := d.user(u); err != nil {
			return d.sum, err
		}
	}
	for _, e := range plan.mailboxes {
		if err := d.mailbox(e); err != nil {
			return d.sum, err
		}
	}
	if err := fw.Close(d.sum.Counts); err != nil {
		return d.sum, err
	}
	return d.sum, nil
}

// plan is the resolved selection: users with their mailboxes, then single
// mailboxes not already covered by a user.
type plan struct {
	users     []userPlan
	mailboxes []partition.Entry
}

type userPlan struct {
	name      string
	mailboxes []partition.Entry
}

func makePlan(spool *partition.Spool, opts Options) (*plan, error) {
	p := &plan{}
	users := opts.Users
	if opts.All {
		all, err := spool.Users()
		if err != nil {
			return nil, err
		}
		users = append(append([]string(nil), users...), all...)
	}
	seenUser := map[string]bool{}
	seenBox := map[string]bool{}
	for _, u := range users {
		if seenUser[u] {
			continue
		}
		seenUser[u] = true
		mbs, err := spool.UserMailboxes(u)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u, err)
		}
		if len(mbs) == 0 {
			return nil, fmt.Errorf("user %s: %w: no mailboxes", u, partition.ErrNoMailbox)
		}
		for _, e := range mbs {
			seenBox[e.Name] = true
		}
		p.users = append(p.users, userPlan{name: u, mailboxes: mbs})
	}
	names := opts.Mailboxes
	if opts.All {
		// Every user, and the mailboxes no user owns (shared folders).
		all, err := spool.Mailboxes()
		if err != nil {
			return nil, err
		}
		for _, e := range all {
			if e.Owner(spool.Config) == "" {
				names = append(names, e.Name)
			}
		}
	}
	for _, name := range names {
		if seenBox[name] {
			continue
		}
		e, err := spool.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", name, err)
		}
		seenBox[name] = true
		p.mailboxes = append(p.mailboxes, e)
	}
	return p, nil
}

// scan reads the index headers, for the totals of a progress bar and the
// highest index version (for the dump's header); errors are ignored here
// and reported when the mailbox is dumped.
func (p *plan) scan(spool *partition.Spool) (t Progress, indexVersion int) {
	add := func(e partition.Entry) {
		t.Mailboxes++
		if h, err := peekIndexHeader(spool, e); err == nil {
			t.Messages += int64(h.Exists)
			t.Bytes += int64(h.QuotaMailboxUsed)
			indexVersion = max(indexVersion, int(h.MinorVersion))
		}
	}
	for _, u := range p.users {
		for _, e := range u.mailboxes {
			add(e)
		}
	}
	for _, e := range p.mailboxes {
		add(e)
	}
	return t, indexVersion
}

type dumper struct {
	ctx      context.Context
	spool    *partition.Spool
	w        *dlist.Writer
	opts     Options
	embedded *guidtable.Table // files already in the dump: the one state that grows with it, kept flat
	bufs     *bufPool
	sum      *Summary
}

func (d *dumper) problem(p Problem) { d.sum.Problems = append(d.sum.Problems, p) }

func (d *dumper) progress() {
	if d.opts.Progress != nil {
		d.opts.Progress(Progress{Mailboxes: d.sum.Mailboxes, Messages: d.sum.Messages, Bytes: d.sum.Bytes})
	}
}

// user dumps a user's mailboxes, then the quota roots they use, the user's
// subscriptions and seen records.
func (d *dumper) user(u userPlan) error {
	d.sum.Users++
	roots := map[string]bool{}
	for _, e := range u.mailboxes {
		root, err := d.mailboxRoot(e)
		if err != nil {
			return err
		}
		if root != "" {
			roots[root] = true
		}
	}
	sorted := make([]string, 0, len(roots))
	for r := range roots {
		sorted = append(sorted, r)
	}
	sort.Strings(sorted)
	for _, r := range sorted {
		q, err := d.spool.ReadQuota(r)
		if errors.Is(err, os.ErrNotExist) {
			continue // a quota root named in a header but without limits
		}
		if err != nil {
			d.problem(Problem{Mailbox: r, Err: fmt.Errorf("quota root: %w", err)})
			continue
		}
		if err := syncrec.WriteQuota(d.w, quotaRecord(q)); err != nil {
			return err
		}
	}
	subs, err := d.spool.ReadSubs(u.name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.problem(Problem{Mailbox: "user " + u.name, Err: fmt.Errorf("subscriptions: %w", err)})
	}
	for _, s := range subs {
		if err := syncrec.WriteSub(d.w, &syncrec.Sub{UserID: u.name, MboxName: s}); err != nil {
			return err
		}
	}
	seen, err := d.spool.ReadSeen(u.name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.problem(Problem{Mailbox: "user " + u.name, Err: fmt.Errorf("seen db: %w", err)})
	}
	for _, s := range seen {
		rec := &syncrec.Seen{UserID: u.name, UniqueID: s.UniqueID, LastRead: s.LastRead,
			LastUID: s.LastUID, LastChange: s.LastChange, SeenUIDs: s.SeenUIDs}
		if err := syncrec.WriteSeen(d.w, rec); err != nil {
			return err
		}
	}
	return d.ctx.Err()
}

func (d *dumper) mailboxRoot(e partition.Entry) (string, error) {
	root, err := d.dumpMailbox(e)
	if err != nil && !isFatal(err) {
		d.problem(Problem{Mailbox: e.Name, Err: err})
		return "", nil
	}
	return root, err
}

func (d *dumper) mailbox(e partition.Entry) error {
	_, err := d.mailboxRoot(e)
	return err
}

// fatalError marks errors that end the run: the output failed, or the run
// was cancelled. Everything else is a problem with one mailbox.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func isFatal(err error) bool {
	var f *fatalError
	return errors.As(err, &f) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
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

// peekIndexHeader reads a mailbox's index header without locks, for an
// estimate only.
func peekIndexHeader(spool *partition.Spool, e partition.Entry) (partition.IndexHeader, error) {
	p, err := spool.MetaPath(e, "cyrus.index")
	if err != nil {
		return partition.IndexHeader{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return partition.IndexHeader{}, err
	}
	defer f.Close()
	b := make([]byte, 160)
	n, _ := io.ReadFull(f, b)
	return partition.ParseIndexHeader(b[:n])
}
