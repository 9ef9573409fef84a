package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mbtool/mbtool/cyrustool"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/usermap"
)

// Options control a restore.
type Options struct {
	// Partition, if set, is the target partition of every mailbox;
	// otherwise each goes to the partition the dump names, which must be
	// configured in the target.
	Partition string
	// MapUsers renames users (old userid -> new): mailbox names, ACL
	// identifiers, seen and subscription owners, annotation owners.
	MapUsers map[string]string
	// Select, if not nil, restores only the mailboxes it selects, by
	// their names in the dump or as renamed by MapUsers. A term of it that
	// selects nothing is an error (a *mboxname.NoMatchError) once the dump
	// is read, before anything becomes visible in the target.
	Select *mboxname.Selector
	// DryRun reads and checks the whole dump and reports what would be
	// done, writing nothing.
	DryRun bool
	// Replace replaces existing mailboxes (each atomically) instead of
	// refusing them, and overwrites existing quota limits and seen records.
	Replace bool
	// Undelete makes the restore additive: a mailbox that exists in the
	// target is merged (the dump's messages it lacks, by GUID, appended
	// with new UIDs; nothing removed) instead of refused or replaced.
	Undelete bool
	// Messages, if not empty, restores only the messages it selects (of
	// the mailboxes created, replaced or merged).
	Messages *msgsel.Filter
	// Into, if set, restores the one selected mailbox under this name, as
	// a new mailbox of the name's owner: a new uniqueid and UIDVALIDITY,
	// the ACL of the owner's folders. With Undelete an existing mailbox
	// of that name is merged into.
	Into string
	// Owner owns the files written; nil means partition.CyrusOwner().
	Owner *partition.Owner
	// CyrusBin is the directory of Cyrus's programs, run for what only
	// Cyrus writes (ctl_conversationsdb, cyr_expire -A; see derivedJobs);
	// "" searches cyrustool.Dirs.
	CyrusBin string
	// Unsealed reads a dump written without a digest within the process
	// (restore --repo: repo.ExportOptions.Unsealed): its trailer's BLAKE3
	// is not checked. Every message file is still re-hashed against its
	// GUID, and the trailer's counts compared, before anything is
	// visible.
	Unsealed bool
	// Progress, if set, is called as messages and mailboxes are read.
	Progress func(Progress)
	// Report, if set, is given the report of each mailbox of the dump
	// (not of the missing parents the restore creates with them) at the
	// end of a run that finished or began its commit (Summary.Began: one
	// that stops on an error then still says what it committed), in the
	// dump's order, with the Summary, whose
	// Problems are complete by then; Summary.Mailboxes then stays empty,
	// so that the run holds no report line per mailbox.
	Report func(*Summary, MailboxResult)
}

// Progress counts what has been read and staged so far.
type Progress struct {
	Mailboxes, Messages, Bytes int64
}

// The result types are package result's, shared with restore --server
// (package remote).
type (
	// Action is what restore does, or would do, with one mailbox.
	Action = result.Action
	// MailboxResult reports one mailbox of the dump.
	MailboxResult = result.Mailbox
	// Problem is something restored with a warning, or left out.
	Problem = result.Problem
	// Summary is what Run did.
	Summary = result.Summary
)

// Actions.
const (
	ActionCreate  = result.Create
	ActionReplace = result.Replace
	ActionRefuse  = result.Refuse
	ActionSkip    = result.Skip
	ActionKeep    = result.Keep
	ActionMerge   = result.Merge
)

// Run restores the dump read from r into spool. It returns an error, with
// the target unchanged, for a dump that is damaged or unsafe; otherwise it
// registers every mailbox it can and reports the rest in the Summary.
func Run(ctx context.Context, spool *partition.Spool, r io.Reader, opts Options) (_ *Summary, err error) {
	rs, err := newRestorer(ctx, spool, opts)
	if err != nil {
		return nil, err
	}
	defer rs.cleanup()
	defer func() {
		if err != nil && opts.Report != nil && !rs.sum.Began {
			return // the target is unchanged: the caller reports the error only
		}
		if rerr := rs.report(); err == nil {
			err = rerr
		}
	}()
	if err := rs.read(r); err != nil {
		return rs.sum, err
	}
	if err := opts.Select.Err(); err != nil {
		return rs.sum, err
	}
	if err := rs.checkInto(); err != nil {
		return rs.sum, err
	}
	if err := rs.intermediates(); err != nil {
		return rs.sum, err
	}
	if err := rs.checkDerived(); err != nil {
		return rs.sum, err
	}
	if opts.DryRun {
		return rs.sum, rs.dryMerges()
	}
	hook("read")
	// From here on a stop leaves what was committed: it is reported, as
	// --server reports what it applied before it stopped.
	rs.sum.Began = true
	if err := rs.commit(); err != nil {
		return rs.sum, err
	}
	hook("committed")
	return rs.sum, rs.runDerived()
}

// report gives the report of every mailbox of the dump to
// Options.Report, or appends it to the Summary.
func (rs *restorer) report() error {
	hook("report")
	for h := range rs.boxes.all() {
		if h.implicit {
			continue
		}
		b, err := spill.Peek(rs.parked, h)
		if err != nil {
			return err
		}
		if rs.opts.Report != nil {
			rs.opts.Report(rs.sum, b.res)
		} else {
			rs.sum.Mailboxes = append(rs.sum.Mailboxes, b.res)
		}
	}
	return nil
}

// phaseHook, when set (by tests), is called as a run passes each phase,
// to measure what it holds there.
var phaseHook func(phase string)

func hook(phase string) {
	if phaseHook != nil {
		phaseHook(phase)
	}
}

// restorer holds the state of one run.
type restorer struct {
	ctx   context.Context
	spool *partition.Spool
	cfg   *partition.Config
	opts  Options
	owner partition.Owner
	users *usermap.Map
	tools cyrustool.Runner // Cyrus's programs, as the owner

	missingTools map[string]bool // Cyrus programs not found: warned already
	sum          *Summary

	stages    map[string]*stage // by partition, or metaStageKey and a root
	stageList []*stage          // by stage.id-1
	msgs      *guidtable.Table  // stagedMsg by GUID: see stage.go
	lastWhere struct {          // the box where last looked up, and its dir
		id  uint32
		dir string
	}
	boxes  boxList               // handles; their data is parked (park.go)
	extras map[uint32]*boxExtra  // by box id: the boxes replaced or merged
	parked *spill.Store[boxData] // the boxes' data
	// keys maps (park.go) each target name being restored to its box
	// (spill.KeyName), each uniqueid of the dump to its box (spill.KeySrcID), and
	// marks the uniqueids given out in this run (spill.KeyUsed).
	keys               *spill.Names
	dumpcheck.UserData // the APPLY QUOTA, SUB and SEEN lines
	policy             *dumpcheck.Dump
	counts             dumpfile.Counts // what was read, to compare with the trailer
	buf                []byte          // see copyBuf
	spare              builderBufs     // see builderBufs

	ids     *msgsel.IDMatcher // the messages whose Message-ID is selected
	into    *box              // the box restored under Options.Into
	uidMaps msgsel.UIDMaps    // the run's finished UID maps (box.uids)

	// numbered is the last MODSEQ a replace of this run numbered its
	// changes with above a modseq counter, and that counter's key
	// (mboxname.ModseqCounterKey): the next replace of the same owner
	// numbers above it, as nothing is reserved before the commit. One
	// owner's mailboxes follow each other in a dump.
	numbered numbered

	// pipe is the writers of the read phase (pipeline.go), nil outside
	// it; spot is the command being read, for its operations' errors.
	pipe *pipeline
	spot *dumpSpot
	// held: the message files read into the pipeline's buffers and not
	// written yet (pipeline.go, "Held messages").
	held heldSet
}

// numbered is a MODSEQ given under one modseq counter (restorer.numbered).
type numbered struct {
	key    string
	modseq uint64
}

func newRestorer(ctx context.Context, spool *partition.Spool, opts Options) (*restorer, error) {
	users, err := usermap.New(opts.MapUsers, spool.UserInbox)
	if err != nil {
		return nil, err
	}
	if opts.Partition != "" {
		if _, ok := spool.Config.Partitions[opts.Partition]; !ok {
			return nil, fmt.Errorf("--partition %s: %w", opts.Partition, ErrPartition)
		}
	}
	owner := partition.CyrusOwner()
	if opts.Owner != nil {
		owner = *opts.Owner
	}
	rs := &restorer{
		ctx: ctx, spool: spool, cfg: spool.Config, opts: opts, owner: owner, users: users,
		tools:  cyrustool.Runner{Dir: opts.CyrusBin, Conf: spool.Config.Path, Owner: owner},
		sum:    &Summary{},
		stages: make(map[string]*stage),
		extras: make(map[uint32]*boxExtra),
		msgs:   guidtable.New(guidtable.Options{ValueSize: stagedMsgSize}),
		keys:   spill.NewNames(),
		policy: dumpcheck.NewDump(),
		ids:    opts.Messages.NewIDMatcher(),
	}
	rs.parked = spill.NewStore(func(d *boxData, e *spill.Enc) { d.encode(e, rs) },
		func(d *boxData, dec *spill.Dec) { d.decode(dec, rs) })
	return rs, nil
}

func (rs *restorer) problem(mailbox string, err error) {
	rs.sum.Problems = append(rs.sum.Problems, Problem{Item: mailbox, Err: err})
}

func (rs *restorer) progress() {
	if rs.opts.Progress != nil {
		rs.opts.Progress(Progress{Mailboxes: int64(rs.boxes.len()), Messages: rs.sum.Messages, Bytes: rs.sum.Bytes})
	}
}

// cleanup removes the staging directories, whatever happened.
func (rs *restorer) cleanup() {
	for _, st := range rs.stages {
		st.remove()
	}
	rs.msgs.Close()
	rs.UserData.Close()
	rs.closeMerges()
	rs.uidMaps.Close()
	rs.keys.Close()
	rs.parked.Close()
	rs.policy.Close()
}

// read is phase one: the whole dump into the staging area, checked.
func (rs *restorer) read(r io.Reader) (err error) {
	if !rs.opts.DryRun && !noPipeline {
		rs.pipe = newPipeline(rs.ctx)
		defer func() {
			// Joined on every path, before cleanup removes the staging
			// directories. A writer's error comes from earlier in the
			// dump than the parser's, so it is the one reported.
			if perr := rs.pipe.finish(err != nil); perr != nil {
				err = perr
			}
			rs.pipe, rs.spot, rs.held = nil, nil, heldSet{}
		}()
	}
	d, err := dumpcheck.NewReaderWith(r, dumpfile.ReaderOptions{Unsealed: rs.opts.Unsealed})
	if err != nil {
		return fmt.Errorf("reading dump: %w", err)
	}
	defer d.Close()
	if v := d.Header().IndexVersion; v > partition.MaxIndexVersion {
		return fmt.Errorf("%w: the dump was made from cyrus.index version %d; this mbtool writes versions up to %d (Cyrus 3.6)",
			ErrIndexVersion, v, partition.MaxIndexVersion)
	}
	for {
		if err := rs.ctx.Err(); err != nil {
			return err
		}
		verb, name, off, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading dump: %w", err)
		}
		if rs.pipe != nil {
			rs.spot = &dumpSpot{off: off, verb: verb + " " + name}
		}
		if err := rs.command(d, verb, name); err != nil {
			if pe := (*pipeError)(nil); errors.As(err, &pe) {
				return pe // the writer's, of an earlier command
			}
			return fmt.Errorf("dump offset %d: %s %s: %w", off, verb, name, err)
		}
	}
	// What no mailbox placed goes to msg/, as the other messages.
	if err := rs.writeHeld(); err != nil {
		return err
	}
	tr := d.Trailer()
	rs.sum.Dump = tr.Counts
	if tr.Counts != rs.counts {
		return fmt.Errorf("%w: trailer counts %d mailboxes, %d messages, %d bytes; the dump holds %d, %d, %d",
			ErrDamaged, tr.Mailboxes, tr.Messages, tr.Bytes, rs.counts.Mailboxes, rs.counts.Messages, rs.counts.Bytes)
	}
	return nil
}

func (rs *restorer) command(d *dumpfile.Reader, verb, name string) error {
	if verb != "APPLY" {
		return fmt.Errorf("%w: unknown command", ErrDamaged)
	}
	switch name {
	case "MESSAGE":
		return rs.messages(d)
	case "MAILBOX":
		return rs.mailbox(d)
	}
	if ok, err := rs.Read(d, rs.policy, name); ok || err != nil {
		return err
	}
	return fmt.Errorf("%w: unknown command", ErrDamaged)
}

// timeNow is the clock, for the mtimes Cyrus records.
var timeNow = time.Now
