package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/mbtool/mbtool/usermap"
)

// RestoreOptions control Restore.
type RestoreOptions struct {
	// Partition, if set, is the server partition of every mailbox;
	// otherwise each goes to the partition the dump names.
	Partition string
	// MapUsers renames users (old userid -> new): mailbox names, ACL
	// identifiers, seen and subscription owners, annotation owners.
	MapUsers map[string]string
	// Select, if not nil, restores only the mailboxes it selects, by
	// their names in the dump or as renamed by MapUsers. A term of it that
	// selects nothing is an error (a *mboxname.NoMatchError) before
	// anything is sent.
	Select *mboxname.Selector
	// DryRun checks the dump, asks the server what exists, and reports
	// what would be done; it applies nothing.
	DryRun bool
	// Replace replaces an existing mailbox of the same name in place, by
	// the rules of invariant.Replace (see replace.go). Without it an
	// existing mailbox is left alone: kept if identical to the dump's,
	// else refused.
	Replace bool
	// Undelete makes the restore additive: into a mailbox that exists on
	// the server, the dump's messages it lacks (by GUID) are appended
	// with new UIDs (see undelete.go); nothing is removed.
	Undelete bool
	// Messages, if not empty, restores only the messages it selects.
	Messages *msgsel.Filter
	// Into, if set, restores the one selected mailbox under this name as
	// a new mailbox (usermap's --into rules).
	Into string
	// Progress, if set, is called as the dump is checked and sent.
	Progress func(Progress)
	// Report, if set, is given the report of each mailbox of the dump at
	// the end of a run that connected to the server, in the dump's order,
	// with the summary, whose Problems are complete by then; Mailboxes
	// then stays empty, so that the run holds no report line per mailbox
	// (as restore.Options.Report).
	Report func(*RestoreSummary, MailboxResult)
}

// Phase is what a Progress reports on.
type Phase int

// Phases.
const (
	PhaseCheck Phase = iota + 1 // reading and verifying the dump, offline
	PhaseSend                   // sending it
)

// Progress counts what has been checked or sent so far.
type Progress struct {
	Phase                      Phase
	Mailboxes, Messages, Bytes int64
}

// The result types are package result's, shared with the offline
// restore (package restore).
type (
	// Action is what Restore does, or would do, with one mailbox.
	Action = result.Action
	// MailboxResult reports one mailbox of the dump; Applied reports that
	// the server accepted it, Err why it did not, or the warning it
	// answered with (a checksum mismatch after writing).
	MailboxResult = result.Mailbox
	// Problem is an item that was not applied, or applied with a warning.
	Problem = result.Problem
	// RestoreSummary is what Restore did: Messages and Bytes count the
	// message files sent, Present those the server had already (APPLY
	// RESERVE), Target the server's protocol.
	RestoreSummary = result.Summary
)

// Actions.
const (
	ActionCreate  = result.Create
	ActionReplace = result.Replace
	ActionRefuse  = result.Refuse
	ActionKeep    = result.Keep
	ActionSkip    = result.Skip
	ActionMerge   = result.Merge
)

// Connect opens a session with the server; Restore calls it only once the
// dump has been checked.
type Connect func(ctx context.Context) (*syncproto.Client, error)

// Restore replays the dump in src to a running Cyrus server.
//
// It reads the dump twice. The first pass is offline: every file literal
// is hashed against its GUID, every record and name validated, the trailer
// checked; a dump that fails is refused (ErrDamaged, ErrUnsafeName) before
// connect is called. Then it asks the server which mailboxes exist,
// reserves the messages the server already has (APPLY RESERVE), and in a
// second pass sends the missing message files and the mailboxes, each
// literal checked again as it goes, then seen state, subscriptions and
// quotas. A NO for one mailbox or record is reported in the summary and
// the run goes on; a broken session ends it with an error.
func Restore(ctx context.Context, src io.ReadSeeker, connect Connect, opts RestoreOptions) (_ *RestoreSummary, err error) {
	users, err := usermap.New(opts.MapUsers, mboxname.UserInbox)
	if err != nil {
		return nil, err
	}
	if opts.Partition != "" {
		if err := dumpcheck.CheckPartition(opts.Partition); err != nil {
			return nil, err
		}
	}
	rs := &restorer{opts: opts, users: users, sum: &RestoreSummary{}, ids: opts.Messages.NewIDMatcher()}
	inv, err := rs.check(ctx, src)
	if err != nil {
		return nil, err
	}
	defer inv.Close()
	// The selection was decided on the offline pass (checkMailbox): a
	// term that selects nothing ends the run here, before connecting.
	if err := opts.Select.Err(); err != nil {
		return nil, err
	}
	rs.inv = inv
	hook("checked")
	if opts.Into != "" && rs.into == nil {
		return nil, fmt.Errorf("--into %s: no mailbox of the dump is selected", opts.Into)
	}
	defer func() {
		if rs.names != nil {
			rs.names.Close()
		}
		for _, b := range inv.boxes {
			b.merge.Close()
			b.uids.Close()
		}
		rs.uidMaps.Close()
		rs.guids.close()
	}()
	rs.sum.Dump = inv.trail
	defer func() {
		if opts.Report != nil && err != nil && !rs.sum.Began {
			return // not connected: the caller reports the error only
		}
		for _, h := range inv.boxes {
			b, perr := spill.Peek(inv.parked, h)
			if perr != nil {
				if err == nil {
					err = perr
				}
				return
			}
			if opts.Report != nil {
				opts.Report(rs.sum, b.res)
			} else {
				rs.sum.Mailboxes = append(rs.sum.Mailboxes, b.res)
			}
		}
	}()
	c, err := connect(ctx)
	if err != nil {
		return rs.sum, err
	}
	rs.c = c
	rs.sum.Target, rs.sum.Began = c.Capabilities().Protocol.String(), true
	err = rs.run(ctx, src)
	if cerr := c.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return rs.sum, err
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
	opts  RestoreOptions
	users *usermap.Map
	sum   *RestoreSummary
	inv   *inventory
	c     *syncproto.Client

	known  map[string]bool // partitions the server has
	guids  partGUIDs       // partition -> what the server holds, what to send
	remote map[string]bool // mailbox names that exist on the server
	// names maps the target name of each box of the dump not skipped
	// (the first of each name) to its id, spilling (plan).
	names *spill.Names
	parts []string // target partitions, in order of use
	sent  Progress
	ids   *msgsel.IDMatcher // the messages whose Message-ID is selected
	into  *box              // the box restored under RestoreOptions.Into
	// intoACL is the ACL of the nearest existing ancestor of the --into
	// name that its owner owns, found while planning.
	intoACL      string
	intoACLFound bool
	intoACLDepth int
	src          *source // reads the server's mailboxes (GET FULLMAILBOX)
	// deleted holds what the server's deleted tree keeps of a name
	// (undelete.go).
	deleted map[string][]deletedCopy
	// uidMaps holds the run's finished UID maps (msgsel.UIDMaps).
	uidMaps msgsel.UIDMaps
	// floors holds what GET USER told of the users' modseq counters
	// (counters.go).
	floors map[string]*modseqFloor
}

// source returns the reader of the server's mailboxes, as dump --server
// reads them.
func (rs *restorer) source() *source {
	if rs.src == nil {
		rs.src = &source{c: rs.c}
	}
	return rs.src
}

func (rs *restorer) problem(item string, err error) {
	rs.sum.Problems = append(rs.sum.Problems, Problem{Item: item, Err: err})
}

func (rs *restorer) progress(p Progress) {
	if rs.opts.Progress != nil {
		rs.opts.Progress(p)
	}
}

// run is everything after the check: plan, reserve, send.
func (rs *restorer) run(ctx context.Context, src io.ReadSeeker) error {
	if err := rs.plan(ctx); err != nil {
		return err
	}
	hook("planned")
	if rs.opts.DryRun {
		if err := rs.reserveDry(); err != nil {
			return err
		}
		if err := rs.settleLost(); err != nil {
			return err
		}
		return rs.inv.each(func(b *box) error {
			if b.res.Action == ActionReplace {
				if err := rs.dryReplace(b); err != nil {
					return err
				}
			}
			if b.res.Action == ActionMerge {
				return rs.settleMerge(b, rs.dryMerge(ctx, b))
			}
			return nil
		})
	}
	if err := rs.reserveAll(); err != nil {
		return err
	}
	if err := rs.settleLost(); err != nil {
		return err
	}
	hook("reserved")
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding the dump: %w", err)
	}
	if err := rs.send(ctx, src); err != nil {
		return err
	}
	if err := rs.mergeAll(ctx); err != nil {
		return err
	}
	if err := rs.keptParents(); err != nil {
		return err
	}
	return rs.userData()
}

// partitions returns the target partitions of the boxes to apply, in
// the order of their first mailbox.
func (rs *restorer) partitions() ([]string, error) {
	var out []string
	seen := map[string]bool{}
	err := rs.inv.each(func(b *box) error {
		if writes(b) && !seen[b.mb.Partition] {
			seen[b.mb.Partition] = true
			out = append(out, b.mb.Partition)
		}
		return nil
	})
	return out, err
}

// applies reports whether b is to be sent.
func applies(b *box) bool {
	return (b.res.Action == ActionCreate || b.res.Action == ActionReplace) && b.res.Err == nil
}

// writes reports whether b is to be written: sent whole, or merged into.
func writes(b *box) bool {
	return applies(b) || (b.res.Action == ActionMerge && b.res.Err == nil)
}

// fatal reports whether err ends the run: the session is broken, or the
// server answered BAD (it did not understand what mbtool sent).
func fatal(err error) bool {
	var e *syncproto.Error
	if errors.As(err, &e) {
		return e.Status == "BAD"
	}
	return err != nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
