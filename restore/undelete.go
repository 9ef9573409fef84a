package restore

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
)

// The additive restore (Options.Undelete). A mailbox of the dump that
// exists in the target is merged rather than refused or replaced: the
// messages of the dump that the target does not hold (by GUID, among its
// records not expunged) are appended to it with new UIDs above its
// LAST_UID and one new MODSEQ above its HIGHESTMODSEQ, keeping their
// flags, user flags, INTERNALDATE, per-message annotations and cache
// records. Nothing of the target is removed or changed, so a second run
// adds nothing.
//
// Phase one keeps the selected records of such a mailbox in a spill file
// (the messages themselves are staged like any other). Phase two appends
// them the way Cyrus's own writers (lmtpd, imapd's APPEND) do, under the
// same locks in the same order (docs/cyrus/locks.md §3): the owner's
// namespace lock exclusive, the mailbox's name lock shared, cyrus.index
// exclusive, so a delivery waits for the merge or the merge for it; the
// target is read under those locks, not before.

// mergeState is what a box being merged keeps between the phases.
type mergeState struct {
	target partition.Entry
	spill  msgsel.Spill // the selected records
}

// planMerge makes b a merge into the existing mailbox cur.
func (rs *restorer) planMerge(b *box, cur partition.Entry) (*box, error) {
	switch {
	case cur.Remote() || cur.Moving() || cur.Partition == "":
		b.res.Action, b.res.Reason = ActionRefuse, fmt.Sprintf("exists in the target as type %q", cur.Type)
		return b, nil
	}
	b.res.Action = ActionMerge
	b.partition, b.res.Partition = cur.Partition, cur.Partition
	b.uniqueid, b.res.UniqueID, b.res.IDFrom = cur.UniqueID, cur.UniqueID, result.IDTarget
	b.typ = cur.Type
	if why, err := rs.cannotWrite(b); err != nil || why != "" {
		b.res.Action, b.res.Reason = ActionRefuse, why
		return b, err
	}
	rs.extra(b).merge = &mergeState{target: cur}
	if err := rs.setKey(spill.KeyUsed, cur.UniqueID, nil); err != nil {
		return nil, err
	}
	return b, rs.setKey(spill.KeyName, b.name, b)
}

// selectRecord applies the message selectors to a record of a box being
// built or merged; a merge also leaves out what it cannot bring back
// (expunged records, records whose file the dump lacks).
func (rs *restorer) selectRecord(b *box, r *syncrec.Record) (bool, error) {
	ok, err := rs.opts.Messages.Match(r, rs.ids.MessageID(r.GUID))
	if err != nil || !ok {
		return false, err
	}
	if rs.mergeOf(b) == nil {
		return true, nil
	}
	has := false
	if !r.Expunged() {
		if _, has, err = rs.msg(r.GUID); err != nil {
			return false, err
		}
	}
	ok, missing := msgsel.Candidate{UID: r.UID, GUID: r.GUID, Expunged: r.Expunged(), File: has, Where: "the dump"}.Merges()
	if missing != nil {
		rs.problem(b.name, missing)
	}
	return ok, nil
}

// spillRecord keeps a selected record of a box being merged.
func (rs *restorer) spillRecord(b *box, r *syncrec.Record) error {
	if err := rs.mergeOf(b).spill.Add(r); err != nil {
		return fmt.Errorf("mailbox %s: %w", b.name, err)
	}
	return nil
}

// closeMerges releases the spill files and the UID maps.
func (rs *restorer) closeMerges() {
	for _, x := range rs.extras {
		if x.merge != nil {
			x.merge.spill.Close()
		}
		x.uids.Close()
	}
}

// commitMerges runs phase two for the boxes being merged; the quota roots
// they fall under get their usage recomputed.
func (rs *restorer) commitMerges(q *quotaPlan) error {
	for b := range rs.boxes.all() {
		if rs.mergeOf(b) == nil {
			continue
		}
		if err := rs.parked.Use(b, func() error { return rs.commitMerge(q, b) }); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) commitMerge(q *quotaPlan, b *box) error {
	if b.res.Action != ActionMerge {
		return nil
	}
	if err := rs.ctx.Err(); err != nil {
		return err
	}
	if err := rs.mergeBox(b); err != nil {
		var fatal *fatalMerge
		if errors.As(err, &fatal) {
			return fatal.err
		}
		rs.refuse(b, err.Error())
		return nil
	}
	if b.res.Added > 0 {
		if _, err := q.rootOf(b.name); err != nil {
			return err
		}
	}
	return nil
}

// dryMerges says, for a dry run, how many messages each merge would
// add and how many the target has already: the same decision as
// mergeBox's (msgsel.Appender), against the target's index read under
// its shared lock, nothing written.
func (rs *restorer) dryMerges() error {
	for b := range rs.boxes.all() {
		if rs.mergeOf(b) == nil {
			continue
		}
		if err := rs.parked.Use(b, func() error { return rs.dryMergeBox(b) }); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) dryMergeBox(b *box) error {
	if b.res.Action != ActionMerge {
		return nil
	}
	ipath, err := rs.spool.MetaPath(rs.mergeOf(b).target, partition.FileIndex)
	if err != nil {
		return err
	}
	if err := rs.dryMerge(b, ipath); err != nil {
		if rs.ctx.Err() != nil {
			return err
		}
		rs.refuse(b, err.Error())
	}
	return nil
}

func (rs *restorer) dryMerge(b *box, ipath string) error {
	idx, err := rs.cfg.Tree().OpenLocked(rs.ctx, ipath, os.O_RDONLY, false)
	if err != nil {
		return err
	}
	defer idx.Close()
	_, app, err := rs.mergeTarget(b, rs.mergeOf(b).target, idx, ipath, false)
	if err != nil {
		return err
	}
	defer app.Close()
	spilled, err := rs.mergeOf(b).spill.Records()
	if err != nil {
		return err
	}
	for {
		r, err := spilled()
		if err != nil || r == nil {
			b.res.Added, b.res.AlreadyThere = app.Added, app.Present
			return err
		}
		if _, err := app.Next(r); err != nil {
			return err
		}
	}
}

// mergeTarget reads the header of the target's index idx (at ipath,
// locked), whose mailbox is cur now, and starts the merge of b into it
// (msgsel.NewMerge, which may refuse it) with the GUIDs it holds: the
// same for the real run (mergeBox) and the dry run. The appended records
// are numbered above the owner's modseq counter too (with `conversations:
// yes`), which both read (a file that cannot be read refuses the merge in
// both); the real run reserves their MODSEQ when the first record is
// appended (Appender.Reserve: partition.NextModseq, under the counter
// file's lock, which Cyrus takes under the index lock as here), so that a
// merge with nothing to add leaves the counter as it is.
func (rs *restorer) mergeTarget(b *box, cur partition.Entry, idx *os.File, ipath string, reserve bool) (partition.IndexHeader, *msgsel.Appender, error) {
	h, err := partition.IndexHeaderAt(idx, ipath)
	if err != nil {
		return h, nil, err
	}
	last := max(h.RawHighestModseq, 1)
	counter, err := rs.spool.ReadModseqCounter(cur.Name)
	if err != nil {
		return h, nil, err
	}
	app, err := msgsel.NewMerge(msgsel.Target{Planned: rs.mergeOf(b).target.UniqueID, UniqueID: cur.UniqueID,
		LastUID: h.LastUID, HighestModseq: last, Counter: counter,
		Index: ipath, IndexVersion: h.MinorVersion, Options: h.RawOptions}, timeNow().Unix())
	if err != nil {
		return h, nil, err
	}
	if reserve {
		app.Reserve = func() (uint64, error) { return rs.spool.NextModseq(rs.ctx, cur, last, rs.owner) }
	}
	if err := targetGUIDs(idx, h, app); err != nil {
		app.Close()
		return h, nil, fmt.Errorf("%s: %w", ipath, err)
	}
	return h, app, nil
}

// fatalMerge wraps an error that ends the run (a lock wait cancelled).
type fatalMerge struct{ err error }

func (f *fatalMerge) Error() string { return f.err.Error() }

// mergeBox appends the spilled records of b that the target lacks.
func (rs *restorer) mergeBox(b *box) error {
	// One with nothing of the dump to add reads its target all the same:
	// a target changed since the dump was read is refused, not reported
	// merged.
	m := rs.mergeOf(b)
	spilled, err := m.spill.Records()
	if err != nil {
		return err
	}
	ns, err := rs.spool.LockNamespace(rs.ctx, b.owner, true)
	if err != nil {
		return &fatalMerge{err}
	}
	defer ns.Release()
	nl, err := rs.spool.LockMailboxName(rs.ctx, m.target, false)
	if err != nil {
		return &fatalMerge{err}
	}
	defer nl.Release()
	cur, exists, err := rs.spool.LookupAny(b.name)
	if err != nil {
		return &fatalMerge{err}
	}
	if !exists || cur.Deleted() || cur.Intermediate() || cur.UniqueID != m.target.UniqueID || cur.LegacyDirs() != m.target.LegacyDirs() {
		return errors.New("changed in the target meanwhile")
	}
	ipath, err := rs.spool.MetaPath(cur, partition.FileIndex)
	if err != nil {
		return err
	}
	tree := rs.cfg.Tree()
	idx, err := tree.OpenLocked(rs.ctx, ipath, os.O_RDWR, true)
	if err != nil {
		if rs.ctx.Err() != nil {
			return &fatalMerge{err}
		}
		return err
	}
	defer idx.Close() // drops the lock
	h, app, err := rs.mergeTarget(b, cur, idx, ipath, true)
	if err != nil {
		return err
	}
	defer app.Close()
	x := rs.extra(b)
	x.uids = rs.uidMaps.New()
	app.Map = x.uids
	hpath, err := rs.spool.MetaPath(cur, partition.FileHeader)
	if err != nil {
		return err
	}
	hdr, err := partition.ReadHeaderFile(func(p string) (int, error) { return tree.OpenFd(p, os.O_RDONLY) }, hpath)
	if err != nil {
		return err
	}
	data, _, err := rs.spool.Dirs(cur)
	if err != nil {
		return err
	}
	dir, err := tree.OpenDir(data)
	if err != nil {
		return err
	}
	// Messages staged on the target's partition are linked in; others
	// are copied (rs.place).
	if b.st, err = rs.stageFor(cur.Partition); err != nil {
		dir.Close()
		return err
	}
	b.dir = data
	bl := &builder{rs: rs, b: b, dir: dir, idx: idx, slots: make(map[string]int), h: h}
	defer bl.close()
	bl.h.Options, bl.h.HighestModseq = h.RawOptions, max(h.RawHighestModseq, 1)
	bl.crc = syncrec.CRC{Basic: h.SyncCRC, Annot: h.SyncCRCAnnot}
	b.flags = append([]string(nil), hdr.UserFlags...)
	for i, f := range b.flags {
		if f != "" {
			bl.slots[strings.ToLower(f)] = i
		}
	}
	nflags := len(b.flags)
	if _, err := idx.Seek(int64(h.StartOffset)+int64(h.NumRecords)*int64(h.RecordSize), io.SeekStart); err != nil {
		return err
	}
	bl.w = bufio.NewWriterSize(idx, 64<<10)
	cpath, err := rs.spool.MetaPath(cur, partition.FileCache)
	if err != nil {
		return err
	}
	if cf, err := tree.Open(cpath, os.O_RDWR); err == nil {
		end, err := cf.Seek(0, io.SeekEnd)
		if err != nil || end < 4 {
			cf.Close()
			return fmt.Errorf("%s: cannot append (size %d): %v", cpath, end, err)
		}
		bl.cache, bl.cw, bl.cacheOff = cf, bufio.NewWriterSize(cf, 64<<10), uint64(end)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	for {
		r, err := spilled()
		if err != nil {
			return err
		}
		if r == nil {
			break
		}
		if ok, err := app.Next(r); err != nil {
			return err
		} else if !ok {
			continue
		}
		name := strconv.FormatUint(uint64(r.UID), 10) + "."
		// A file above LAST_UID is debris of an append that did not
		// complete (Cyrus writes them only under the index lock, held).
		if err := dir.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if bl.cache == nil && r.Cache != nil {
			r.Cache = nil // no cyrus.cache to append to: Cyrus builds it
		}
		if err := bl.add(r); err != nil {
			return fmt.Errorf("UID %d: %w", r.UID, err)
		}
	}
	b.res.Added, b.res.AlreadyThere = app.Added, app.Present
	if b.res.Added == 0 {
		b.res.Applied = true // the target has it all: done
		return nil
	}
	// Message files, cache records, index records, then the headers, as
	// Cyrus commits an append (imap/mailbox.c mailbox_commit): a crash
	// before the index header leaves the mailbox as it was.
	if err := dir.Sync(); err != nil {
		return err
	}
	if bl.cache != nil {
		if err := bl.cw.Flush(); err != nil {
			return err
		}
		if err := bl.cache.Sync(); err != nil {
			return err
		}
	}
	if err := bl.w.Flush(); err != nil {
		return err
	}
	if err := idx.Sync(); err != nil {
		return err
	}
	if len(bl.annots) > 0 {
		apath, err := rs.spool.MetaPath(cur, partition.FileAnnotations)
		if err != nil {
			return err
		}
		err = rs.spool.UpdateTwoskip(apath, true, rs.owner, func(tx *partition.TwoskipTx) error {
			for _, kv := range bl.annots {
				tx.Set(kv[0], kv[1])
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", apath, err)
		}
	}
	if len(b.flags) != nflags {
		hdr.UserFlags = b.flags
		enc, err := partition.EncodeHeader(hdr)
		if err != nil {
			return err
		}
		if err := tree.Replace(hpath, rs.owner, 0o600, func(f *os.File) error {
			_, err := f.Write(enc)
			return err
		}); err != nil {
			return fmt.Errorf("%s: %w", hpath, err)
		}
		bl.h.HeaderFileCRC = crc32.ChecksumIEEE(enc)
	}
	bl.h.SyncCRC, bl.h.SyncCRCAnnot = bl.crc.Basic, bl.crc.Annot
	bl.h.LastAppendDate = clamp32(timeNow().Unix())
	if bl.needRepack {
		bl.h.Options |= partition.OptNeedsRepack
	}
	if _, err := idx.WriteAt(partition.AppendIndexHeader(nil, bl.h), 0); err != nil {
		return err
	}
	if err := idx.Sync(); err != nil {
		return err
	}
	b.res.Applied = true
	return nil
}

// targetGUIDs gives app the GUIDs of the records of the locked index idx
// that are not expunged.
func targetGUIDs(idx *os.File, h partition.IndexHeader, app *msgsel.Appender) error {
	br := bufio.NewReaderSize(io.NewSectionReader(idx, int64(h.StartOffset), int64(h.NumRecords)*int64(h.RecordSize)), 64<<10)
	buf := make([]byte, h.RecordSize)
	for i := uint32(0); i < h.NumRecords; i++ {
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("record %d: %w", i+1, err)
		}
		r, err := partition.ParseRecord(buf, h.MinorVersion)
		if err != nil {
			return fmt.Errorf("record %d: %w", i+1, err)
		}
		if r.UID == 0 || r.Expunged() {
			continue
		}
		if err := app.Have(r.GUID); err != nil {
			return err
		}
	}
	return nil
}
