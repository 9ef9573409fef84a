package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/mbtool/mbtool/usermap"
)

// The additive restore over the protocol (RestoreOptions.Undelete): the
// same decision as offline (msgsel.Appender), applied with one APPLY
// MAILBOX that carries the server's own keys, LAST_UID and HIGHESTMODSEQ
// raised, and only the appended records. sync_server keeps the records
// the list does not name (imap/sync_support.c sync_mailbox_compare_update
// steps over them) and refuses the whole command when its mailbox has a
// higher HIGHESTMODSEQ or LAST_UID than the command says
// (sync_apply_mailbox: "higher modseq on replica"), which is what any
// change since the server's state was read makes it: a delivery in
// between is never overwritten, and mbtool reads the state again and
// retries. The checksums are sent as 0, which Cyrus compares as matching
// (mailbox_crceq), so a refusal always means nothing was written.

// maxMergeTries bounds the attempts of a merge that races with changes
// (a stream of deliveries); between two, mbtool waits a little longer
// each time, up to mergeBackoffMax, so that a burst can pass.
const (
	maxMergeTries   = 30
	mergeBackoff    = 50 * time.Millisecond
	mergeBackoffMax = 2 * time.Second
)

// spillMailbox reads the records of a box to merge from the dump again
// and keeps those the merge brings back (mergeable).
func (rs *restorer) spillMailbox(r *dlist.Reader, b *box) error {
	records, err := rs.dumpRecords(r, b)
	if err != nil {
		return err
	}
	b.merge = &msgsel.Spill{}
	for {
		rec, it, err := records()
		if err != nil || rec == nil {
			return err
		}
		if ok, err := rs.mergeable(b, it); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := b.merge.Add(rec); err != nil {
			return fmt.Errorf("mailbox %s: %w", b.mb.Name, err)
		}
	}
}

// mergeable says whether the merge of b brings back the record of the
// dump it (msgsel.Candidate: selected, not expunged, with a file the dump
// or the server has), and reports one left out for want of its file: the
// same for the real run and the dry run, rs.guids knowing what the
// server holds (reserveAll, or reserveDry for a dry run).
func (rs *restorer) mergeable(b *box, it item) (bool, error) {
	file := it.inDump
	if !file && !it.unselected && !it.expunged {
		held, err := rs.guids.held(b.mb.Partition, it.guid)
		if err != nil {
			return false, err
		}
		file = held
	}
	ok, missing := msgsel.Candidate{UID: it.uid, GUID: it.guid, Unselected: it.unselected, Expunged: it.expunged,
		File: file, Where: "the dump or on the server"}.Merges()
	if missing != nil {
		rs.problem(b.mb.Name, missing)
	}
	return ok, nil
}

// dryMerge says, for a dry run, how many messages the merge of b would
// add and how many the server's mailbox has already: the same decisions
// as the real run's (mergeTarget, mergeable, msgsel.Appender), against
// the server's mailbox read with GET FULLMAILBOX, the dump's side from
// b's items.
func (rs *restorer) dryMerge(ctx context.Context, b *box) error {
	cur, app, err := rs.mergeTarget(ctx, b)
	if err != nil {
		return err
	}
	defer cur.Close()
	defer app.Close()
	items := rs.inv.items.read(b.items)
	for {
		it, ok, err := items.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if ok, err := rs.mergeable(b, it); err != nil {
			return err
		} else if !ok {
			continue
		}
		if _, err := app.Next(&syncrec.Record{UID: it.uid, GUID: it.guid}); err != nil {
			return err
		}
	}
	b.res.Added, b.res.AlreadyThere = app.Added, app.Present
	return nil
}

// mergeTarget reads the server's mailbox of b with GET FULLMAILBOX and
// starts the merge into it (msgsel.NewMerge, which may refuse it) with
// the GUIDs it holds: the same for the real run (mergeOnce) and the dry
// run.
func (rs *restorer) mergeTarget(ctx context.Context, b *box) (*remoteMailbox, *msgsel.Appender, error) {
	// A source of its own each time: rs.source()'s policy refuses a
	// mailbox read a second time as listed twice.
	cur, err := (&source{c: rs.c}).mailbox(b.mb.Name)
	if err != nil {
		return nil, nil, err
	}
	keys := cur.Keys()
	app, err := msgsel.NewMerge(msgsel.Target{Planned: b.mb.UniqueID, UniqueID: keys.UniqueID,
		LastUID: keys.LastUID, HighestModseq: keys.HighestModseq, Counter: rs.counter(b.mb.Name)}, time.Now().Unix())
	if err == nil {
		if err = serverHas(ctx, cur, app); err != nil {
			app.Close()
		}
	}
	if err != nil {
		cur.Close()
		return nil, nil, err
	}
	return cur, app, nil
}

// serverHas gives app the GUIDs of the server's mailbox cur (its records
// not expunged): what a merge leaves out.
func serverHas(ctx context.Context, cur *remoteMailbox, app *msgsel.Appender) error {
	next, err := cur.Records(ctx)
	if err != nil {
		return err
	}
	for {
		r, err := next()
		if err != nil || r == nil {
			return err
		}
		if !r.Expunged() {
			if err := app.Have(r.GUID); err != nil {
				return err
			}
		}
	}
}

// mergeAll applies the merges, after every message file was sent.
func (rs *restorer) mergeAll(ctx context.Context) error {
	for _, b := range rs.inv.boxes {
		if b.merge == nil {
			continue
		}
		if err := rs.inv.parked.Use(b, func() error { return rs.mergeOne(ctx, b) }); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) mergeOne(ctx context.Context, b *box) error {
	if b.res.Action != ActionMerge {
		return nil
	}
	// One with nothing of the dump to add reads the server's mailbox
	// all the same, as the dry run does: a mailbox changed since
	// planning is refused, not reported merged.
	if err := ctx.Err(); err != nil {
		return err
	}
	return rs.settleMerge(b, rs.mergeBox(ctx, b))
}

// settleMerge takes the outcome err of the merge of b, in the real run
// or the dry run alike: an error that refuses b only (the mailbox kept
// changing or is gone, msgsel.NewMerge refused it, the server answered
// NO) is b's problem and the run goes on; any other ends the run.
func (rs *restorer) settleMerge(b *box, err error) error {
	var refused *msgsel.RefusedError
	if fatal(err) && !errors.Is(err, errMergeRaced) && !errors.Is(err, ErrNoMailbox) && !errors.As(err, &refused) {
		return err
	}
	if err != nil {
		b.res.Err = err
		rs.problem(b.mb.Name, err)
	}
	return nil
}

var errMergeRaced = errors.New("the mailbox kept changing on the server while it was merged into; run the restore again")

// mergeBox reads the server's mailbox and sends the records it lacks,
// again from a fresh state when the server refuses them because the
// mailbox changed meanwhile.
func (rs *restorer) mergeBox(ctx context.Context, b *box) error {
	wait := mergeBackoff
	for try := 0; try < maxMergeTries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, mergeBackoffMax)
		}
		done, err := rs.mergeOnce(ctx, b)
		if err != nil || done {
			return err
		}
	}
	return errMergeRaced
}

// mergeOnce makes one attempt; false without an error: the server's
// mailbox changed since it was read.
func (rs *restorer) mergeOnce(ctx context.Context, b *box) (bool, error) {
	cur, app, err := rs.mergeTarget(ctx, b)
	if err != nil {
		return false, err
	}
	defer cur.Close()
	defer app.Close()
	keys := cur.Keys()
	uids := rs.uidMaps.New()
	app.Map = uids
	defer func() {
		if b.uids != uids {
			uids.Close()
		}
	}()
	// The records to append, numbered, into a second spill: their count
	// (LAST_UID) comes before them in the command.
	out := &msgsel.Spill{}
	defer out.Close()
	spilled, err := b.merge.Records()
	if err != nil {
		return false, err
	}
	for {
		r, err := spilled()
		if err != nil {
			return false, err
		}
		if r == nil {
			break
		}
		if ok, err := app.Next(r); err != nil {
			return false, err
		} else if ok {
			if err := out.Add(r); err != nil {
				return false, err
			}
		}
	}
	b.res.Added, b.res.AlreadyThere = app.Added, app.Present
	if app.Added == 0 {
		b.res.Applied = true
		return true, nil
	}
	appended, err := out.Records()
	if err != nil {
		return false, err
	}
	mb := *keys.Replication()
	mb.LastUID, mb.HighestModseq = app.LastUID(), app.Modseq()
	mb.SyncCRC, mb.SyncCRCAnnot = 0, 0
	mb.LastAppendDate = time.Now().Unix()
	err = rs.c.Do("APPLY MAILBOX "+mb.Name, func(w *dlist.Writer) error {
		return syncrec.WriteMailbox(w, "APPLY", &mb, appended)
	}, nil)
	switch {
	case err == nil:
		b.res.Applied = true
		rs.counted(mb.Name, mb.HighestModseq)
		b.uids.Close()
		b.uids = uids
		return true, nil
	case syncproto.CodeOf(err) == syncproto.CodeChecksum:
		b.res.Added, b.res.AlreadyThere = 0, 0
		return false, nil // changed meanwhile: nothing was written
	}
	return false, err
}

// intoName renames a box of the dump to RestoreOptions.Into: a new
// uniqueid and UIDVALIDITY, no SPECIAL-USE; its ACL is settled by plan.
func (rs *restorer) intoName(b *box) error {
	if rs.into != nil {
		return fmt.Errorf("--into %s: the selection holds more than one mailbox (%s and %s); select one with --mailbox",
			rs.opts.Into, rs.into.src.Name, b.src.Name)
	}
	if err := dumpcheck.CheckName("--into", rs.opts.Into); err != nil {
		return err
	}
	rs.into, b.pinned = b, true
	b.mb.Name, b.res.Name = rs.opts.Into, rs.opts.Into
	id := newUniqueID(b.src.UniqueID, rs.opts.Into, 1)
	b.mb.UniqueID, b.res.UniqueID, b.res.IDFrom = id, id, result.IDNew
	b.mb.UIDValidity = usermap.IntoUIDValidity(b.src.UIDValidity, time.Now())
	kept := b.mb.Annotations[:0]
	for _, a := range b.mb.Annotations {
		if !usermap.DropInto(a.Entry) {
			kept = append(kept, a)
		}
	}
	b.mb.Annotations = kept
	return nil
}

// noteIntoParent remembers the ACL of mb, one of the server's mailboxes,
// when it is the nearest ancestor of the --into name seen so far that the
// same user owns.
func (rs *restorer) noteIntoParent(mb *syncrec.Mailbox) {
	b := rs.into
	if b == nil || !strings.HasPrefix(b.mb.Name, mb.Name+".") || mboxname.Owner(mb.Name) != mboxname.Owner(b.mb.Name) || mboxname.Owner(mb.Name) == "" {
		return
	}
	if d := strings.Count(mb.Name, "."); !rs.intoACLFound || d > rs.intoACLDepth {
		rs.intoACL, rs.intoACLFound, rs.intoACLDepth = mb.ACL, true, d
	}
}

// deletedCopy is the numbering of a mailbox in the server's deleted tree
// (delete_mode: delayed).
type deletedCopy struct {
	uidValidity, lastUID uint32
	modseq               uint64
}

// noteDeletedCopy remembers mb, one of the server's mailboxes, if it is
// in the deleted tree, by the name it had.
func (rs *restorer) noteDeletedCopy(mb *syncrec.Mailbox) {
	orig, ok := mboxname.DeletedUnder(mb.Name, "")
	if !ok {
		return
	}
	if rs.deleted == nil {
		rs.deleted = make(map[string][]deletedCopy)
	}
	rs.deleted[orig] = append(rs.deleted[orig], deletedCopy{mb.UIDValidity, mb.LastUID, mb.HighestModseq})
}

// continueDeleted makes a mailbox created under a name whose earlier
// incarnation the server keeps in its deleted tree with the same
// UIDVALIDITY continue that one's numbering, as the offline restore does
// (restore/deletedcopy.go): no UID a client saw in it names another
// message now.
func (rs *restorer) continueDeleted(b *box) {
	for _, d := range rs.deleted[b.mb.Name] {
		if d.uidValidity == b.mb.UIDValidity {
			b.mb.LastUID = max(b.mb.LastUID, d.lastUID)
			b.mb.HighestModseq = max(b.mb.HighestModseq, d.modseq)
		}
	}
}
