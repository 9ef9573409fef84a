package dump

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// maxFilesPerLine is how many file literals one APPLY MESSAGE carries at
// most, as Cyrus's own sender does.
const maxFilesPerLine = 1024

// dumpMailbox writes one mailbox: the APPLY MESSAGE lines for its message
// files not yet in the dump, then its APPLY MAILBOX. It returns the
// mailbox's quota root.
func (d *dumper) dumpMailbox(e partition.Entry) (string, error) {
	m, err := d.spool.OpenMailbox(d.ctx, e)
	if err != nil {
		if errors.Is(err, partition.ErrNoMailbox) || errors.Is(err, partition.ErrChanged) {
			// Listed when the dump started, gone (or another mailbox)
			// when its turn came.
			return "", fmt.Errorf("not dumped: deleted or renamed since the dump started: %w", err)
		}
		return "", fmt.Errorf("not dumped: %w", err)
	}
	defer m.Close()

	mb := mailboxRecord(m)
	// Pass 1: hash and embed the message files.
	pctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	p := newPipeline(pctx, d.opts.Workers, d.bufs)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		err := m.Records(func(r partition.Record) error {
			if r.SystemFlags&partition.InternalUnlinked != 0 {
				return nil // no file by design
			}
			if d.opts.Have != nil {
				have, err := d.opts.Have(r.GUID)
				if err != nil {
					return &fatalError{err}
				}
				if have {
					return nil
				}
			}
			return p.submit(job{uid: r.UID, guid: r.GUID, size: int64(r.Size),
				path: m.MessagePath(r), expunged: r.SystemFlags&partition.InternalExpunged != 0})
		})
		p.close(err)
	}()
	if err := d.writeMessages(e, p); err != nil {
		// Stop the producer before the mailbox it reads is closed.
		cancel()
		<-produced
		return "", err
	}
	<-produced

	// Pass 2: the APPLY MAILBOX, streamed record by record, checking the
	// sync CRCs as the records pass.
	crc := syncrec.NewCRC()
	recs := make(chan *syncrec.Record, 64)
	errc := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(recs)
		errc <- m.Records(func(r partition.Record) error {
			select {
			case recs <- toRecord(m, r):
				return nil
			case <-stop:
				return errStopped
			}
		})
	}()
	var n int64
	werr := syncrec.WriteMailbox(d.w, "APPLY", mb, func() (*syncrec.Record, error) {
		r, ok := <-recs
		if !ok {
			return nil, <-errc
		}
		n++
		crc.Add(r)
		return r, nil
	})
	close(stop)
	for range recs {
	}
	if werr != nil {
		return "", &fatalError{werr}
	}
	if !syncrec.Equal(crc.Basic, mb.SyncCRC) || !syncrec.Equal(crc.Annot, mb.SyncCRCAnnot) {
		d.problem(Problem{Mailbox: e.Name, Err: fmt.Errorf(
			"index header has SYNC_CRC %d SYNC_CRC_ANNOT %d, its records give %d %d (dumped as recorded; `reconstruct` would repair the index)",
			mb.SyncCRC, mb.SyncCRCAnnot, crc.Basic, crc.Annot)})
	}
	d.sum.Mailboxes++
	d.sum.Records += n
	d.progress()
	return mb.QuotaRoot, d.ctx.Err()
}

// writeMessages writes the files the pipeline yields, in order, as APPLY
// MESSAGE lines of at most maxFilesPerLine literals.
func (d *dumper) writeMessages(e partition.Entry, p *pipeline) error {
	inLine := 0
	for {
		res, ok := p.next()
		if !ok {
			break
		}
		j := res.job
		if res.err != nil {
			if !j.expunged || !res.missing {
				d.problem(Problem{Mailbox: e.Name, UID: j.uid, GUID: j.guid, Err: res.err})
			}
			continue
		}
		dup := res.dup
		if !dup {
			var err error
			if dup, err = d.embedded.Has(j.guid); err != nil {
				return &fatalError{err}
			}
		}
		if dup {
			d.sum.Shared++
			res.release()
			continue
		}
		if inLine == 0 {
			d.w.BeginLine("APPLY", "MESSAGE")
			d.w.BeginList()
		}
		if err := res.writeTo(d.w, e.Partition); err != nil {
			var perr *sourceError
			if errors.As(err, &perr) {
				// The file changed between hashing and copying: the literal
				// already started, so the dump cannot be completed.
				return &fatalError{fmt.Errorf("%s UID %d: %w", e.Name, j.uid, err)}
			}
			return &fatalError{err}
		}
		if _, err := d.embedded.Add(j.guid, nil); err != nil {
			return &fatalError{err}
		}
		d.sum.Messages++
		d.sum.Bytes += j.size
		inLine++
		if inLine == maxFilesPerLine {
			d.w.EndList()
			if err := d.w.EndLine(); err != nil {
				return &fatalError{err}
			}
			inLine = 0
		}
		d.progress()
	}
	if inLine > 0 {
		d.w.EndList()
		if err := d.w.EndLine(); err != nil {
			return &fatalError{err}
		}
	}
	return p.err()
}

// mailboxRecord fills the mailbox-level keys of an APPLY MAILBOX from the
// mailbox's mailboxes.db entry, cyrus.header and index header, as Cyrus's
// sync_prepare_dlists does.
func mailboxRecord(m *partition.Mailbox) *syncrec.Mailbox {
	h := m.Index
	hms := h.HighestModseq
	if hms == 0 {
		hms = 1 // as Cyrus reads it
	}
	mb := &syncrec.Mailbox{
		UniqueID:       m.Entry.UniqueID,
		Name:           m.Entry.Name,
		MboxType:       m.Entry.SyncType(),
		SyncCRC:        h.SyncCRC,
		SyncCRCAnnot:   h.SyncCRCAnnot,
		LastUID:        h.LastUID,
		HighestModseq:  hms,
		RecentUID:      h.RecentUID,
		RecentTime:     int64(h.RecentTime),
		LastAppendDate: int64(h.LastAppendDate),
		POP3LastLogin:  int64(h.POP3LastLogin),
		POP3ShowAfter:  int64(h.POP3ShowAfter),
		UIDValidity:    h.UIDValidity,
		Partition:      m.Entry.Partition,
		ACL:            partition.FormatACL(m.Entry.ACL),
		Options:        m.OptionsString(),
		QuotaRoot:      m.Header.QuotaRoot,
		CreatedModseq:  h.CreatedModseq,
		FolderModseq:   m.Entry.FolderModseq,
	}
	for _, a := range m.Annotations() {
		mb.Annotations = append(mb.Annotations, syncrec.Annotation(a))
	}
	return mb
}

// toRecord converts an index record to its RECORD entry: flag names in
// Cyrus's order, the real per-message annotations, then the virtual ones
// for index fields that have no RECORD key (sync-records.md §2).
func toRecord(m *partition.Mailbox, r partition.Record) *syncrec.Record {
	rec := &syncrec.Record{
		UID:          r.UID,
		Modseq:       r.Modseq,
		LastUpdated:  int64(r.LastUpdated),
		Flags:        m.FlagNames(r),
		InternalDate: int64(r.InternalDate),
		Size:         r.Size,
		GUID:         r.GUID,
	}
	for _, a := range m.RecordAnnotations(r.UID) {
		rec.Annotations = append(rec.Annotations, syncrec.Annotation(a))
	}
	v := m.Index.MinorVersion
	virt := func(entry, value string) {
		rec.Annotations = append(rec.Annotations, syncrec.Annotation{Entry: entry, Value: []byte(value)})
	}
	if v >= 13 && r.CID != 0 {
		virt(syncrec.AnnotThrID, fmt.Sprintf("%016x", r.CID))
	}
	if v >= 15 && r.SaveDate != 0 {
		virt(syncrec.AnnotSaveDate, strconv.FormatUint(uint64(r.SaveDate), 10))
	}
	if v >= 16 && r.CreatedModseq != 0 {
		virt(syncrec.AnnotCreatedModseq, strconv.FormatUint(r.CreatedModseq, 10))
	}
	return rec
}
