package verify

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/syncrec"
)

// mailboxState is what is kept while an APPLY MAILBOX is read: a fixed
// amount, however many records it has.
type mailboxState struct {
	mb     *syncrec.Mailbox
	offset int64 // of the APPLY MAILBOX line
	chk    *dumpcheck.Records
	noCRC  bool         // the records could not all be read
	live   *liveMailbox // nil without a live partition, or when not comparable
}

// mailbox reads an APPLY MAILBOX line through the one reader (package
// syncrec), applies the one policy (package dumpcheck) and reports each
// refusal as a finding: the mailbox-level keys, then the records one at a
// time.
func (v *verifier) mailbox(off int64) error {
	mr, err := syncrec.OpenMailbox(v.d.DL())
	v.lineBox = mr.Name() // for errors before the mailbox decodes
	if err != nil {
		if !decodeErr(err) {
			return err
		}
		v.nameGroup(mr.Name())
		v.reportErr(err, Finding{Kind: KindInvalid, Mailbox: mr.Name(), Offset: off}, "APPLY MAILBOX: ")
		return nil // the rest of the line is skipped
	}
	defer v.endMailbox()
	mb := mr.Mailbox()
	v.nameGroup(mb.Name)
	v.lineBox = mb.Name
	chk, err := v.policy.Mailbox(mb)
	v.reportErr(err, Finding{Mailbox: mb.Name, Offset: off}, "")
	if v.opts.Spool != nil {
		v.noteInbox(mb.Name)
	}
	v.cur = &mailboxState{mb: mb, offset: off, chk: chk}
	if v.opts.Spool != nil {
		v.cur.live = v.openLive(mb, off)
	}
	for {
		rec, err := mr.Next()
		if err != nil {
			if !decodeErr(err) {
				return err
			}
			f := Finding{Kind: KindInvalid, Mailbox: mb.Name, Offset: mr.RecordOffset()}
			var fe *syncrec.FieldError
			if errors.As(err, &fe) && fe.Offset > f.Offset {
				f.Offset = fe.Offset
			}
			v.reportErr(err, f, "RECORD: ")
			// Where the bad record ends is unknown: the rest of the
			// line is skipped, and so are the CRC checks.
			v.cur.noCRC = true
			return nil
		}
		if rec == nil {
			break
		}
		if err := v.record(rec, mr.RecordOffset()); err != nil {
			return err
		}
	}
	if !v.cur.noCRC {
		v.reportErr(chk.End(), Finding{Mailbox: mb.Name, Offset: off}, "")
	}
	v.finishLive()
	return nil
}

// decodeErr reports whether err is about the content of a command (a
// finding) rather than the end of reading.
func decodeErr(err error) bool {
	return errors.Is(err, syncrec.ErrInvalid) || errors.Is(err, syncrec.ErrTooLarge) ||
		errors.Is(err, dumpcheck.ErrUnsafeName) || errors.Is(err, dumpcheck.ErrDamaged)
}

// reportErr reports each refusal joined in err as a finding based on f,
// its Kind from the policy's unless f has one.
func (v *verifier) reportErr(err error, f Finding, prefix string) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			v.reportErr(e, f, prefix)
		}
		return
	}
	if f.Kind == "" {
		f.Kind = Kind(dumpcheck.KindOf(err))
	}
	var pe *dumpcheck.Error
	if errors.As(err, &pe) && pe.UID != 0 {
		f.UID = pe.UID
		err = pe.Err
	} else if errors.As(err, &pe) && pe.Mailbox != "" {
		err = pe.Err
	}
	f.Detail = prefix + err.Error()
	v.report(f)
}

// record checks one RECORD entry at offset off. It fails only when the
// literal table does.
func (v *verifier) record(r *syncrec.Record, off int64) error {
	st := v.cur
	mb := st.mb
	v.sum.Records++
	f := Finding{Mailbox: mb.Name, UID: r.UID, GUID: r.GUID, Offset: off}
	v.reportErr(st.chk.Record(r), f, "")
	bad := func(k Kind, format string, args ...any) {
		f.Kind, f.Detail = k, fmt.Sprintf(format, args...)
		v.report(f)
	}
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

// endMailbox releases what the current mailbox holds.
func (v *verifier) endMailbox() {
	v.abortLive()
	v.cur = nil
}
