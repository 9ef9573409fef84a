package msgsel

import (
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/msghdr"
	"github.com/mbtool/mbtool/syncrec"
)

// ErrNoUID reports a mailbox whose UIDs are used up under its UIDVALIDITY.
var ErrNoUID = errors.New("no UID left under this UIDVALIDITY")

// Appender decides, for an additive restore (--undelete), which records
// of the dump a target mailbox receives and how they are numbered, the
// same offline and over the replication protocol: a message the target
// holds (by GUID, among its records not expunged) is left out, as is a
// second record of a GUID; the others get the UIDs after the target's
// LAST_UID in dump order, all one MODSEQ above its HIGHESTMODSEQ (as
// Cyrus gives the messages of one append: imap/mailbox.c
// mailbox_modseq_dirty), a LAST_UPDATED of now and that MODSEQ as their
// createdmodseq. Flags, INTERNALDATE, size and the other annotations stay
// as dumped. Memory is bounded by guidtable, whatever the mailbox size.
type Appender struct {
	present *guidtable.Table
	uid     uint32
	modseq  uint64
	now     int64
	// Added and Present count the records given to Next: appended, and
	// left out because the target has them.
	Added, Present int64
	// Map, when set, records the UIDs given (UIDMap.Renumber).
	Map *UIDMap
	// Reserve, when set, is called once, when Next first appends a
	// record and before it numbers it: it reserves the MODSEQ of the
	// appended records (offline, under the owner's modseq counter,
	// partition.NextModseq), which are numbered with the higher of it and
	// the MODSEQ the Appender was started with. A merge that appends
	// nothing reserves nothing, as Cyrus takes a MODSEQ only for a change
	// (imap/mailbox.c mailbox_modseq_dirty).
	Reserve func() (uint64, error)
}

// NewAppender starts the numbering after a target's LAST_UID and
// HIGHESTMODSEQ; now is the LAST_UPDATED of the appended records.
func NewAppender(lastUID uint32, highestModseq uint64, now int64) *Appender {
	return &Appender{present: guidtable.New(guidtable.Options{}), uid: lastUID, modseq: highestModseq + 1, now: now}
}

// Close releases the GUID table and ends Map's numbering
// (UIDMap.Finish).
func (a *Appender) Close() error {
	err := a.present.Close()
	if a.Map != nil {
		err = errors.Join(err, a.Map.Finish())
	}
	return err
}

// Have notes a GUID the target holds in a record not expunged.
func (a *Appender) Have(g guid.GUID) error {
	_, err := a.present.Add(g, nil)
	return err
}

// Modseq is the MODSEQ of the appended records.
func (a *Appender) Modseq() uint64 { return a.modseq }

// LastUID is the target's LAST_UID after the records appended so far.
func (a *Appender) LastUID() uint32 { return a.uid }

// Next decides about record r of the dump: false when the target has its
// message; true when it is appended, r renumbered.
func (a *Appender) Next(r *syncrec.Record) (bool, error) {
	fresh, err := a.present.Add(r.GUID, nil)
	if err != nil {
		return false, err
	}
	if !fresh {
		a.Present++
		return false, nil
	}
	if a.uid == 1<<32-1 {
		return false, ErrNoUID
	}
	if a.Reserve != nil {
		m, err := a.Reserve()
		if err != nil {
			return false, err
		}
		a.modseq, a.Reserve = max(a.modseq, m), nil
	}
	a.uid++
	a.Added++
	if a.Map != nil {
		if err := a.Map.Renumber(r.UID, a.uid); err != nil {
			return false, err
		}
	}
	r.UID, r.Modseq, r.LastUpdated = a.uid, a.modseq, a.now
	v := []byte(strconv.FormatUint(a.modseq, 10))
	for i := range r.Annotations {
		if r.Annotations[i].Entry == syncrec.AnnotCreatedModseq {
			r.Annotations[i].Value = v
			return true, nil
		}
	}
	r.Annotations = append(r.Annotations, syncrec.Annotation{Entry: syncrec.AnnotCreatedModseq, Value: v})
	return true, nil
}

// IDMatcher finds, while a dump's message files stream by, those whose
// Message-ID a Filter selects; only those are remembered, so memory
// follows the selection, not the dump.
type IDMatcher struct {
	f     *Filter
	head  []byte
	ended bool // head holds the empty line ending the header
	hits  map[guid.GUID]string
}

// NewIDMatcher returns the matcher of f, nil when f selects no
// Message-ID (all of whose methods then do nothing).
func (f *Filter) NewIDMatcher() *IDMatcher {
	if !f.NeedsHeader() {
		return nil
	}
	return &IDMatcher{f: f, hits: make(map[guid.GUID]string)}
}

// maxHead bounds what a Tap keeps of a message.
const maxHead = maxHeaderBytes

// Tap returns where the next message's bytes are to be written as well
// (io.Discard for a nil matcher).
func (m *IDMatcher) Tap() io.Writer {
	if m == nil {
		return io.Discard
	}
	m.head, m.ended = m.head[:0], false
	return (*tap)(m)
}

type tap IDMatcher

// Write keeps the message's bytes up to the end of its header (MessageID
// reads no further), at most maxHead.
func (t *tap) Write(p []byte) (int, error) {
	if room := maxHead - len(t.head); room > 0 && !t.ended {
		from := max(len(t.head)-2, 0) // an empty line may begin in the last write
		t.head = append(t.head, p[:min(len(p), room)]...)
		t.ended = msghdr.Ended(t.head, from)
	}
	return len(p), nil
}

// Done notes the message of GUID g, written to the last Tap.
func (m *IDMatcher) Done(g guid.GUID) {
	if m == nil {
		return
	}
	id, err := MessageID(bytes.NewReader(m.head))
	if err != nil || id == "" {
		return
	}
	if id = NormalizeMessageID(id); m.f.MessageIDs[id] {
		m.hits[g] = id
	}
}

// MessageID returns the function Filter.Match asks for the Message-ID of
// the message of GUID g ("" unless it is a selected one).
func (m *IDMatcher) MessageID(g guid.GUID) func() (string, error) {
	return func() (string, error) {
		if m == nil {
			return "", nil
		}
		return m.hits[g], nil
	}
}
