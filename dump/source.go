package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/syncrec"
)

// Source is where a dump's content comes from: a partition read offline
// (Run) or a running server over the replication protocol (package
// remote). Write asks it for users, mailboxes and quota roots in the
// order of the dump and writes everything itself, so that both dumps
// have one form, byte for byte apart from the header.
//
// An error a Source returns ends the run when it is fatal (see Fatal, and
// context errors); any other error is a problem with one item, reported
// in the Summary, and the run goes on.
type Source interface {
	// Plan resolves the selection: the users to dump, and the single
	// mailboxes outside them. It is called once, before any output.
	Plan(ctx context.Context, sel Selection) (*Plan, error)
	// User opens a user for dumping. An error ends the run.
	User(ctx context.Context, name string) (User, error)
	// Mailbox opens a mailbox for dumping.
	Mailbox(ctx context.Context, name string) (Mailbox, error)
	// Quota returns the limits of a quota root, or nil when it has none.
	Quota(ctx context.Context, root string) (*syncrec.Quota, error)
}

// ErrUserGone is a Source's User error for a user of the plan who owns
// no mailbox and has no seen database or subscriptions any more when the
// user's turn comes (deleted since the dump started): a problem recorded
// in the dump, not the end of the run.
var ErrUserGone = errors.New("not dumped: the user has no mailbox, seen database or subscriptions any more (deleted since the dump started)")

// KnownSource is a Source that asks Options.Known about a mailbox before
// it reads the mailbox's records, and reads none when the answer is Same.
type KnownSource interface {
	MailboxKnown(ctx context.Context, name string, known func(*syncrec.Mailbox) (Known, error)) (Mailbox, Known, error)
}

// Prefetcher is a Source that reads message files with workers of its
// own for the whole run and can open mailboxes, and read their files,
// ahead of their turn. Write calls Prefetch once, after Plan, when the
// source is one; with ahead, it then asks for the mailboxes with Mailbox
// in the order of the plan: each user's in the order of the user's
// Mailboxes, then the single ones not dumped with a user. stop releases
// everything it holds.
type Prefetcher interface {
	Prefetch(ctx context.Context, f Filter, ahead bool) (stop func())
}

// SinceMailbox is a Mailbox that can yield only the records changed after
// a MODSEQ (Known.Since).
type SinceMailbox interface {
	// Since limits Files and Records to the records whose MODSEQ is
	// above modseq.
	Since(modseq uint64)
	// UIDs calls fn with the ranges of the UIDs of all the records, in
	// ascending order.
	UIDs(fn func(first, last uint32) error) error
}

// Selection is what to dump.
type Selection struct {
	Users     []string
	Mailboxes []string
	All       bool
	// NoDeleted: the users' deleted mailboxes are left out
	// (Options.NoDeleted), so one named in Mailboxes is a single
	// mailbox, not dumped with its user.
	NoDeleted bool
	// Totals: the plan's Total is wanted (Options.Plan is set); without
	// it a source may leave Total nil and read less to make the plan.
	Totals bool
}

// Plan is a resolved selection.
type Plan struct {
	Users     []string // in order, each once
	Mailboxes []string // single mailboxes; those of Users are skipped
	// IndexVersion is the highest cyrus.index version, for the header (0
	// when not known).
	IndexVersion int
	// Total is what will be dumped, for a progress bar; nil when not
	// known beforehand.
	Total *Progress
}

// User is one user being dumped.
type User interface {
	// Mailboxes are the user's mailboxes, in mailboxes.db order.
	Mailboxes() []string
	// Subs and Seen are asked for after the mailboxes are written.
	Subs(ctx context.Context) ([]string, error)
	Seen(ctx context.Context) ([]*syncrec.Seen, error)
}

// ServerAnnotator is a User that also has private annotations of the
// server (GETMETADATA ""), dumped after the seen records.
type ServerAnnotator interface {
	ServerAnnotations(ctx context.Context) ([]syncrec.Annotation, error)
}

// Mailbox is one mailbox being dumped.
type Mailbox interface {
	// Keys are the mailbox-level keys of its APPLY MAILBOX.
	Keys() *syncrec.Mailbox
	// Files calls put for the message file of each record, in UID order,
	// except those f.Skip reports. An error from put is returned.
	Files(ctx context.Context, f Filter, put func(*File) error) error
	// Records returns the records of the APPLY MAILBOX, one per call,
	// nil after the last. It is called once, after Files.
	Records(ctx context.Context) (func() (*syncrec.Record, error), error)
	// Close releases what the mailbox holds.
	Close()
}

// Filter tells a Mailbox's Files which files it need not read.
type Filter struct {
	// Skip, if set, reports files the destination holds already (a
	// backup repository): they are not yielded at all. It may be called
	// from several goroutines.
	Skip func(guid.GUID) (bool, error)
	// InDump reports files the dump holds already: a source may yield
	// them as Dup without reading them. It must be called from the
	// goroutine that called Files only.
	InDump func(guid.GUID) (bool, error)
}

// File is the message file of one record, as a Mailbox's Files yields it.
// A File, and its Write and Release, are valid only until the put
// function Files hands it to returns: a source may reuse it for the next
// file.
type File struct {
	UID      uint32
	GUID     guid.GUID
	Size     int64
	Expunged bool
	// Err, if set, says the file cannot be dumped; Gone that it does not
	// exist, which is no problem for an expunged record (Cyrus removes
	// those files in time).
	Err  error
	Gone bool
	// Dup says the source knows the file is in the dump already.
	Dup bool
	// Write writes the file literal; the bytes must be checked against
	// the GUID as they go. It is set unless Err or Dup is. An error that
	// is the source's, not the output's, should name the mailbox and UID.
	Write func(w *dlist.Writer, partition string) error
	// Release, if set, frees what the file holds when it is not written.
	Release func()
}

// maxFilesPerLine is how many file literals one APPLY MESSAGE carries at
// most, as Cyrus's own sender does.
const maxFilesPerLine = 1024

// fatalError marks errors that end the run: the output failed, the
// source cannot go on, or the run was cancelled. Everything else is a
// problem with one item.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// Fatal marks err as ending the run.
func Fatal(err error) error {
	if err == nil || isFatal(err) {
		return err
	}
	return &fatalError{err}
}

func isFatal(err error) bool {
	var f *fatalError
	return errors.As(err, &f) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Write writes a dump of what opts selects from src to w: per user, each
// mailbox in mailboxes.db order with its new message files in APPLY
// MESSAGE lines of at most 1024 files, then its APPLY MAILBOX; then the
// user's quota roots, subscriptions and seen records; then the single
// mailboxes. Files already in the dump are written once.
func Write(ctx context.Context, src Source, w io.Writer, opts Options) (*Summary, error) {
	if !opts.All && len(opts.Users) == 0 && len(opts.Mailboxes) == 0 {
		return nil, ErrNoSelection
	}
	plan, err := src.Plan(ctx, Selection{Users: opts.Users, Mailboxes: opts.Mailboxes, All: opts.All, NoDeleted: opts.NoDeleted,
		Totals: opts.Plan != nil})
	if err != nil {
		return nil, err
	}
	if opts.Plan != nil && plan.Total != nil {
		opts.Plan(*plan.Total)
	}
	if pf, ok := src.(Prefetcher); ok {
		// An incremental dump asks Known about each mailbox as it opens
		// it, in turn: no mailbox is opened ahead there.
		stop := pf.Prefetch(ctx, Filter{Skip: opts.Have}, opts.Known == nil)
		defer stop()
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	fw, err := dumpfile.NewWriter(w, dumpfile.Header{Created: now, Host: opts.Host, Version: opts.Version, IndexVersion: plan.IndexVersion},
		dumpfile.Options{Compress: opts.Compress, Unsealed: opts.Unsealed, Background: true})
	if err != nil {
		return nil, err
	}
	// A write may be running when a mailbox fails: w is the caller's
	// again only once it is done.
	defer fw.Abort()
	d := &dumper{
		ctx:      ctx,
		src:      src,
		w:        fw.DL(),
		opts:     opts,
		embedded: guidtable.New(guidtable.Options{}),
		sum:      &Summary{},
		singles:  make(map[string]bool, len(plan.Mailboxes)),
	}
	defer d.embedded.Close()
	for _, name := range plan.Mailboxes {
		d.singles[name] = false
	}
	for _, u := range plan.Users {
		if err := d.user(u); err != nil {
			return d.sum, err
		}
	}
	for _, name := range plan.Mailboxes {
		if d.singles[name] {
			continue // dumped with its user
		}
		d.singles[name] = true
		if _, err := d.mailboxRoot(name); err != nil {
			return d.sum, err
		}
	}
	if err := fw.Close(d.sum.Counts); err != nil {
		return d.sum, err
	}
	return d.sum, nil
}

type dumper struct {
	ctx      context.Context
	src      Source
	w        *dlist.Writer
	opts     Options
	embedded *guidtable.Table // files already in the dump: the one state that grows with it, kept flat
	sum      *Summary
	singles  map[string]bool // the plan's single mailboxes: dumped yet?
	lineOpen bool            // an APPLY MESSAGE line is being written
	pending  []Problem       // skips to record once the line is closed
}

// problem reports an item left out of the dump and records it in the dump
// itself (an MBTOOL SKIPPED line, docs/format.md), so that verify tells
// it from damage: at once between commands, else once the APPLY MESSAGE
// line being written is closed, before the mailbox's APPLY MAILBOX.
func (d *dumper) problem(p Problem) {
	d.sum.Problems = append(d.sum.Problems, p)
	if d.lineOpen {
		d.pending = append(d.pending, p)
		return
	}
	d.recordSkip(p)
}

// warn reports something dumped as it was, with a warning: not a skip.
func (d *dumper) warn(p Problem) { d.sum.Problems = append(d.sum.Problems, p) }

func (d *dumper) recordSkip(p Problem) {
	s := dumpfile.Skip{Item: p.Mailbox, UID: p.UID, GUID: p.GUID, Reason: p.Err.Error()}
	// A write error here is the output's; the next write meets it again.
	dumpfile.WriteSkip(d.w, s)
	d.sum.Skipped++
}

// flushSkips records the skips held while a line was open.
func (d *dumper) flushSkips() {
	for _, p := range d.pending {
		d.recordSkip(p)
	}
	d.pending = d.pending[:0]
}

func (d *dumper) progress() {
	if d.opts.Progress != nil {
		d.opts.Progress(Progress{Mailboxes: d.sum.Mailboxes, Messages: d.sum.Messages, Bytes: d.sum.Bytes})
	}
}

// user dumps a user's mailboxes, then the quota roots they use, the user's
// subscriptions and seen records.
func (d *dumper) user(name string) error {
	u, err := d.src.User(d.ctx, name)
	if errors.Is(err, ErrUserGone) {
		d.problem(Problem{Mailbox: "user " + name, Err: err})
		return nil
	}
	if err != nil {
		return Fatal(err)
	}
	d.sum.Users++
	roots := map[string]bool{}
	for _, mbox := range u.Mailboxes() {
		// A user's mailbox outside the user's namespace is in the deleted
		// tree (DELETED.user.alice...): both sources list those after
		// the rest.
		if mboxname.Owner(mbox) == "" {
			if d.opts.NoDeleted {
				if _, single := d.singles[mbox]; !single {
					d.sum.DeletedLeftOut++ // else dumped after the users
				}
				continue
			}
			d.sum.Deleted++
		}
		if _, ok := d.singles[mbox]; ok {
			d.singles[mbox] = true
		}
		root, err := d.mailboxRoot(mbox)
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
		q, err := d.src.Quota(d.ctx, r)
		if isFatal(err) {
			return err
		}
		if err != nil {
			d.problem(Problem{Mailbox: r, Err: fmt.Errorf("quota root: %w", err)})
			continue
		}
		if q == nil {
			continue // a quota root named in a mailbox but without limits
		}
		if err := syncrec.WriteQuota(d.w, q); err != nil {
			return Fatal(err)
		}
	}
	subs, err := u.Subs(d.ctx)
	if isFatal(err) {
		return err
	}
	if err != nil {
		d.problem(Problem{Mailbox: "user " + name, Err: fmt.Errorf("subscriptions: %w", err)})
	}
	for _, s := range subs {
		if err := syncrec.WriteSub(d.w, &syncrec.Sub{UserID: name, MboxName: s}); err != nil {
			return Fatal(err)
		}
	}
	seen, err := u.Seen(d.ctx)
	if isFatal(err) {
		return err
	}
	if err != nil {
		d.problem(Problem{Mailbox: "user " + name, Err: fmt.Errorf("seen db: %w", err)})
	}
	for _, s := range seen {
		if err := syncrec.WriteSeen(d.w, s); err != nil {
			return Fatal(err)
		}
	}
	if sa, ok := u.(ServerAnnotator); ok {
		as, err := sa.ServerAnnotations(d.ctx)
		if isFatal(err) {
			return err
		}
		if err != nil {
			d.problem(Problem{Mailbox: "user " + name, Err: fmt.Errorf("server annotations: %w", err)})
		}
		for i := range as {
			if err := syncrec.WriteServerAnnotation(d.w, &as[i]); err != nil {
				return Fatal(err)
			}
		}
	}
	return d.ctx.Err()
}

// mailboxRoot dumps one mailbox and returns its quota root; an error that
// is not fatal is a problem with the mailbox.
func (d *dumper) mailboxRoot(name string) (string, error) {
	root, err := d.mailbox(name)
	if err != nil && !isFatal(err) {
		d.problem(Problem{Mailbox: name, Err: err})
		return "", nil
	}
	return root, err
}

// mailbox writes one mailbox: the APPLY MESSAGE lines for its message
// files not yet in the dump, then its APPLY MAILBOX, checking the sync
// CRCs as the records pass. It returns the mailbox's quota root.
func (d *dumper) mailbox(name string) (string, error) {
	var m Mailbox
	var known Known
	var err error
	ks, incremental := d.src.(KnownSource)
	incremental = incremental && d.opts.Known != nil
	if incremental {
		m, known, err = ks.MailboxKnown(d.ctx, name, func(mb *syncrec.Mailbox) (Known, error) {
			k, err := d.opts.Known(mb)
			return k, Fatal(err)
		})
	} else {
		m, err = d.src.Mailbox(d.ctx, name)
	}
	if err != nil {
		return "", err
	}
	defer m.Close()
	mb := m.Keys()
	if incremental && known.Same {
		if err := d.box(mb, known, nil); err != nil {
			return "", Fatal(err)
		}
		d.sum.Mailboxes++
		d.progress()
		return mb.QuotaRoot, d.ctx.Err()
	}
	sm, ok := m.(SinceMailbox)
	if !ok {
		known.Since = 0
	}
	if known.Since > 0 {
		sm.Since(known.Since)
	}
	if err := d.files(m, mb); err != nil {
		return "", err
	}
	if incremental {
		if err := d.box(mb, known, sm); err != nil {
			return "", err
		}
	}
	next, err := m.Records(d.ctx)
	if err != nil {
		return "", err
	}
	crc := syncrec.NewCRC()
	var n int64
	werr := syncrec.WriteMailbox(d.w, "APPLY", mb, func() (*syncrec.Record, error) {
		r, err := next()
		if r != nil {
			n++
			crc.Add(r)
		}
		return r, err
	})
	if werr != nil {
		return "", Fatal(werr)
	}
	// With Since the records written are not all the mailbox's: their
	// CRCs cannot add up to the header's.
	if known.Since == 0 && (!syncrec.Equal(crc.Basic, mb.SyncCRC) || !syncrec.Equal(crc.Annot, mb.SyncCRCAnnot)) {
		d.warn(Problem{Mailbox: name, Err: fmt.Errorf(
			"index header has SYNC_CRC %d SYNC_CRC_ANNOT %d, its records give %d %d (dumped as recorded; `reconstruct` would repair the index)",
			mb.SyncCRC, mb.SyncCRCAnnot, crc.Basic, crc.Annot)})
	}
	d.sum.Mailboxes++
	d.sum.Records += n
	d.progress()
	return mb.QuotaRoot, d.ctx.Err()
}

// box writes the MBTOOL BOX line of an incremental dump (Known).
func (d *dumper) box(mb *syncrec.Mailbox, k Known, sm SinceMailbox) error {
	w := d.w
	w.BeginLine(dumpfile.Verb, "BOX")
	w.BeginKVList()
	w.Key("UNIQUEID")
	w.Atom(mb.UniqueID)
	w.Key("KEY")
	w.Atom(k.Key)
	switch {
	case k.Same:
		w.Key("SAME")
		w.Num(1)
	case k.Since > 0:
		w.Key("SINCE")
		w.Num(k.Since)
		w.Key("UIDS")
		w.BeginList()
		err := sm.UIDs(func(first, last uint32) error {
			syncrec.WriteUIDRange(w, first, last)
			return w.Err()
		})
		if err != nil {
			return err
		}
		w.EndList()
	}
	w.EndList()
	return Fatal(w.EndLine())
}

// files writes the message files the mailbox yields, in order, as APPLY
// MESSAGE lines of at most maxFilesPerLine literals.
func (d *dumper) files(m Mailbox, mb *syncrec.Mailbox) error {
	inLine := 0
	err := m.Files(d.ctx, Filter{Skip: d.opts.Have, InDump: d.embedded.Has}, func(f *File) error {
		if f.Err != nil {
			if !f.Expunged || !f.Gone {
				d.problem(Problem{Mailbox: mb.Name, UID: f.UID, GUID: f.GUID, Err: f.Err})
			}
			return nil
		}
		dup := f.Dup
		if !dup {
			// One look-up: the GUID is the dump's from here on, as the
			// file is written next (or the dump fails).
			added, err := d.embedded.Add(f.GUID, nil)
			if err != nil {
				return Fatal(err)
			}
			dup = !added
		}
		if dup {
			d.sum.Shared++
			if f.Release != nil {
				f.Release()
			}
			return nil
		}
		if inLine == 0 {
			d.w.BeginLine("APPLY", "MESSAGE")
			d.w.BeginList()
			d.lineOpen = true
		}
		if err := f.Write(d.w, mb.Partition); err != nil {
			// The literal has started: the dump cannot be completed.
			return Fatal(err)
		}
		d.sum.Messages++
		d.sum.Bytes += f.Size
		inLine++
		if inLine == maxFilesPerLine {
			d.w.EndList()
			if err := d.w.EndLine(); err != nil {
				return Fatal(err)
			}
			inLine = 0
			d.lineOpen = false
			d.flushSkips()
		}
		d.progress()
		return nil
	})
	if inLine > 0 && !isFatal(err) {
		d.w.EndList()
		if werr := d.w.EndLine(); werr != nil {
			return Fatal(werr)
		}
	}
	d.lineOpen = false
	if !isFatal(err) {
		d.flushSkips()
	}
	return err
}
