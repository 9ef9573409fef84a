package remote

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
)

// box is one mailbox of the dump: a handle that stays in memory for the
// whole run, and its data, in memory only while it is in use and parked
// in a spill file otherwise (park.go).
type box struct {
	*boxData               // nil while parked
	ref      int64         // where the data is parked; -1 before it first is
	id       uint32        // its place in inventory.boxes, from 1
	pinned   bool          // never parked: the box restored under RestoreOptions.Into
	merge    *msgsel.Spill // the records to merge (RestoreOptions.Undelete)
	// lost counts its records whose file the dump lacks (item.lost).
	lost int64
	// uids maps the dump's UIDs to the server's after a replace or a
	// merge, for other users' seen records (msgsel.UIDMap).
	uids *msgsel.UIDMap
}

// boxData is what a box knows while it is not parked.
type boxData struct {
	src   *syncrec.Mailbox // as in the dump
	mb    *syncrec.Mailbox // as sent: names mapped, partition, uniqueid, CRCs of the mapped records
	items span             // its records, in inventory.items
	res   MailboxResult

	existing *syncrec.Mailbox // the server's mailbox of this name, if any
	probed   bool             // created empty already (see probePartition)
}

// inventory is what the first pass learns from the dump.
type inventory struct {
	boxes []*box
	items itemLog          // the records of every box
	files *guidtable.Table // the size of each file literal (8 bytes)
	// lostCRC holds the checksum terms of each lost item as dumped, by
	// its place in items (lost.go); nil while there is none.
	lostCRC            *guidtable.Table
	dumpcheck.UserData // the APPLY QUOTA, SUB and SEEN lines
	counts             dumpfile.Counts
	trail              dumpfile.Counts
	parked             *spill.Store[boxData] // the boxes' data (park.go)
}

// Close releases the files the inventory keeps.
func (inv *inventory) Close() {
	inv.items.close()
	inv.files.Close()
	if inv.lostCRC != nil {
		inv.lostCRC.Close()
	}
	inv.UserData.Close()
	inv.parked.Close()
}

// fileSize returns the size of the file literal of g, if the dump has
// one.
func (inv *inventory) fileSize(g guid.GUID) (int64, bool, error) {
	var v [8]byte
	ok, err := inv.files.Get(g, v[:])
	if err != nil {
		return 0, false, fmt.Errorf("looking up message file %s: %w", g, err)
	}
	return int64(binary.LittleEndian.Uint64(v[:])), ok, nil
}

// check reads the whole dump once, offline: every file literal is hashed
// against its GUID, every record and name is validated, the trailer's
// digest and counts are compared. Nothing is sent before it succeeds.
func (rs *restorer) check(ctx context.Context, r io.Reader) (*inventory, error) {
	inv := &inventory{files: guidtable.New(guidtable.Options{ValueSize: 8}), parked: newParked()}
	ok := false
	defer func() {
		if !ok {
			inv.Close()
		}
	}()
	d, err := dumpcheck.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("reading dump: %w", err)
	}
	defer d.Close()
	policy := dumpcheck.NewDump()
	defer policy.Close()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		verb, name, off, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		if verb != "APPLY" {
			return nil, fmt.Errorf("%w: dump offset %d: unknown command %s %s", ErrDamaged, off, verb, name)
		}
		if err := rs.checkCommand(d, inv, policy, name); err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrUnsafeName) {
				err = fmt.Errorf("%w: %w", ErrDamaged, err)
			}
			return nil, fmt.Errorf("dump offset %d: APPLY %s: %w", off, name, err)
		}
		rs.progress(Progress{Phase: PhaseCheck, Mailboxes: inv.counts.Mailboxes, Messages: inv.counts.Messages, Bytes: inv.counts.Bytes})
	}
	if err := inv.items.finish(); err != nil {
		return nil, err
	}
	inv.trail = d.Trailer().Counts
	if inv.trail != inv.counts {
		return nil, fmt.Errorf("%w: trailer counts %d mailboxes, %d messages, %d bytes; the dump holds %d, %d, %d",
			ErrDamaged, inv.trail.Mailboxes, inv.trail.Messages, inv.trail.Bytes,
			inv.counts.Mailboxes, inv.counts.Messages, inv.counts.Bytes)
	}
	ok = true
	return inv, nil
}

func (rs *restorer) checkCommand(d *dumpfile.Reader, inv *inventory, policy *dumpcheck.Dump, name string) error {
	switch name {
	case "MESSAGE":
		return rs.checkMessages(d.DL(), inv, policy)
	case "MAILBOX":
		b, err := rs.checkMailbox(d.DL(), inv, policy)
		if err != nil {
			return err
		}
		inv.boxes = append(inv.boxes, b)
		b.id = uint32(len(inv.boxes))
		inv.counts.Mailboxes++
		if err := inv.parked.Park(b); err != nil {
			return err
		}
		return d.EndLine()
	}
	if ok, err := inv.Read(d, policy, name); ok || err != nil {
		return err
	}
	return fmt.Errorf("%w: unknown command", ErrDamaged)
}

// checkMessages hashes every file literal of an APPLY MESSAGE line.
func (rs *restorer) checkMessages(r *dlist.Reader, inv *inventory, policy *dumpcheck.Dump) error {
	t, err := r.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.List {
		return fmt.Errorf("%w: offset %d: APPLY MESSAGE value is a %v, not a list", ErrDamaged, t.Offset, t.Kind)
	}
	for {
		t, err := r.Next()
		if err != nil {
			return err
		}
		if t.Kind == dlist.End {
			break
		}
		if t.Kind != dlist.File {
			return fmt.Errorf("%w: offset %d: a %v in APPLY MESSAGE", ErrDamaged, t.Offset, t.Kind)
		}
		fi := t.File
		if err := policy.File(fi); err != nil {
			return fmt.Errorf("offset %d: %w", t.Offset, err)
		}
		n, err := io.Copy(rs.ids.Tap(), guid.NewReader(r.Body(), fi.GUID, fi.Size))
		if err != nil {
			return fmt.Errorf("offset %d: message file %s (%d bytes, %d read): %w", t.Offset, fi.GUID, fi.Size, n, err)
		}
		rs.ids.Done(fi.GUID)
		size, dup, err := inv.fileSize(fi.GUID)
		if err != nil {
			return err
		}
		if dup && size != fi.Size {
			return fmt.Errorf("%w: offset %d: message file %s twice, with %d and %d bytes", ErrDamaged, t.Offset, fi.GUID, size, fi.Size)
		}
		if !dup {
			var v [8]byte
			binary.LittleEndian.PutUint64(v[:], uint64(fi.Size))
			if err := inv.files.Put(fi.GUID, v[:]); err != nil {
				return fmt.Errorf("remembering message file %s: %w", fi.GUID, err)
			}
		}
		inv.counts.Messages++
		inv.counts.Bytes += fi.Size
	}
	return nil
}

// checkMailbox validates one APPLY MAILBOX and works out what will be
// sent for it: mapped names, the target partition, and the CRCs of the
// records as they will arrive.
func (rs *restorer) checkMailbox(r *dlist.Reader, inv *inventory, policy *dumpcheck.Dump) (*box, error) {
	mr, err := syncrec.OpenMailbox(r)
	if err != nil {
		return nil, err
	}
	src := mr.Mailbox()
	chk, err := policy.Mailbox(src)
	if err != nil {
		return nil, err
	}
	mb := *src
	mb.Name = rs.users.Name(src.Name)
	if err := dumpcheck.CheckName("mailbox name", mb.Name); err != nil {
		return nil, err
	}
	if rs.opts.Partition != "" {
		mb.Partition = rs.opts.Partition
	}
	mb.ACL = mapACL(rs.users, src.ACL)
	if src.QuotaRoot != "" {
		mb.QuotaRoot = rs.users.Name(src.QuotaRoot)
	}
	mb.Annotations = append([]syncrec.Annotation(nil), src.Annotations...)
	rs.users.Annotations(mb.Annotations)
	b := &box{ref: -1, boxData: &boxData{src: src, mb: &mb, items: span{first: inv.items.n}}}
	b.res = MailboxResult{Name: mb.Name, Source: src.Name, UniqueID: src.UniqueID, Partition: mb.Partition}
	// The selection is decided on this offline pass, before connecting.
	selected := rs.opts.Select.Match(src.Name, mb.Name)
	if !selected {
		b.res.Action, b.res.Reason = ActionSkip, "not selected"
	}
	if rs.opts.Into != "" && selected && rs.opts.Select.Active() {
		if err := rs.intoName(b); err != nil {
			return nil, err
		}
	}

	sendCRC := syncrec.NewCRC()
	for {
		rec, err := mr.Next()
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", src.Name, err)
		}
		if rec == nil {
			break
		}
		if err := chk.Record(rec); err != nil {
			return nil, err
		}
		size, inDump, err := inv.fileSize(rec.GUID)
		if err != nil {
			return nil, err
		}
		if inDump && size != int64(rec.Size) {
			return nil, fmt.Errorf("%w: mailbox %s UID %d: SIZE %d, but the file of GUID %s has %d bytes",
				ErrDamaged, src.Name, rec.UID, rec.Size, rec.GUID, size)
		}
		rs.users.Annotations(rec.Annotations)
		sel, err := rs.opts.Messages.Match(rec, rs.ids.MessageID(rec.GUID))
		if err != nil {
			return nil, err
		}
		it := item{guid: rec.GUID, uid: rec.UID, modseq: rec.Modseq, expunged: rec.Expunged(), inDump: inDump, unselected: !sel}
		if !it.expunged && !inDump && sel {
			// The rule of both restores, here as offline
			// (restorer.loseFile), unless the server holds the file: the
			// record is counted and checksummed expunged; its terms of
			// the checksums as dumped and its size are kept, to be put
			// back once the server has said it holds the file (lost.go). The item keeps
			// it as dumped, for a merge, for a record the server holds,
			// and for the second pass's check.
			basic, annot := syncrec.RecordCRC(rec)
			if err := inv.keepLostCRC(inv.items.n, basic, annot, rec.Size); err != nil {
				return nil, err
			}
			it.lost = syncrec.LoseFile(rec, src.HighestModseq) != nil
			b.lost++
		}
		if err := inv.items.add(it); err != nil {
			return nil, err
		}
		b.items.n++
		if !sel {
			b.res.Unselected++
			continue
		}
		sendCRC.Add(rec)
		b.res.Records++
		if !rec.Expunged() {
			b.res.Messages++
			b.res.Bytes += int64(rec.Size)
		}
	}
	if err := chk.End(); err != nil {
		return nil, err
	}
	mb.SyncCRC, mb.SyncCRCAnnot = sendCRC.Basic, sendCRC.Annot
	return b, nil
}
