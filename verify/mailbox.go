package verify

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/syncrec"
)

// mailboxState is what is kept while an APPLY MAILBOX is read: a fixed
// amount, however many records it has.
type mailboxState struct {
	mb      *syncrec.Mailbox
	offset  int64 // of the APPLY MAILBOX line
	crc     syncrec.CRC
	prevUID uint32
	noCRC   bool         // the records could not all be read
	live    *liveMailbox // nil without a live partition, or when not comparable
}

// mailbox reads an APPLY MAILBOX line: the mailbox-level keys, then the
// records one at a time.
func (v *verifier) mailbox(off int64) error {
	dl := v.d.DL()
	t, err := dl.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.KVList {
		v.nameGroup("")
		v.report(Finding{Kind: KindInvalid, Offset: off, Detail: fmt.Sprintf("APPLY MAILBOX: expected %%(, found %v", t.Kind)})
		return nil
	}
	head := dlist.NewKVList()
	head.Offset = off
	defer v.endMailbox()
	for {
		kt, err := dl.Next()
		if err != nil {
			return err
		}
		if kt.Kind == dlist.End {
			break
		}
		key := string(kt.Bytes)
		if key != "RECORD" || v.cur != nil {
			val, err := dl.ReadValue()
			if err != nil {
				return err
			}
			if key == "RECORD" {
				v.report(Finding{Kind: KindInvalid, Mailbox: v.cur.mb.Name, Offset: kt.Offset, Detail: "a second RECORD key"})
				continue
			}
			if key == "MBOXNAME" {
				v.lineBox = val.String() // for errors before the mailbox decodes
			}
			head.Add(key, val)
			continue
		}
		if !v.beginMailbox(head, off) {
			return nil // reported; the rest of the line is skipped
		}
		if err := v.records(); err == errSkipLine {
			return nil
		} else if err != nil {
			return err
		}
	}
	if v.cur == nil && !v.beginMailbox(head, off) { // no RECORD key
		return nil
	}
	v.checkCRC()
	v.finishLive()
	return nil
}

// beginMailbox decodes the mailbox-level keys read so far and starts the
// mailbox's checks. It reports false when they do not decode.
func (v *verifier) beginMailbox(head *dlist.Value, off int64) bool {
	mb, err := syncrec.DecodeMailbox(head)
	if err != nil {
		name := ""
		if n := head.Get("MBOXNAME"); n != nil {
			name = n.String()
		}
		v.nameGroup(name)
		v.report(Finding{Kind: KindInvalid, Mailbox: name, Offset: off, Detail: "APPLY MAILBOX: " + err.Error()})
		return false
	}
	v.nameGroup(mb.Name)
	v.lineBox = mb.Name
	if _, dup := v.names[mb.Name]; dup {
		v.report(Finding{Kind: KindDuplicate, Mailbox: mb.Name, Offset: off, Detail: "the mailbox appears twice"})
	}
	if _, dup := v.ids[mb.UniqueID]; dup {
		v.report(Finding{Kind: KindDuplicate, Mailbox: mb.Name, Offset: off,
			Detail: fmt.Sprintf("uniqueid %s appears twice", mb.UniqueID)})
	}
	v.names[mb.Name] = struct{}{}
	v.ids[mb.UniqueID] = struct{}{}
	v.cur = &mailboxState{mb: mb, offset: off, crc: syncrec.NewCRC()}
	if v.opts.Spool != nil {
		v.cur.live = v.openLive(mb, off)
	}
	return true
}

// records reads the RECORD list.
func (v *verifier) records() error {
	dl := v.d.DL()
	t, err := dl.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.List {
		v.report(Finding{Kind: KindInvalid, Mailbox: v.cur.mb.Name, Offset: t.Offset,
			Detail: fmt.Sprintf("RECORD: expected a list, found %v", t.Kind)})
		if t.Kind == dlist.KVList {
			return skipNested(dl)
		}
		return nil
	}
	for {
		t, err := dl.Next()
		if err != nil {
			return err
		}
		if t.Kind == dlist.End {
			return nil
		}
		rec, err := syncrec.ReadRecord(dl, t)
		if errors.Is(err, syncrec.ErrInvalid) {
			f := Finding{Kind: KindInvalid, Mailbox: v.cur.mb.Name, Offset: t.Offset, Detail: "RECORD: " + err.Error()}
			var fe *syncrec.FieldError
			if errors.As(err, &fe) && fe.Offset > t.Offset {
				f.Offset = fe.Offset
			}
			v.report(f)
			// Where the bad record ends is unknown: the rest of the
			// line is skipped, and so are the CRC checks.
			v.cur.noCRC = true
			return errSkipLine
		}
		if err != nil {
			return err
		}
		if err := v.record(rec, t.Offset); err != nil {
			return err
		}
	}
}

// errSkipLine ends the reading of a line whose rest cannot be checked.
var errSkipLine = errors.New("skip the rest of the line")

// record checks one RECORD entry at offset off. It fails only when the
// literal table does.
func (v *verifier) record(r *syncrec.Record, off int64) error {
	st := v.cur
	mb := st.mb
	v.sum.Records++
	f := Finding{Mailbox: mb.Name, UID: r.UID, GUID: r.GUID, Offset: off}
	bad := func(k Kind, format string, args ...any) {
		f.Kind, f.Detail = k, fmt.Sprintf(format, args...)
		v.report(f)
	}
	if r.UID <= st.prevUID {
		bad(KindUIDOrder, "UID %d follows UID %d", r.UID, st.prevUID)
	}
	if r.UID > mb.LastUID {
		bad(KindUIDRange, "UID %d is above LAST_UID %d", r.UID, mb.LastUID)
	}
	if r.Modseq > mb.HighestModseq {
		bad(KindModseq, "MODSEQ %d is above HIGHESTMODSEQ %d", r.Modseq, mb.HighestModseq)
	}
	st.prevUID = max(st.prevUID, r.UID)
	st.crc.Add(r)
	var b [4]byte
	ok, err := v.lits.Get(r.GUID, b[:])
	if err != nil {
		return err
	}
	size := binary.LittleEndian.Uint32(b[:])
	switch {
	case !ok && !r.Expunged() && v.skippedAtDump(r.GUID):
		// Reported with the SKIPPED line that says why.
	case !ok && !r.Expunged():
		// An expunged record's file may be gone by design (Cyrus
		// unlinks it on cleanup), so only live ones need theirs.
		bad(KindNoMessage, "no file literal in the dump has this GUID")
	case ok && size != r.Size:
		bad(KindSize, "SIZE %d, but the file literal has %d bytes", r.Size, size)
	}
	if st.live != nil {
		st.live.compare(v, r, off)
	}
	return nil
}

// checkCRC compares the recomputed CRCs with the recorded ones, as Cyrus
// does: a zero on either side matches anything.
func (v *verifier) checkCRC() {
	st := v.cur
	if st == nil || st.noCRC {
		return
	}
	mb := st.mb
	if !syncrec.Equal(mb.SyncCRC, st.crc.Basic) {
		v.report(Finding{Kind: KindCRC, Mailbox: mb.Name, Offset: st.offset,
			Detail: fmt.Sprintf("SYNC_CRC is %d, the records give %d", mb.SyncCRC, st.crc.Basic)})
	}
	if !syncrec.Equal(mb.SyncCRCAnnot, st.crc.Annot) {
		v.report(Finding{Kind: KindCRC, Mailbox: mb.Name, Offset: st.offset,
			Detail: fmt.Sprintf("SYNC_CRC_ANNOT is %d, the records give %d", mb.SyncCRCAnnot, st.crc.Annot)})
	}
}

// endMailbox releases what the current mailbox holds.
func (v *verifier) endMailbox() {
	v.abortLive()
	v.cur = nil
}
