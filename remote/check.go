package remote

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

// box is one mailbox of the dump.
type box struct {
	src   *syncrec.Mailbox // as in the dump
	mb    *syncrec.Mailbox // as sent: names mapped, partition, uniqueid, CRCs of the mapped records
	items []item
	res   MailboxResult

	existing *syncrec.Mailbox // the server's mailbox of this name, if any
	probed   bool             // created empty already (see probePartition)
	unboxed  bool             // the old mailbox was deleted (--replace)
}

// inventory is what the first pass learns from the dump.
type inventory struct {
	boxes              []*box
	files              map[guid.GUID]int64 // size of each file literal
	dumpcheck.UserData                     // the APPLY QUOTA, SUB and SEEN lines
	counts             dumpfile.Counts
	trail              dumpfile.Counts
}

// check reads the whole dump once, offline: every file literal is hashed
// against its GUID, every record and name is validated, the trailer's
// digest and counts are compared. Nothing is sent before it succeeds.
func (rs *restorer) check(ctx context.Context, r io.Reader) (*inventory, error) {
	inv := &inventory{files: make(map[guid.GUID]int64)}
	d, err := dumpfile.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("reading dump: %w", err)
	}
	defer d.Close()
	byID := make(map[string]*box)
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
		if err := rs.checkCommand(d, inv, byID, name); err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrUnsafeName) {
				err = fmt.Errorf("%w: %w", ErrDamaged, err)
			}
			return nil, fmt.Errorf("dump offset %d: APPLY %s: %w", off, name, err)
		}
		rs.progress(Progress{Phase: PhaseCheck, Mailboxes: inv.counts.Mailboxes, Messages: inv.counts.Messages, Bytes: inv.counts.Bytes})
	}
	inv.trail = d.Trailer().Counts
	if inv.trail != inv.counts {
		return nil, fmt.Errorf("%w: trailer counts %d mailboxes, %d messages, %d bytes; the dump holds %d, %d, %d",
			ErrDamaged, inv.trail.Mailboxes, inv.trail.Messages, inv.trail.Bytes,
			inv.counts.Mailboxes, inv.counts.Messages, inv.counts.Bytes)
	}
	return inv, nil
}

func (rs *restorer) checkCommand(d *dumpfile.Reader, inv *inventory, byID map[string]*box, name string) error {
	switch name {
	case "MESSAGE":
		return rs.checkMessages(d.DL(), inv)
	case "MAILBOX":
		b, err := rs.checkMailbox(d.DL(), inv)
		if err != nil {
			return err
		}
		if prev := byID[b.src.UniqueID]; prev != nil {
			return fmt.Errorf("%w: uniqueid %s of %s also names %s", ErrDamaged, b.src.UniqueID, b.src.Name, prev.src.Name)
		}
		byID[b.src.UniqueID] = b
		inv.boxes = append(inv.boxes, b)
		inv.counts.Mailboxes++
		return d.EndLine()
	}
	if ok, err := inv.Read(d, name); ok || err != nil {
		return err
	}
	return fmt.Errorf("%w: unknown command", ErrDamaged)
}

// checkMessages hashes every file literal of an APPLY MESSAGE line.
func (rs *restorer) checkMessages(r *dlist.Reader, inv *inventory) error {
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
		if err := dumpcheck.CheckPartition(fi.Partition); err != nil {
			return err
		}
		if fi.Size == 0 {
			return fmt.Errorf("%w: offset %d: empty message file %s", ErrDamaged, t.Offset, fi.GUID)
		}
		n, err := io.Copy(io.Discard, guid.NewReader(r.Body(), fi.GUID, fi.Size))
		if err != nil {
			return fmt.Errorf("offset %d: message file %s (%d bytes, %d read): %w", t.Offset, fi.GUID, fi.Size, n, err)
		}
		if size, dup := inv.files[fi.GUID]; dup && size != fi.Size {
			return fmt.Errorf("%w: offset %d: message file %s twice, with %d and %d bytes", ErrDamaged, t.Offset, fi.GUID, size, fi.Size)
		}
		inv.files[fi.GUID] = fi.Size
		inv.counts.Messages++
		inv.counts.Bytes += fi.Size
	}
	return nil
}

// checkMailbox validates one APPLY MAILBOX and works out what will be
// sent for it: mapped names, the target partition, and the CRCs of the
// records as they will arrive.
func (rs *restorer) checkMailbox(r *dlist.Reader, inv *inventory) (*box, error) {
	mr, err := openMailbox(r)
	if err != nil {
		return nil, err
	}
	src := mr.mb
	if err := rs.checkKeys(src); err != nil {
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
	mapAnnotations(rs.users, mb.Annotations)
	b := &box{src: src, mb: &mb}
	b.res = MailboxResult{Name: mb.Name, Source: src.Name, UniqueID: src.UniqueID, Partition: mb.Partition}

	chk := newRecordChecker(src)
	dumpCRC, sendCRC := syncrec.NewCRC(), syncrec.NewCRC()
	for {
		rec, err := mr.next()
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", src.Name, err)
		}
		if rec == nil {
			break
		}
		if err := chk.check(rec); err != nil {
			return nil, err
		}
		_, inDump := inv.files[rec.GUID]
		if size, ok := inv.files[rec.GUID]; ok && size != int64(rec.Size) {
			return nil, fmt.Errorf("%w: mailbox %s UID %d: SIZE %d, but the file of GUID %s has %d bytes",
				ErrDamaged, src.Name, rec.UID, rec.Size, rec.GUID, size)
		}
		dumpCRC.Add(rec)
		mapAnnotations(rs.users, rec.Annotations)
		sendCRC.Add(rec)
		b.items = append(b.items, item{guid: rec.GUID, expunged: rec.Expunged(), inDump: inDump})
		b.res.Records++
		if !rec.Expunged() {
			b.res.Messages++
			b.res.Bytes += int64(rec.Size)
		}
	}
	if !syncrec.Equal(dumpCRC.Basic, src.SyncCRC) || !syncrec.Equal(dumpCRC.Annot, src.SyncCRCAnnot) {
		rs.problem(src.Name, fmt.Errorf("the dump's SYNC_CRC %d SYNC_CRC_ANNOT %d do not match its records (%d %d); sending the records' values",
			src.SyncCRC, src.SyncCRCAnnot, dumpCRC.Basic, dumpCRC.Annot))
	}
	mb.SyncCRC, mb.SyncCRCAnnot = sendCRC.Basic, sendCRC.Annot
	return b, nil
}

// checkKeys validates the mailbox-level keys.
func (rs *restorer) checkKeys(mb *syncrec.Mailbox) error {
	if err := dumpcheck.CheckName("mailbox name", mb.Name); err != nil {
		return err
	}
	if err := dumpcheck.CheckUniqueID(mb.UniqueID); err != nil {
		return fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	if err := dumpcheck.CheckPartition(mb.Partition); err != nil {
		return fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	for _, c := range mb.MboxType {
		// Intermediate, deleted, remote, moving, reserved and legacy types
		// are mboxlist states, not mailboxes with content.
		if c < 'a' || c > 'z' || c == 'i' || c == 'd' || c == 'r' || c == 'm' || c == 'z' || c == 'l' {
			return fmt.Errorf("%w: mailbox %s: MBOXTYPE %q", ErrUnsafeName, mb.Name, mb.MboxType)
		}
	}
	if err := dumpcheck.CheckACL(mb.ACL); err != nil {
		return fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	if mb.QuotaRoot != "" {
		if err := dumpcheck.CheckName("quota root", mb.QuotaRoot); err != nil {
			return fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
	}
	for _, a := range mb.Annotations {
		if err := dumpcheck.CheckEntry(a.Entry); err != nil {
			return fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		if a.UserID != "" {
			if err := dumpcheck.CheckUserID(a.UserID); err != nil {
				return fmt.Errorf("mailbox %s: annotation: %w", mb.Name, err)
			}
		}
	}
	for _, c := range mb.Options {
		if c < 'A' || c > 'Z' {
			return fmt.Errorf("%w: mailbox %s: OPTIONS %q", ErrUnsafeName, mb.Name, mb.Options)
		}
	}
	return nil
}
