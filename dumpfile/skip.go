package dumpfile

import (
	"fmt"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
)

// Skip records, in the dump, an item the dump left out when it was written,
// and why: a message file missing or damaged at the source, a mailbox that
// could not be read, a user's seen db or subscriptions. It is the line
//
//	MBTOOL SKIPPED %(ITEM <mailbox, or "user <name>"> [UID <n> GUID <guid>] REASON <text>)
//
// written where the item would have been: before the APPLY MAILBOX whose
// record lacks its message file. verify reports it as skipped at dump time,
// which tells it apart from damage done to the dump since. Readers (Next)
// consume these lines themselves; Reader.OnSkip sees them.
type Skip struct {
	Item   string    // the mailbox (internal name), or "user <name>"
	UID    uint32    // the record whose message file is missing; 0 for a whole item
	GUID   guid.GUID // that record's GUID
	Reason string
}

func (s Skip) String() string {
	if s.UID == 0 {
		return fmt.Sprintf("%s: %s", s.Item, s.Reason)
	}
	return fmt.Sprintf("%s UID %d (GUID %s): %s", s.Item, s.UID, s.GUID, s.Reason)
}

// maxReason bounds the reason written and read, in bytes.
const maxReason = 1000

// WriteSkip writes a SKIPPED line to w, a Writer's DL. It must be called
// between commands.
func WriteSkip(w *dlist.Writer, s Skip) error {
	reason := s.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	w.BeginLine(Verb, "SKIPPED")
	w.BeginKVList()
	w.Key("ITEM")
	w.Atom(s.Item)
	if s.UID != 0 {
		w.Key("UID")
		w.Num(uint64(s.UID))
		w.Key("GUID")
		w.GUID(s.GUID)
	}
	w.Key("REASON")
	w.Atom(reason)
	w.EndList()
	return w.EndLine()
}

// readSkip reads a SKIPPED line whose verb and name have been read.
func (d *Reader) readSkip(offset int64) (Skip, error) {
	v, err := d.dl.ReadValue()
	if err != nil {
		return Skip{}, fmt.Errorf("%w: SKIPPED at offset %d: %w", ErrFormat, offset, err)
	}
	if err := d.EndLine(); err != nil {
		return Skip{}, fmt.Errorf("SKIPPED at offset %d: %w", offset, err)
	}
	return ParseSkip(v, offset)
}

// ParseSkip reads the value of a SKIPPED line (found at offset, for the
// error), wherever the line is kept (a dump, a repository's snapshot).
func ParseSkip(v *dlist.Value, offset int64) (Skip, error) {
	var err error
	s := Skip{Item: v.Get("ITEM").String(), Reason: v.Get("REASON").String()}
	if len(s.Reason) > maxReason {
		s.Reason = s.Reason[:maxReason]
	}
	if u := v.Get("UID"); u != nil {
		if s.UID, err = u.Num32(); err != nil {
			return Skip{}, fmt.Errorf("%w: SKIPPED at offset %d: UID: %w", ErrFormat, offset, err)
		}
		if s.GUID, err = v.Get("GUID").GUID(); err != nil {
			return Skip{}, fmt.Errorf("%w: SKIPPED at offset %d: GUID: %w", ErrFormat, offset, err)
		}
	}
	if s.Item == "" {
		return Skip{}, fmt.Errorf("%w: SKIPPED at offset %d: no ITEM", ErrFormat, offset)
	}
	return s, nil
}
