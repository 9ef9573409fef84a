package invariant

import (
	"fmt"
	"strconv"

	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/syncrec"
)

// Replace gives the records of a --replace into a mailbox that exists in
// the target, so that the mailbox stays what clients know (its uniqueid
// and UIDVALIDITY) and ends with exactly the dump's messages, flags and
// annotations, without a UID used twice or a change hidden:
//
//   - a dump record keeps its UID when the target holds the same message
//     (GUID) under that UID, not expunged, or when, under the same
//     UIDVALIDITY, the UID is above every UID the target has given;
//   - every other message of the dump (expunged or purged in the target
//     since, a UIDVALIDITY that differs) is appended with a new UID above
//     both LAST_UIDs, in dump order;
//   - a message of the target that the dump does not hold under its UID is
//     expunged (its record stays, expunged, so that QRESYNC reports it
//     VANISHED);
//   - every record that changes gets one MODSEQ above both HIGHESTMODSEQs
//     (one change, as Cyrus gives one MODSEQ to the changes of one
//     session), and above the owner's modseq counter (Above); a record
//     the dump and the target hold alike keeps its.
//
// The dump's records are given with Add in ascending UID order, the
// target's are read with next in the same order; what to write comes out
// in ascending UID order through emit. The messages to append wait in a
// msgsel.Spill (an unlinked temporary file), so memory stays flat.
type Replace struct {
	next        func() (*Record, error)
	cur         *Record
	started     bool
	sameUV      bool
	keepMax     uint32 // a dump UID above this is kept only if the target holds it
	modseq      uint64 // the MODSEQ of every change
	high        uint64 // the higher of the two HIGHESTMODSEQs
	uid         uint32 // the last UID given to an appended record
	lastUID     uint32
	dumpLastUID uint32
	now         int64
	changed     bool // a record was given modseq
	emit        func(r *syncrec.Record, file bool) error

	spill msgsel.Spill // the dump's messages to append

	// Map, when set before the first Add, records the UIDs the dump's
	// messages have in the target (msgsel.UIDMap), for the seen records
	// that name them.
	Map *msgsel.UIDMap

	// Kept, Appended and Expunged count the dump's records written under
	// their UID, the dump's messages appended, and the target's messages
	// expunged.
	Kept, Appended, Expunged int64
}

// NewReplace starts a replace of the target mailbox (state target) by the
// dump's (state dump). emit receives each record to write, with file
// false for one that must not carry a message file (a target's message
// expunged). now is the LAST_UPDATED of changed records.
func NewReplace(dump, target State, next func() (*Record, error), now int64,
	emit func(r *syncrec.Record, file bool) error) *Replace {
	r := &Replace{next: next, sameUV: dump.UIDValidity == target.UIDValidity, keepMax: target.LastUID,
		modseq: max(dump.HighestModseq, target.HighestModseq) + 1, high: max(dump.HighestModseq, target.HighestModseq), now: now, emit: emit,
		lastUID: target.LastUID, dumpLastUID: dump.LastUID}
	r.uid = target.LastUID
	if r.sameUV {
		r.uid = max(dump.LastUID, target.LastUID)
		r.lastUID = r.uid
	}
	return r
}

// LastUID is the mailbox's LAST_UID after End.
func (r *Replace) LastUID() uint32 { return max(r.lastUID, r.uid) }

// Above makes the MODSEQ of the changes also above counter, the modseq
// counter of the mailbox's owner (with `conversations: yes` Cyrus numbers
// the changes of all of a user's mailboxes from it, and a JMAP client's
// state is it: imap/mboxname.c mboxname_nextmodseq). Call it before the
// first Add.
func (r *Replace) Above(counter uint64) { r.modseq = max(r.modseq, counter+1) }

// HighestModseq is the mailbox's HIGHESTMODSEQ after End: the MODSEQ of
// the changes, which is above both mailboxes' HIGHESTMODSEQ; or, when no
// record changed, the higher of the two (a replace that changes nothing
// moves nothing a CONDSTORE client sees).
func (r *Replace) HighestModseq() uint64 {
	if !r.changed {
		return r.high
	}
	return r.modseq
}

func (r *Replace) advance() error {
	var err error
	r.cur, err = r.next()
	return err
}

// targetOnly writes a target record the dump does not hold: one not
// expunged is expunged now.
func (r *Replace) targetOnly(t *Record) error {
	rec := &syncrec.Record{UID: t.UID, GUID: t.GUID, Modseq: t.Modseq, LastUpdated: t.LastUpdated,
		InternalDate: t.InternalDate, Size: t.Size, Flags: []string{syncrec.FlagExpunged}}
	if !t.Expunged {
		rec.Modseq, rec.LastUpdated = r.modseq, r.now
		r.changed = true
		r.Expunged++
	}
	return r.emit(rec, false)
}

func (r *Replace) flushBelow(uid uint32) error {
	if !r.started {
		r.started = true
		if err := r.advance(); err != nil {
			return err
		}
	}
	for r.cur != nil && r.cur.UID < uid {
		if err := r.targetOnly(r.cur); err != nil {
			return err
		}
		if err := r.advance(); err != nil {
			return err
		}
	}
	return nil
}

// Add takes the dump's next record.
func (r *Replace) Add(d *syncrec.Record) error {
	if !r.sameUV {
		// Under another UIDVALIDITY the dump's UIDs mean nothing here.
		if d.Expunged() {
			return nil
		}
		return r.append(d)
	}
	if err := r.flushBelow(d.UID); err != nil {
		return err
	}
	t := r.cur
	if t != nil && t.UID == d.UID {
		if err := r.advance(); err != nil {
			return err
		}
		switch {
		case t.GUID == d.GUID && !t.Expunged && !d.Expunged():
			r.Kept++
			if d.Modseq != t.Modseq {
				d.Modseq, d.LastUpdated = r.modseq, r.now
				r.changed = true
			}
			return r.emit(d, true)
		case t.GUID == d.GUID && t.Expunged && d.Expunged():
			return r.targetOnly(t)
		default:
			if err := r.targetOnly(t); err != nil {
				return err
			}
			if d.Expunged() {
				return nil
			}
			return r.append(d)
		}
	}
	switch {
	case d.Expunged():
		return nil
	case d.UID > r.keepMax:
		r.Kept++
		d.Modseq, d.LastUpdated = r.modseq, r.now
		r.changed = true
		return r.emit(d, true)
	default:
		return r.append(d)
	}
}

// append keeps d for the end, to be appended with a new UID.
func (r *Replace) append(d *syncrec.Record) error { return r.spill.Add(d) }

// End writes the target's remaining records, then the dump's messages to
// append, numbered.
func (r *Replace) End() error {
	if r.Map != nil && r.sameUV {
		// A dump UID not renumbered names its message here, or one
		// expunged now.
		r.Map.Keep(r.dumpLastUID)
	}
	if err := r.flushBelow(^uint32(0)); err != nil {
		return err
	}
	if r.cur != nil { // UID 4294967295
		if err := r.targetOnly(r.cur); err != nil {
			return err
		}
	}
	next, err := r.spill.Records()
	if err != nil {
		return err
	}
	v := []byte(strconv.FormatUint(r.modseq, 10))
	for {
		d, err := next()
		if err != nil {
			return fmt.Errorf("reading back the messages to append: %w", err)
		}
		if d == nil {
			return r.Map.Finish() // the numbering ends
		}
		if r.uid == 1<<32-1 {
			return fmt.Errorf("%w: appending the dump's messages", msgsel.ErrNoUID)
		}
		r.uid++
		r.Appended++
		if r.Map != nil {
			if err := r.Map.Renumber(d.UID, r.uid); err != nil {
				return err
			}
		}
		d.UID, d.Modseq, d.LastUpdated = r.uid, r.modseq, r.now
		r.changed = true
		set := false
		for j := range d.Annotations {
			if d.Annotations[j].Entry == syncrec.AnnotCreatedModseq {
				d.Annotations[j].Value, set = v, true
			}
		}
		if !set {
			d.Annotations = append(d.Annotations, syncrec.Annotation{Entry: syncrec.AnnotCreatedModseq, Value: v})
		}
		if err := r.emit(d, true); err != nil {
			return err
		}
	}
}

// Close releases the temporary file.
func (r *Replace) Close() { r.spill.Close() }

// Summary says what the replace did, for the report: the same words in
// both restores.
func (r *Replace) Summary(uidvalidity uint32) string {
	return fmt.Sprintf("UIDVALIDITY %d stays; %d message(s) keep their UID, %d appended with new UIDs, %d of the target expunged; UIDNEXT %d, HIGHESTMODSEQ %d",
		uidvalidity, r.Kept, r.Appended, r.Expunged, r.LastUID()+1, r.HighestModseq())
}
