package restore

import (
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/invariant"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
)

// box is one mailbox of the dump and what becomes of it: a handle that
// stays in memory for the whole run, and its data, in memory only while
// it is in use and parked in a spill file otherwise (park.go).
// The handles live in restorer.boxes (a boxList, park.go), 24 bytes
// each; what only a replaced or merged box has besides is in
// restorer.extras (boxExtra).
type box struct {
	*boxData        // nil while parked
	ref      int64  // where the data is parked; -1 before it first is
	id       uint32 // its place in restorer.boxes, from 1
	implicit bool   // a missing parent created empty (intermediate.go), not reported
	done     bool   // registered
	placed   bool   // renamed into place (commitGroup), registered or not
	kept     bool   // left as it is: the target has it as dumped (decideKeep)
}

// boxExtra is what a box replaced or merged keeps in memory besides its
// handle, for the whole run (restorer.extras).
type boxExtra struct {
	merge *mergeState // the target an additive restore merges into
	// uids, for a replace or a merge, maps the dump's UIDs to the
	// target's, for other users' seen records (msgsel.UIDMap); nil when
	// the dump's stand.
	uids *msgsel.UIDMap
}

// extra returns b's boxExtra, made if it has none.
func (rs *restorer) extra(b *box) *boxExtra {
	x := rs.extras[b.id]
	if x == nil {
		x = &boxExtra{}
		rs.extras[b.id] = x
	}
	return x
}

// mergeOf returns the merge b is, nil if it is none.
func (rs *restorer) mergeOf(b *box) *mergeState {
	if x := rs.extras[b.id]; x != nil {
		return x.merge
	}
	return nil
}

// uidsOf returns b's UID map (boxExtra.uids), nil if it has none.
func (rs *restorer) uidsOf(b *box) *msgsel.UIDMap {
	if x := rs.extras[b.id]; x != nil {
		return x.uids
	}
	return nil
}

// boxData is what a box knows while it is not parked.
type boxData struct {
	res MailboxResult
	src srcKeys // the dump's mailbox-level keys that outlive its line

	// In the target.
	name, owner, uniqueid, partition, typ string
	acl                                   []partition.ACLEntry
	annots                                []syncrec.Annotation // mailbox level, users mapped
	replaced                              *partition.Entry     // the entry --replace replaces
	fresh                                 bool                 // never the dump's uniqueid (Options.Into)
	children                              []uint32             // of an implicit box: the ids of the created boxes it is a parent of
	quotaRoot                             string
	// metaWritten: cyrus.header and the index header are written with
	// quotaRoot, and flushed once commit has synced (writeAllMeta).
	metaWritten bool

	// Built in the staging area.
	st    *stage
	dir   string
	sides []side                // its metadata directories apart from dir (metapartitions)
	hdr   partition.IndexHeader // all but HeaderFileCRC
	flags []string              // user flag names by slot

	// An existing mailbox compared with the dump's (without --replace):
	// the target's snapshot, read while the dump's records stream by.
	snap *partition.Mailbox
	cmp  *invariant.Compare
	tgt  invariant.State

	// A replace with `conversations: yes`: the owner's modseq counter its
	// changes were numbered above (as read when the target was opened, or
	// what this run numbered for an earlier mailbox of the owner), and the
	// MODSEQ it reserves at its commit (0: none; commit.go precheck).
	counter, reserve uint64
}

// srcKeys are the few mailbox-level keys of the dump that a box needs
// after its APPLY MAILBOX line: every box lives until the commit, so it
// keeps these rather than the whole decoded syncrec.Mailbox (ACL,
// annotations, user flags and the rest are used while the line is read).
type srcKeys struct {
	UniqueID, Name              string
	UIDValidity                 uint32
	CreatedModseq, FolderModseq uint64
}

// mailbox reads one APPLY MAILBOX: it decides what to do with the mailbox
// and, unless it is refused or skipped, builds it in the staging area
// record by record; then it parks the box until the commit.
func (rs *restorer) mailbox(d *dumpfile.Reader) error {
	b, err := rs.readMailbox(d)
	if err != nil {
		return err
	}
	return rs.parked.Park(b)
}

func (rs *restorer) readMailbox(d *dumpfile.Reader) (*box, error) {
	mr, err := syncrec.OpenMailbox(d.DL())
	if err != nil {
		return nil, err
	}
	mb := mr.Mailbox()
	chk, err := rs.policy.Mailbox(mb)
	if err != nil {
		return nil, err
	}
	// The dump's HIGHESTMODSEQ, before the plan raises it (a deleted copy
	// continued): the rule of both restores numbers the records it
	// expunges from it (syncrec.LoseFile), as --server does.
	dumpedModseq := mb.HighestModseq
	b, err := rs.plan(mb)
	if err != nil {
		return nil, err
	}
	if b.snap != nil {
		defer b.closeSnap()
	}
	crc := syncrec.NewCRC() // of the records as this restore would write them
	var lostN int64         // records expunged by syncrec.LoseFile
	var bl *builder
	if !rs.opts.DryRun && (b.res.Action == ActionCreate || b.res.Action == ActionReplace) {
		if bl, err = rs.newBuilder(b, mb); err != nil {
			return nil, err
		}
		defer bl.close()
	}
	var rep *invariant.Replace
	if b.res.Action == ActionReplace && b.snap != nil {
		if rep, err = rs.newReplace(b, mb, bl); err != nil {
			return nil, err
		}
		defer rep.Close()
	}
	for {
		r, err := mr.Next()
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		if r == nil {
			break
		}
		if err := chk.Record(r); err != nil {
			return nil, err
		}
		if err := rs.checkSize(r); err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		if b.res.Action == ActionCreate || b.res.Action == ActionReplace || b.res.Action == ActionMerge {
			if ok, err := rs.selectRecord(b, r); err != nil {
				return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
			} else if !ok {
				b.res.Unselected++
				continue
			}
		}
		if rs.mergeOf(b) != nil { // a dry run too: it counts what would be added
			if err := rs.spillRecord(b, r); err != nil {
				return nil, err
			}
		} else if lost, err := rs.loseFile(b, r, dumpedModseq); err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
		} else if lost {
			// The expunge is a change above every one of the dump.
			mb.HighestModseq = max(mb.HighestModseq, syncrec.LostModseq(dumpedModseq))
			lostN++
		}
		b.res.Records++
		if !r.Expunged() {
			b.res.Messages++
		}
		if rep != nil {
			if err := rep.Add(r); err != nil {
				return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
			}
		} else if bl != nil {
			if err := bl.add(r); err != nil {
				return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
			}
		} else if b.cmp != nil {
			rs.users.Annotations(r.Annotations)
			crc.Add(r)
			b.cmp.Add(invariant.Record{UID: r.UID, GUID: r.GUID, Modseq: r.Modseq, Expunged: r.Expunged()})
		}
	}
	if err := chk.End(); err != nil {
		return nil, err
	}
	if b.cmp != nil {
		if err := rs.decideKeep(b, mb, crc); err != nil {
			return nil, err
		}
		if b.kept && lostN > 0 {
			// Reported as --server reports it (remote's differences).
			rs.problem(b.name, &syncrec.LostKeptError{Records: lostN})
		}
	}
	if rep != nil {
		if err := rs.endReplace(b, rep, bl); err != nil {
			return nil, err
		}
		b.closeSnap()
	}
	if bl != nil {
		if err := bl.finish(); err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
	}
	if err := d.EndLine(); err != nil {
		return nil, err
	}
	rs.counts.Mailboxes++
	rs.progress()
	return b, nil
}

// plan validates the mailbox-level keys and decides the mailbox's fate:
// its name, partition and uniqueid in the target, and whether it is
// created, replaced, refused or skipped.
func (rs *restorer) plan(mb *syncrec.Mailbox) (*box, error) {
	if strings.ContainsAny(mb.MboxType, "dirmzl") {
		return nil, fmt.Errorf("%w: mailbox %s of type %q is not a mailbox with local files", ErrDamaged, mb.Name, mb.MboxType)
	}
	part := rs.opts.Partition
	if part == "" {
		part = mb.Partition
		if _, ok := rs.cfg.Partitions[part]; !ok {
			return nil, fmt.Errorf("mailbox %s: partition %q: %w", mb.Name, mb.Partition, ErrPartition)
		}
	}
	acl := partition.ParseACL(mb.ACL)
	name := rs.users.Name(mb.Name)
	b := rs.boxes.add(&boxData{
		src: srcKeys{UniqueID: mb.UniqueID, Name: mb.Name, UIDValidity: mb.UIDValidity,
			CreatedModseq: mb.CreatedModseq, FolderModseq: mb.FolderModseq},
		name:      name,
		owner:     rs.cfg.NameOwner(name),
		partition: part,
		acl:       rs.users.ACL(acl),
		typ:       mb.MboxType,
	})
	if b.typ == "" {
		b.typ = "e"
	}
	if rs.cfg.LegacyDirs {
		b.typ += "l"
	}
	for _, a := range mb.Annotations {
		a.UserID = rs.users.User(a.UserID)
		b.annots = append(b.annots, a)
	}
	b.res = MailboxResult{Name: name, Source: mb.Name, Partition: part}
	// The policy refused a uniqueid listed twice.
	if err := rs.setKey(spill.KeySrcID, mb.UniqueID, b); err != nil {
		return nil, err
	}

	if err := dumpcheck.CheckName("mailbox name", name); err != nil {
		return nil, err
	}
	if !rs.opts.Select.Match(mb.Name, name) {
		b.res.Action, b.res.Reason = ActionSkip, "not selected"
		return b, nil
	}
	if rs.opts.Into != "" {
		if err := rs.planInto(b, mb); err != nil {
			return nil, err
		}
		name = b.name
	}
	if other, err := rs.named(name); err != nil {
		return nil, err
	} else if other != nil {
		b.res.Action, b.res.Reason = ActionRefuse, "the dump holds another mailbox of this name"
		return b, nil
	}
	// What the target's mailboxes.db says of the mailbox, read under one
	// hold of its shared lock (lookTarget); what takes other locks
	// (a snapshot of the target, the deleted copies' index headers)
	// comes after it is released.
	var look targetLook
	err := rs.spool.ReadMailboxes(func(v *partition.MailboxesView) error {
		var err error
		look, err = rs.lookTarget(v, b, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	switch look.next {
	case nextDone:
		return b, nil
	case nextMerge:
		return rs.planMerge(b, look.cur)
	case nextCompare:
		rs.compareWith(b, look.cur)
		return b, nil
	}
	if b.res.Action == ActionCreate && !b.fresh {
		rs.continueDeleted(b, mb, look.copies)
	}
	if b.replaced != nil {
		if err := rs.openTarget(b, *b.replaced); err != nil {
			b.res.Action = ActionRefuse
			b.res.Reason = fmt.Sprintf("exists in the target and cannot be read (%v); it cannot be replaced without knowing its UIDs and MODSEQs", err)
			return b, nil
		}
		counter, err := rs.spool.ReadModseqCounter(b.replaced.Name)
		if err != nil {
			b.res.Action = ActionRefuse
			b.res.Reason = fmt.Sprintf("its owner's modseq counter cannot be read (%v); it cannot be replaced without numbering its changes above it", err)
			return b, nil
		}
		b.counter = counter
	}
	return b, rs.setKey(spill.KeyName, name, b)
}

// planNext is what plan does once lookTarget has read mailboxes.db.
type planNext int

const (
	nextDone    planNext = iota // refused: b says why
	nextMerge                   // an additive restore into cur (planMerge)
	nextCompare                 // cur is compared with the dump's (compareWith)
	nextBuild                   // created or replaced (b.replaced): b has its uniqueid
)

// targetLook is what lookTarget read of mailboxes.db for plan.
type targetLook struct {
	next planNext
	cur  partition.Entry // the target's entry of the name, if one counts (not a tombstone or placeholder)
	// copies: for a mailbox to create under the dump's uniqueid, the
	// real mailboxes of the name's deleted tree (continueDeleted).
	copies []partition.Entry
}

// lookTarget makes the part of plan's decision that mailboxes.db answers,
// in v, one hold of its shared lock for all of a mailbox's lookups (they
// were three holds, each two fcntl calls and two stats): the target's
// entry of name, and for a mailbox to create or replace its uniqueid
// (chooseID) and, created under the dump's, the deleted copies it
// continues. It takes no other lock (mailboxes.db is a leaf lock:
// docs/cyrus/locks.md §3); what needs one is left to plan.
func (rs *restorer) lookTarget(v *partition.MailboxesView, b *box, name string) (targetLook, error) {
	cur, exists, err := v.Lookup(name)
	if err != nil {
		return targetLook{}, fmt.Errorf("looking up %s in the target: %w", name, err)
	}
	if exists && (cur.Deleted() || cur.Intermediate()) {
		exists = false // a tombstone or placeholder that Cyrus's create overwrites too
	}
	look := targetLook{cur: cur}
	switch {
	case exists && rs.opts.Undelete:
		look.next = nextMerge
		return look, nil
	case exists && (cur.Remote() || cur.Moving() || cur.Partition == ""):
		b.res.Action, b.res.Reason = ActionRefuse, fmt.Sprintf("exists in the target as type %q", cur.Type)
		return look, nil
	case exists && !rs.opts.Replace:
		look.next = nextCompare
		return look, nil
	case exists:
		b.res.Action = ActionReplace
		b.replaced = &cur
	default:
		b.res.Action = ActionCreate
	}
	if why, err := rs.cannotWrite(b); err != nil || why != "" {
		b.res.Action, b.res.Reason = ActionRefuse, why
		return look, err
	}
	if err := rs.chooseID(v, b); err != nil {
		return targetLook{}, err
	}
	if b.res.Action == ActionCreate && !b.fresh {
		if look.copies, err = v.DeletedUnder(b.name); err != nil {
			return targetLook{}, fmt.Errorf("looking up the deleted copies of %s in the target: %w", b.name, err)
		}
	}
	look.next = nextBuild
	return look, nil
}

// openTarget takes a snapshot of the existing mailbox cur, under Cyrus's
// shared lock, for b to be compared with it or to replace it.
func (rs *restorer) openTarget(b *box, cur partition.Entry) error {
	snap, err := rs.spool.OpenMailbox(rs.ctx, cur)
	if err != nil {
		return err
	}
	b.snap = snap
	h := snap.Index
	b.tgt = invariant.State{UIDValidity: h.UIDValidity, LastUID: h.LastUID, HighestModseq: h.HighestModseq,
		SyncCRC: h.SyncCRC, SyncCRCAnnot: h.SyncCRCAnnot}
	return nil
}

// targetRecords returns the records of b's target snapshot one by one;
// at is set to the last one returned.
func targetRecords(b *box, at *partition.Record) func() (*invariant.Record, error) {
	next := b.snap.RecordIter()
	return func() (*invariant.Record, error) {
		r, ok, err := next()
		if !ok || err != nil {
			return nil, err
		}
		*at = r
		return &invariant.Record{UID: r.UID, GUID: r.GUID, Modseq: r.Modseq, Expunged: r.Expunged(), Size: r.Size,
			InternalDate: int64(r.InternalDate), LastUpdated: int64(r.LastUpdated)}, nil
	}
}

// newReplace starts the replace of b's target mailbox (docs/restore.md,
// "Invariants"): the records to write come out through bl, or are only
// counted in a dry run. With `conversations: yes` its changes are
// numbered above the owner's modseq counter too, as read when the target
// was opened, and above what this run numbered for the owner's earlier
// mailboxes (rs.numbered); nothing is written to the counters file
// before the commit, which reserves the MODSEQ (precheck), so a run that
// fails before it leaves the file as it was.
func (rs *restorer) newReplace(b *box, mb *syncrec.Mailbox, bl *builder) (*invariant.Replace, error) {
	var at partition.Record
	emit := func(r *syncrec.Record, file bool) error { return nil }
	if bl != nil {
		emit = bl.addRecord
	}
	dump := invariant.State{UIDValidity: mb.UIDValidity, LastUID: mb.LastUID, HighestModseq: mb.HighestModseq}
	if k := mboxname.ModseqCounterKey(b.name); rs.numbered.key == k {
		b.counter = max(b.counter, rs.numbered.modseq)
	}
	rep := invariant.NewReplace(dump, b.tgt, targetRecords(b, &at), timeNow().Unix(), emit)
	rep.Above(b.counter)
	if bl != nil {
		x := rs.extra(b)
		x.uids.Close() // of an earlier attempt
		x.uids = rs.uidMaps.New()
		rep.Map = x.uids
	}
	return rep, nil
}

// endReplace completes the replace: the mailbox keeps the target's
// UIDVALIDITY and its LAST_UID and HIGHESTMODSEQ only go up.
func (rs *restorer) endReplace(b *box, rep *invariant.Replace, bl *builder) error {
	if err := rep.End(); err != nil {
		return fmt.Errorf("mailbox %s: %w", b.name, err)
	}
	b.src.UIDValidity = b.tgt.UIDValidity
	b.res.Reason = rep.Summary(b.tgt.UIDValidity)
	if hm := rep.HighestModseq(); hm > b.counter && rs.cfg.Switch("conversations", false) {
		b.reserve = hm
		rs.numbered = numbered{mboxname.ModseqCounterKey(b.name), hm}
	}
	if bl != nil {
		bl.h.UIDValidity = b.tgt.UIDValidity
		bl.h.LastUID = rep.LastUID()
		bl.h.HighestModseq = rep.HighestModseq()
		bl.h.DeletedModseq = max(bl.h.DeletedModseq, b.snap.Index.DeletedModseq)
		bl.h.RecentUID = min(bl.h.RecentUID, bl.h.LastUID)
	}
	return nil
}

// cannotWrite says why an offline restore must refuse b, whatever the
// target holds, "" when it need not; a dry run reports the same refusal.
func (rs *restorer) cannotWrite(b *box) (string, error) {
	if strings.ContainsRune(b.typ, 'f') { // MBTYPE_SIEVE (imap/mboxlist.c)
		return "a #sieve mailbox: Cyrus 3.6 also keeps its scripts as rows of the user's dav.db and as " +
			"compiled bytecode in sievedir, which offline restore does not write (the filters would silently " +
			"stop); restore it with restore --server, whose sync_server writes all three", nil
	}
	return "", nil
}

// candidateID returns the k-th uniqueid to try for b: the dump's first,
// then fresh ones in Debian's style (24 characters of [0-9a-z]). The fresh
// ones are derived from the dump's uniqueid and the target name, so that a
// second run after a killed one recognises the mailboxes the first one
// registered.
func candidateID(b *box, k int) string {
	if k == 0 {
		return b.src.UniqueID
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("mbtool restore\x00%s\x00%s\x00%d", b.src.UniqueID, b.name, k)))
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	id := make([]byte, 24)
	for i := range id {
		id[i] = alphabet[int(h[i])%len(alphabet)]
	}
	return string(id)
}

// maxCandidates bounds the uniqueids tried for one mailbox.
const maxCandidates = 64

// chooseID keeps the dump's uniqueid unless the target uses it or this
// run gave it out; a replaced mailbox keeps its own, so that other users'
// seen state in the target stays attached to it.
func (rs *restorer) chooseID(v *partition.MailboxesView, b *box) error {
	id := ""
	if r := b.replaced; r != nil && r.UniqueID != "" {
		if _, used, err := rs.getKey(spill.KeyUsed, r.UniqueID); err != nil {
			return err
		} else if !used {
			id = r.UniqueID
		}
	}
	k0 := 0
	if b.fresh {
		k0 = 1
	}
	for k := k0; id == "" && k < maxCandidates; k++ {
		c := candidateID(b, k)
		if _, used, err := rs.getKey(spill.KeyUsed, c); err != nil {
			return err
		} else if used {
			continue
		}
		inUse, err := v.IDExists(c)
		if err != nil {
			return fmt.Errorf("looking up uniqueid %s in the target: %w", c, err)
		}
		if !inUse {
			id = c
		}
	}
	if id == "" {
		id = newUniqueID()
	}
	if err := rs.setKey(spill.KeyUsed, id, nil); err != nil {
		return err
	}
	b.uniqueid = id
	b.res.UniqueID = id
	switch {
	case b.replaced != nil && id == b.replaced.UniqueID:
		b.res.IDFrom = result.IDTarget
	case id != b.src.UniqueID:
		b.res.IDFrom = result.IDNew
	}
	return nil
}

// compareWith starts comparing the existing mailbox cur with the dump's
// b, which is kept only if they are identical (decideKeep); the target's
// records are read from a snapshot, under Cyrus's shared lock, while the
// dump's stream by.
func (rs *restorer) compareWith(b *box, cur partition.Entry) {
	b.uniqueid, b.res.UniqueID, b.res.IDFrom = cur.UniqueID, cur.UniqueID, result.IDTarget
	if err := rs.openTarget(b, cur); err != nil {
		b.res.Action = ActionRefuse
		b.res.Reason = fmt.Sprintf("exists in the target and cannot be read (%v); use --replace to replace it", err)
		return
	}
	var at partition.Record // the record the Compare looks at
	snap := b.snap
	b.cmp = invariant.NewCompare(targetRecords(b, &at), func(*invariant.Record) bool { return rs.intact(snap, at) })
	b.res.Action = ActionKeep // until decideKeep
}

// intact reports whether the target's message file of r is there and
// hashes to its GUID.
func (rs *restorer) intact(snap *partition.Mailbox, r partition.Record) bool {
	f, err := snap.OpenMessage(r)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, guid.NewReader(f, r.GUID, int64(r.Size)), rs.copyBuf())
	return err == nil
}

// decideKeep keeps b if the target's mailbox is identical to the dump's,
// and refuses it otherwise, saying how they differ.
func (rs *restorer) decideKeep(b *box, mb *syncrec.Mailbox, crc syncrec.CRC) error {
	diff, err := b.cmp.End()
	b.closeSnap()
	if err != nil {
		b.res.Action = ActionRefuse
		b.res.Reason = fmt.Sprintf("exists in the target and cannot be read (%v); use --replace to replace it", err)
		return nil
	}
	dump := invariant.State{UIDValidity: mb.UIDValidity, LastUID: mb.LastUID, HighestModseq: mb.HighestModseq,
		SyncCRC: crc.Basic, SyncCRCAnnot: crc.Annot}
	if why := invariant.Differences(dump, b.tgt, &diff); why != "" {
		b.res.Action, b.res.Reason = ActionRefuse, invariant.Refusal(why)
		return nil
	}
	b.res.Action, b.res.Reason = ActionKeep, invariant.Present
	b.kept = true
	if err := rs.setKey(spill.KeyUsed, b.uniqueid, nil); err != nil {
		return err
	}
	return rs.setKey(spill.KeyName, b.name, b)
}

func (b *box) closeSnap() {
	if b.snap != nil {
		b.snap.Close()
		b.snap, b.cmp = nil, nil
	}
}

// checkSize checks a record's SIZE against the message file the dump
// shipped for its GUID, if it did.
func (rs *restorer) checkSize(r *syncrec.Record) error {
	m, ok, err := rs.msg(r.GUID)
	if err != nil {
		return err
	}
	if ok && m.size != int64(r.Size) {
		return fmt.Errorf("%w: UID %d: SIZE %d, but the file of GUID %s has %d bytes", ErrDamaged, r.UID, r.Size, r.GUID, m.size)
	}
	return nil
}

// loseFile applies the rule of both restores (syncrec.LoseFile) to a
// record of b whose message file the dump does not hold, before it is
// counted, written or compared with the target's: a dry run reports the
// same, and a rerun finds the mailbox it wrote identical. The problem is
// reported for a mailbox to create or replace, as --server reports it
// (remote's lostFiles). Offline restore does not look for a file of the
// GUID in the target (restore --server does: the server's answer to
// APPLY RESERVE), docs/restore.md "Limits". It reports whether r was
// expunged so; highest is the mailbox's HIGHESTMODSEQ in the dump.
func (rs *restorer) loseFile(b *box, r *syncrec.Record, highest uint64) (bool, error) {
	if r.Expunged() {
		return false, nil
	}
	_, has, err := rs.msg(r.GUID)
	if err != nil || has {
		return false, err
	}
	lost := syncrec.LoseFile(r, highest)
	if b.res.Action == ActionCreate || b.res.Action == ActionReplace {
		rs.problem(b.name, lost)
	}
	return true, nil
}
