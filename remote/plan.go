package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/restore/invariant"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/mbtool/mbtool/usermap"
)

// Batch sizes of the GET and RESERVE lists (Cyrus's own sender puts at
// most 8193 GUIDs in one APPLY RESERVE).
const (
	maxNamesPerGet = 1000
	// The uniqueids of the boxes to create asked for at once while the
	// plan decides: a batch (and the last answer) stays in memory
	// meanwhile, so it is smaller than GET's.
	maxIDsPerCheck     = 256
	maxGUIDsPerReserve = 8192
)

// Bounds on what the server's answers make restore --server hold: the
// names of the mailboxes it lists (each counted with 64 bytes more), and
// its partitions.
const (
	maxRemoteHeld = 12 << 20
	maxPartitions = 4096
)

// plan asks the server what exists and decides each mailbox's action.
func (rs *restorer) plan(ctx context.Context) error {
	rs.known = make(map[string]bool)
	rs.remote = make(map[string]bool)
	// The boxes by target name (the first of each name), spilling: what
	// the server has of a name is parked in its box (existing), so that
	// the plan holds nothing per mailbox of the dump beyond its handle.
	// It stays for the run (rs.names): the missing parents count the
	// dump's own mailboxes as present (present, parents.go).
	byName := spill.NewNames()
	rs.names = byName
	users := make(map[string]bool)
	err := rs.inv.each(func(b *box) error {
		if b.res.Action == ActionSkip {
			return nil
		}
		_, dup, err := byName.Get(spill.KeyName, b.mb.Name)
		if err != nil {
			return err
		}
		if dup {
			b.res.Action, b.res.Reason = ActionRefuse, "the dump holds another mailbox of this name"
			return nil
		}
		if err := byName.Put(spill.KeyName, b.mb.Name, b.id); err != nil {
			return err
		}
		// The dump's own users too: restored under another name to the
		// server it came from, their messages are there already.
		if u := mboxname.Owner(b.src.Name); u != "" {
			users[u] = true
		}
		if u := mboxname.Owner(b.mb.Name); u != "" {
			users[u] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	// named returns the box byName holds for name, if any.
	named := func(name string) (*box, error) {
		id, ok, err := byName.Get(spill.KeyName, name)
		if err != nil || !ok {
			return nil, err
		}
		return rs.inv.boxes[id-1], nil
	}
	// What the server has: every mailbox of the users concerned (GET
	// USER also lists their DELETED.* mailboxes, whose files APPLY
	// RESERVE can use), and every target name (GET MAILBOXES), which
	// decides whether a mailbox exists.
	// Only the mailboxes the dump would write are kept whole, parked in
	// their box; of the others, the name (a place APPLY RESERVE may
	// look) and partition, within a budget, whatever the server sends.
	var held int64
	collect := func(mb *syncrec.Mailbox) error {
		if isPlaceholder(mb) {
			return nil
		}
		rs.noteMailbox(mb)
		rs.noteIntoParent(mb)
		rs.noteDeletedCopy(mb)
		b, err := named(mb.Name)
		if err != nil {
			return err
		}
		if b != nil {
			if err := rs.inv.parked.Use(b, func() error { b.existing = mb; return nil }); err != nil {
				return err
			}
		}
		if !rs.remote[mb.Name] {
			held += int64(len(mb.Name)) + 64
			if held > maxRemoteHeld {
				return fmt.Errorf("%w: %w: the server lists more than %d MiB of mailbox names", syncproto.ErrProtocol, syncproto.ErrLimit, maxRemoteHeld>>20)
			}
		}
		rs.remote[mb.Name] = true
		if !rs.known[mb.Partition] {
			if len(rs.known) >= maxPartitions {
				return fmt.Errorf("%w: %w: the server lists more than %d partitions", syncproto.ErrProtocol, syncproto.ErrLimit, maxPartitions)
			}
			rs.known[mb.Partition] = true
		}
		return nil
	}
	for _, u := range sortedKeys(users) {
		if err := rs.getMailboxes("USER", dlist.NewAtom(u), collect); err != nil {
			return err
		}
	}
	// The target names, in batches as the boxes are read (collect loads
	// and parks boxes: these are only peeked at).
	var batch []string
	getBatch := func() error {
		list := dlist.NewList()
		for _, n := range batch {
			list.Append(dlist.NewAtom(n))
		}
		batch = batch[:0]
		return rs.getMailboxes("MAILBOXES", list, collect)
	}
	for _, h := range rs.inv.boxes {
		b, err := spill.Peek(rs.inv.parked, h)
		if err != nil {
			return err
		}
		if b.res.Action == ActionSkip {
			continue
		}
		if n, err := named(b.mb.Name); err != nil || n != h {
			if err != nil {
				return err
			}
			continue
		}
		if batch = append(batch, b.mb.Name); len(batch) == maxNamesPerGet {
			if err := getBatch(); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		if err := getBatch(); err != nil {
			return err
		}
	}
	// Each box's action; a box to create whose uniqueid the server uses
	// for another mailbox is given a new one (renumber). Which of them
	// the server uses is asked in batches as the boxes are decided.
	var moved []*box
	type created struct {
		b        *box
		id, name string
	}
	var pending []created
	resolve := func() error {
		if len(pending) == 0 {
			return nil
		}
		ids := make([]string, len(pending))
		for i, p := range pending {
			ids[i] = p.id
		}
		owners, err := rs.uniqueIDs(ids)
		if err != nil {
			return err
		}
		for _, p := range pending {
			if o, used := owners[p.id]; used && o != p.name {
				moved = append(moved, p.b)
			}
		}
		clear(pending)
		pending = pending[:0]
		return nil
	}
	var last *box
	if n := len(rs.inv.boxes); n > 0 {
		last = rs.inv.boxes[n-1]
	}
	err = rs.inv.each(func(b *box) error {
		if b == last {
			hook("planning") // all the server's answers in, no decision taken
		}
		if b.res.Action != "" {
			return nil
		}
		cur := b.existing
		switch {
		case cur != nil && rs.opts.Undelete:
			b.res.Action = ActionMerge
			b.mb.Partition, b.res.Partition = cur.Partition, cur.Partition
			b.mb.UniqueID, b.res.UniqueID, b.res.IDFrom = cur.UniqueID, cur.UniqueID, result.IDTarget
			return nil
		case cur != nil && !rs.opts.Replace:
			why, err := rs.differences(ctx, b)
			if err != nil {
				return err
			}
			if why != "" {
				b.res.Action, b.res.Reason = ActionRefuse, invariant.Refusal(why)
				return nil
			}
			b.res.Action, b.res.Reason = ActionKeep, invariant.Present
			b.mb.UniqueID, b.res.UniqueID, b.res.IDFrom = cur.UniqueID, cur.UniqueID, result.IDTarget
			return nil
		case cur != nil:
			// Replaced in place: the mailbox stays (its uniqueid,
			// UIDVALIDITY and partition), docs/restore.md "Invariants".
			b.res.Action = ActionReplace
			b.mb.UniqueID, b.res.UniqueID, b.res.IDFrom = cur.UniqueID, cur.UniqueID, result.IDTarget
			b.mb.Partition, b.res.Partition = cur.Partition, cur.Partition
			return nil
		default:
			b.res.Action = ActionCreate
			if b != rs.into {
				rs.continueDeleted(b)
			}
		}
		if pending = append(pending, created{b, b.mb.UniqueID, b.mb.Name}); len(pending) == maxIDsPerCheck {
			return resolve()
		}
		return nil
	})
	if err == nil {
		err = resolve()
	}
	if err != nil {
		return err
	}
	if b := rs.into; b != nil && b.res.Action == ActionCreate {
		b.mb.ACL = usermap.IntoACL(mboxname.Owner(b.mb.Name), rs.intoACL, rs.intoACLFound, b.mb.ACL)
	}
	return rs.renumber(moved)
}

// isPlaceholder reports an intermediate or deleted mboxlist entry, which
// Cyrus's create replaces.
func isPlaceholder(mb *syncrec.Mailbox) bool {
	for _, c := range mb.MboxType {
		if c == 'i' || c == 'd' {
			return true
		}
	}
	return false
}

// damaged counts the messages of b (not expunged) whose file the server
// does not hold intact in the mailbox of b's name, asking APPLY RESERVE
// in batches.
func (rs *restorer) damaged(b *box, part string) (int64, error) {
	var n int64
	batch := make([]guid.GUID, 0, maxGUIDsPerReserve)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		missing, err := rs.reserveMissing(part, []string{b.mb.Name}, batch)
		for _, g := range batch {
			if missing[g] {
				n++
			}
		}
		batch = batch[:0]
		return err
	}
	err := rs.inv.items.each(b.items, func(it item) error {
		if it.expunged || it.lost || it.unselected {
			return nil
		}
		if batch = append(batch, it.guid); len(batch) == maxGUIDsPerReserve {
			return flush()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, flush()
}

// stateOf returns the keys that identify a mailbox's content.
func stateOf(mb *syncrec.Mailbox) invariant.State {
	return invariant.State{UIDValidity: mb.UIDValidity, LastUID: mb.LastUID, HighestModseq: mb.HighestModseq,
		SyncCRC: mb.SyncCRC, SyncCRCAnnot: mb.SyncCRCAnnot}
}

// invariantRecords returns the records of a server's mailbox, read with
// next, as package invariant reads the target's.
func invariantRecords(next func() (*syncrec.Record, error)) func() (*invariant.Record, error) {
	return func() (*invariant.Record, error) {
		r, err := next()
		if r == nil || err != nil {
			return nil, err
		}
		return &invariant.Record{UID: r.UID, GUID: r.GUID, Modseq: r.Modseq, Expunged: r.Expunged(), Size: r.Size,
			InternalDate: r.InternalDate, LastUpdated: r.LastUpdated}, nil
	}
}

// differences compares the server's mailbox of b's name with the dump's
// (the records as they would be sent: b.items, mb's CRCs), record by
// record as GET FULLMAILBOX streams them, and says how they differ; ""
// when they are identical.
func (rs *restorer) differences(ctx context.Context, b *box) (string, error) {
	m, err := rs.source().mailbox(b.mb.Name)
	if errors.Is(err, ErrNoMailbox) {
		return "removed from the server meanwhile", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading mailbox %s from the server: %w", b.mb.Name, err)
	}
	defer m.Close()
	next, err := m.Records(ctx)
	if err != nil {
		return "", err
	}
	// A record whose file the dump lacks is what a restore would send:
	// live if the server's mailbox holds the file intact (the rule of
	// lost.go, asked of this mailbox alone: a live record of the server's
	// has its file there), else expunged by syncrec.LoseFile.
	here, err := rs.heldHere(b, m.mb.Partition)
	if err != nil {
		return "", err
	}
	defer here.Close()
	held := func(g guid.GUID) (bool, error) { return here.Has(g) }
	cmp := invariant.NewCompare(invariantRecords(next), nil)
	err = rs.inv.items.each(b.items, func(it item) error {
		if it.unselected {
			return nil
		}
		r := invariant.Record{UID: it.uid, GUID: it.guid, Modseq: it.modseq, Expunged: it.expunged}
		if it.lost {
			if h, err := held(it.guid); err != nil {
				return err
			} else if !h {
				r.Expunged, r.Modseq = true, syncrec.LostModseq(b.src.HighestModseq)
			}
		}
		cmp.Add(r)
		return nil
	})
	if err != nil {
		return "", err
	}
	diff, err := cmp.End()
	if err != nil {
		return "", fmt.Errorf("reading mailbox %s from the server: %w", b.mb.Name, err)
	}
	if diff.Zero() {
		// The records agree: are the server's files of them intact?
		if diff.Damaged, err = rs.damaged(b, m.mb.Partition); err != nil {
			return "", err
		}
	}
	ls, err := rs.lostState(b, held, nil)
	if err != nil {
		return "", err
	}
	st := stateOf(b.mb)
	st.SyncCRC, st.SyncCRCAnnot, st.HighestModseq = ls.crc.Basic, ls.crc.Annot, ls.highest
	why := invariant.Differences(st, stateOf(m.mb), &diff)
	if why == "" {
		b.res.Messages += ls.messages
		b.res.Bytes += ls.bytes
		if ls.lost > 0 {
			// Kept: the dump still lacks the files of records the
			// mailbox has expunged, as an earlier run restored them
			// (reported as offline restore reports it).
			rs.problem(b.mb.Name, &syncrec.LostKeptError{Records: ls.lost})
		}
	}
	return why, nil
}

// heldHere returns which of the files b's records lack in the dump the
// server's mailbox of b's name, on partition part, holds intact (an empty
// table when b has none).
func (rs *restorer) heldHere(b *box, part string) (*guidtable.Table, error) {
	here := guidtable.New(guidtable.Options{})
	if b.lost == 0 {
		return here, nil
	}
	batch := make([]guid.GUID, 0, maxGUIDsPerReserve)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		missing, err := rs.reserveMissing(part, []string{b.mb.Name}, batch)
		if err != nil {
			return err
		}
		for _, g := range batch {
			if !missing[g] {
				if _, err := here.Add(g, nil); err != nil {
					return err
				}
			}
		}
		batch = batch[:0]
		return nil
	}
	err := rs.inv.items.each(b.items, func(it item) error {
		if !it.lost {
			return nil
		}
		if batch = append(batch, it.guid); len(batch) == maxGUIDsPerReserve {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		here.Close()
		return nil, err
	}
	return here, nil
}

// renumber gives new uniqueids to boxes whose own the server uses for
// another mailbox (sync_server would answer IMAP_MAILBOX_MOVED).
func (rs *restorer) renumber(moved []*box) error {
	if len(moved) == 0 {
		return nil
	}
	const tries = 4
	var ids []string
	for _, h := range moved {
		b, err := spill.Peek(rs.inv.parked, h)
		if err != nil {
			return err
		}
		for k := 1; k <= tries; k++ {
			ids = append(ids, newUniqueID(b.src.UniqueID, b.mb.Name, k))
		}
	}
	owners, err := rs.uniqueIDs(ids)
	if err != nil {
		return err
	}
	for _, b := range moved {
		err := rs.inv.parked.Use(b, func() error {
			for k := 1; k <= tries; k++ {
				id := newUniqueID(b.src.UniqueID, b.mb.Name, k)
				if o, used := owners[id]; !used || o == b.mb.Name {
					b.mb.UniqueID, b.res.UniqueID, b.res.IDFrom = id, id, result.IDNew
					break
				}
			}
			if b.res.IDFrom != result.IDNew {
				b.res.Action, b.res.Reason = ActionRefuse, "its uniqueid is in use on the server and no replacement is free"
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// uniqueIDs returns which of ids the server uses, and for which mailbox.
func (rs *restorer) uniqueIDs(ids []string) (map[string]string, error) {
	out := make(map[string]string)
	for i := 0; i < len(ids); i += maxNamesPerGet {
		list := dlist.NewList()
		for _, id := range ids[i:min(i+maxNamesPerGet, len(ids))] {
			list.Append(dlist.NewAtom(id))
		}
		asked := make(map[string]bool)
		for _, id := range ids[i:min(i+maxNamesPerGet, len(ids))] {
			asked[id] = true
		}
		err := rs.getMailboxes("UNIQUEIDS", list, func(mb *syncrec.Mailbox) error {
			if asked[mb.UniqueID] { // nothing else is kept
				out[mb.UniqueID] = mb.Name
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// getMailboxes sends GET name value and passes on each "* MAILBOX".
func (rs *restorer) getMailboxes(name string, v *dlist.Value, fn func(*syncrec.Mailbox) error) error {
	err := rs.c.Line("GET", name, v, func(n string, r *dlist.Reader) error {
		if n == "QUOTA" && name == "USER" {
			qv, err := r.ReadValue()
			if err != nil {
				return err
			}
			q, err := syncrec.DecodeQuota(qv)
			if err != nil {
				return fmt.Errorf("%w: server's QUOTA reply: %w", syncproto.ErrProtocol, err)
			}
			rs.noteQuota(q)
			return nil
		}
		if n != "MAILBOX" {
			return nil
		}
		mv, err := r.ReadValue()
		if err != nil {
			return err
		}
		mb, err := syncrec.DecodeMailbox(mv)
		if err != nil {
			return fmt.Errorf("%w: server's MAILBOX reply: %w", syncproto.ErrProtocol, err)
		}
		return fn(mb)
	})
	if err != nil {
		return fmt.Errorf("asking the server: %w", err)
	}
	return nil
}

// reserveAll makes sure each partition to be written exists on the
// server, and finds out which message files the server already has.
//
// Cyrus 3.6 asserts (and the sync_server process dies) when a file
// literal or a reserved file names a partition it does not have
// (dlist.c dlist_reserve_path). A partition is known when a mailbox on
// the server uses it; otherwise the first mailbox to restore there is
// created empty first, which fails cleanly (IMAP_PARTITION_UNKNOWN) for
// a partition the server lacks. Only then are files sent to it.
func (rs *restorer) reserveAll() error {
	rs.guids = make(partGUIDs)
	names := sortedKeys(rs.remote)
	parts, err := rs.partitions()
	if err != nil {
		return err
	}
	rs.parts = parts
	for _, p := range rs.parts {
		if !rs.known[p] {
			// Nothing of ours can be on a partition no mailbox uses.
			if err := rs.probePartition(p); err != nil {
				return err
			}
			continue
		}
		if len(names) > 0 {
			err := rs.reserve(p, names, func(b *box, it item) bool { return writes(b) && !it.unselected })
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// reserveDry asks the server, for a dry run, which of the message files
// the dump lacks it holds, with APPLY RESERVE as reserveAll does in the
// real run (it makes nothing visible): those of the records to merge and
// those of the records otherwise lost (lost.go), in one pass, so that the
// dry run leaves out, and reports lost, what the real run would.
func (rs *restorer) reserveDry() error {
	rs.guids = make(partGUIDs)
	names := sortedKeys(rs.remote)
	if len(names) == 0 {
		return nil
	}
	parts, err := rs.partitions()
	if err != nil {
		return err
	}
	for _, p := range parts {
		if !rs.known[p] {
			continue // nothing of ours can be there
		}
		err := rs.reserve(p, names, func(b *box, it item) bool {
			merge := writes(b) && b.res.Action == ActionMerge && !it.unselected && !it.expunged && !it.inDump
			return merge || (applies(b) && it.lost)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// probePartition creates the first mailbox to restore on partition p
// empty, to learn whether the server has p.
func (rs *restorer) probePartition(p string) (err error) {
	var probe *box
	err = rs.inv.each(func(b *box) error {
		if probe == nil && applies(b) && b.mb.Partition == p && b.res.Action == ActionCreate {
			probe = b
		}
		return nil
	})
	if err != nil || probe == nil {
		return err
	}
	return rs.probeWith(p, probe)
}

// probeWith creates probe, a mailbox to create on partition p, empty (its
// missing parents first), to learn whether the server has p.
func (rs *restorer) probeWith(p string, probe *box) error {
	return rs.inv.parked.Use(probe, func() error {
		perr, err := rs.createParents(probe)
		if err != nil {
			return err
		}
		if perr != nil {
			// Not sent (as sendMailbox): the next mailbox on p probes.
			probe.res.Err = perr
			rs.problem(probe.mb.Name, perr)
			if err := rs.inv.parked.Park(probe); err != nil {
				return err
			}
			return rs.probeNext(p)
		}
		empty := *probe.mb
		empty.LastUID, empty.RecentUID, empty.SyncCRC, empty.SyncCRCAnnot = 0, 0, 0, 0
		err = rs.applyEmpty(&empty, "empty, to check partition "+p)
		if fatal(err) {
			return err
		}
		if err != nil {
			if err := rs.inv.parked.Park(probe); err != nil {
				return err
			}
			failed := err
			return rs.inv.each(func(b *box) error {
				if applies(b) && b.mb.Partition == p {
					b.res.Err = fmt.Errorf("partition %s: %w", p, failed)
					rs.problem(b.mb.Name, b.res.Err)
				}
				return nil
			})
		}
		probe.probed = true
		rs.remote[probe.mb.Name] = true
		rs.known[p] = true
		return nil
	})
}

// probeNext probes partition p with the next mailbox to create there,
// once the one before could not be (its missing parent was refused).
func (rs *restorer) probeNext(p string) error {
	var next *box
	err := rs.inv.each(func(b *box) error {
		if next == nil && applies(b) && b.mb.Partition == p && b.res.Action == ActionCreate {
			next = b
		}
		return nil
	})
	if err != nil || next == nil {
		return err
	}
	return rs.probeWith(p, next)
}

// applyEmpty sends mb as an APPLY MAILBOX without records (why says
// what for, in the item named in errors).
func (rs *restorer) applyEmpty(mb *syncrec.Mailbox, why string) error {
	return rs.c.Do("APPLY MAILBOX "+mb.Name+" ("+why+")", func(w *dlist.Writer) error {
		return syncrec.WriteMailbox(w, "APPLY", mb, func() (*syncrec.Record, error) { return nil, nil })
	}, nil)
}

// reserve sends APPLY RESERVE for the GUIDs of the items on partition p
// that want selects, with every mailbox the server has as places to
// look, and records those the server holds.
func (rs *restorer) reserve(p string, names []string, want func(*box, item) bool) error {
	// The GUIDs go in batches as the boxes are walked; the table of
	// those asked for already keeps memory flat however many there are.
	seen := guidtable.New(guidtable.Options{})
	defer seen.Close()
	batch := make([]guid.GUID, 0, maxGUIDsPerReserve)
	err := rs.inv.each(func(b *box) error {
		if b.mb.Partition != p {
			return nil
		}
		return rs.inv.items.each(b.items, func(it item) error {
			if !want(b, it) {
				return nil
			}
			added, err := seen.Add(it.guid, nil)
			if err != nil || !added {
				return err
			}
			batch = append(batch, it.guid)
			if len(batch) == maxGUIDsPerReserve {
				if err := rs.reserveBatch(p, names, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		return rs.reserveBatch(p, names, batch)
	}
	return nil
}

// reserveBatch sends one APPLY RESERVE and notes which of batch the
// server holds; it keeps nothing of the answer beyond batch.
func (rs *restorer) reserveBatch(p string, names []string, batch []guid.GUID) error {
	missing, err := rs.reserveMissing(p, names, batch)
	if err != nil {
		return err
	}
	for _, g := range batch {
		if !missing[g] {
			if err := rs.guids.set(p, g, guidHeld); err != nil {
				return err
			}
			if !rs.opts.DryRun {
				rs.sum.Present++
			}
		}
	}
	return nil
}

// reserveMissing sends one APPLY RESERVE of batch on partition p, looking
// in the mailboxes names, and returns those the server does not hold
// intact: sync_server hashes each file it finds and takes only one that
// matches its GUID (imap/sync_support.c reserve_folder).
func (rs *restorer) reserveMissing(p string, names []string, batch []guid.GUID) (map[guid.GUID]bool, error) {
	kv := dlist.NewKVList().Add("PARTITION", dlist.NewAtom(p))
	ml := dlist.NewList()
	for _, n := range names {
		ml.Append(dlist.NewAtom(n))
	}
	gl := dlist.NewList()
	for _, g := range batch {
		gl.Append(dlist.NewGUID(g))
	}
	kv.Add("MBOXNAME", ml).Add("GUID", gl)
	missing := make(map[guid.GUID]bool, len(batch))
	for _, g := range batch {
		missing[g] = false
	}
	err := rs.c.Line("APPLY", "RESERVE", kv, func(n string, r *dlist.Reader) error {
		if n != "MISSING" {
			return nil
		}
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		for _, it := range v.Children {
			g, err := it.GUID()
			if err != nil {
				return fmt.Errorf("%w: MISSING: %w", syncproto.ErrProtocol, err)
			}
			if _, asked := missing[g]; asked {
				missing[g] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("APPLY RESERVE on partition %s: %w", p, err)
	}
	return missing, nil
}
