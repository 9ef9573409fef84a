package verify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// liveMailbox is the live side of a dumped mailbox being compared: its
// index records stream in UID order from a goroutine and are merged with
// the dump's records, so that neither side is held in memory.
type liveMailbox struct {
	m      *partition.Mailbox
	name   string
	offset int64 // of the dump's APPLY MAILBOX line
	recs   chan partition.Record
	errc   chan error
	stop   chan struct{}
	next   *partition.Record // read from recs, not yet merged
	eof    bool
	files  sync.WaitGroup // message files being hashed
}

var errStopped = errors.New("stopped")

// openLive opens the live mailbox of a dumped one, reporting why it
// cannot be compared when it cannot; then it returns nil.
func (v *verifier) openLive(mb *syncrec.Mailbox, off int64) *liveMailbox {
	sp := v.opts.Spool
	f := Finding{Mailbox: mb.Name, Offset: off}
	if v.walk == nil {
		v.walk = &mboxWalk{sp: sp}
	}
	e, walked, err := v.walk.lookup(mb.Name)
	var m *partition.Mailbox
	if err == nil {
		m, err = sp.OpenMailbox(v.ctx, e)
		if walked && (errors.Is(err, partition.ErrNoMailbox) || errors.Is(err, partition.ErrChanged)) {
			// The walk read the entry a while ago: as of now, it is
			// what Lookup says.
			if e, err = sp.Lookup(mb.Name); err == nil {
				m, err = sp.OpenMailbox(v.ctx, e)
			}
		}
	}
	if e.Name == "" && errors.Is(err, partition.ErrNoMailbox) { // Lookup's error (Lookup returns no entry with it)
		f.Kind, f.Detail = KindMailboxMissing, "the mailbox is not on the live partition"
		v.report(f)
		return nil
	}
	if err != nil {
		f.Kind, f.Detail = KindLive, err.Error()
		v.report(f)
		return nil
	}
	v.sum.LiveMailboxes++
	if e.UniqueID != mb.UniqueID || m.Index.UIDValidity != mb.UIDValidity {
		f.Kind, f.Detail = KindUIDValidity, fmt.Sprintf(
			"UIDVALIDITY %d and uniqueid %s in the dump, %d and %s live: the mailbox was recreated, its messages are not compared",
			mb.UIDValidity, mb.UniqueID, m.Index.UIDValidity, e.UniqueID)
		v.report(f)
		m.Close()
		return nil
	}
	lm := &liveMailbox{
		m:      m,
		name:   mb.Name,
		offset: off,
		recs:   make(chan partition.Record, 64),
		errc:   make(chan error, 1),
		stop:   make(chan struct{}),
	}
	go func() {
		defer close(lm.recs)
		lm.errc <- m.Records(func(r partition.Record) error {
			select {
			case lm.recs <- r:
				return nil
			case <-lm.stop:
				return errStopped
			}
		})
	}()
	return lm
}

// peek returns the next live record not yet merged, nil at the end.
func (lm *liveMailbox) peek(v *verifier) *partition.Record {
	if lm.next == nil && !lm.eof {
		r, ok := <-lm.recs
		if !ok {
			lm.eof = true
			if err := <-lm.errc; err != nil {
				v.report(Finding{Kind: KindLive, Mailbox: lm.name, Offset: lm.offset,
					Detail: "reading the live index: " + err.Error()})
			}
			return nil
		}
		lm.next = &r
	}
	return lm.next
}

// compare merges the dump's record r, at offset off, with the live ones.
func (lm *liveMailbox) compare(v *verifier, r *syncrec.Record, off int64) {
	for lr := lm.peek(v); lr != nil && lr.UID < r.UID; lr = lm.peek(v) {
		lm.liveOnly(v, *lr)
		lm.next = nil
	}
	if lr := lm.peek(v); lr != nil && lr.UID == r.UID {
		lm.both(v, r, *lr, off)
		lm.next = nil
		return
	}
	if !r.Expunged() {
		v.report(Finding{Kind: KindMessageMissing, Mailbox: lm.name, UID: r.UID, GUID: r.GUID, Offset: off,
			Detail: "the message is not in the live index"})
	}
}

// liveOnly handles a live record that the dump does not have.
func (lm *liveMailbox) liveOnly(v *verifier, lr partition.Record) {
	if lr.Expunged() {
		return
	}
	v.report(Finding{Kind: KindMessageAdded, Mailbox: lm.name, UID: lr.UID, GUID: lr.GUID, Offset: lm.offset,
		Detail: "a live message that the dump does not have"})
	lm.hash(v, lr, lm.offset)
}

// both compares a record present on both sides.
func (lm *liveMailbox) both(v *verifier, r *syncrec.Record, lr partition.Record, off int64) {
	f := Finding{Mailbox: lm.name, UID: r.UID, GUID: r.GUID, Offset: off}
	switch dx, lx := r.Expunged(), lr.Expunged(); {
	case dx && lx:
		return
	case lx:
		f.Kind, f.Detail = KindMessageMissing, "the message has been expunged since the dump"
		v.report(f)
		return
	case dx:
		f.Kind, f.Detail = KindChanged, "expunged in the dump, not in the live index"
		v.report(f)
		lm.hash(v, lr, off)
		return
	}
	if r.GUID != lr.GUID {
		f.Kind, f.Detail = KindGUIDChanged, fmt.Sprintf("the live record has GUID %s", lr.GUID)
		v.report(f)
		lm.hash(v, lr, off)
		return
	}
	var diffs []string
	if flags := lm.m.FlagNames(lr); !sameFlags(r.Flags, flags) {
		diffs = append(diffs, fmt.Sprintf("flags (%s) in the dump, (%s) live",
			strings.Join(r.Flags, " "), strings.Join(flags, " ")))
	}
	if r.Modseq != lr.Modseq {
		diffs = append(diffs, fmt.Sprintf("MODSEQ %d in the dump, %d live", r.Modseq, lr.Modseq))
	}
	if len(diffs) > 0 {
		f.Kind, f.Detail = KindChanged, strings.Join(diffs, "; ")
		v.report(f)
	}
	lm.hash(v, lr, off)
}

// sameFlags compares two flag lists as sets, system flags without regard
// to case, as Cyrus matches them.
func sameFlags(a, b []string) bool {
	norm := func(fs []string) []string {
		out := make([]string, 0, len(fs))
		for _, f := range fs {
			if strings.HasPrefix(f, `\`) {
				f = strings.ToLower(f)
			}
			out = append(out, f)
		}
		sort.Strings(out)
		return out
	}
	x, y := norm(a), norm(b)
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

// hash has the live record's message file checked against its GUID by
// the hashing workers.
func (lm *liveMailbox) hash(v *verifier, lr partition.Record, off int64) {
	if lr.Unlinked() {
		return
	}
	path := lm.m.MessagePath(lr)
	lm.files.Add(1)
	m := lm.m
	open := func() (*os.File, error) { return m.OpenMessageFile(lr) }
	v.pool.submit(&fileTask{open: open, guid: lr.GUID, size: int64(lr.Size), done: func(err error) {
		defer lm.files.Done()
		v.mu.Lock()
		defer v.mu.Unlock()
		v.sum.LiveFiles++
		if err == nil {
			return
		}
		f := Finding{Kind: KindBitRot, Mailbox: lm.name, UID: lr.UID, GUID: lr.GUID, Offset: off, Path: path,
			Detail: describeMismatch(err)}
		switch {
		case errors.Is(err, errFileMissing):
			f.Kind, f.Detail = KindFileMissing, "the live record's message file is missing"
		case !errors.Is(err, guid.ErrMismatch):
			f.Kind = KindLive
		}
		v.reportLocked(f)
	}})
}

// finishLive merges the live records after the dump's last one and
// releases the live mailbox.
func (v *verifier) finishLive() {
	st := v.cur
	if st == nil || st.live == nil {
		return
	}
	lm := st.live
	for lr := lm.peek(v); lr != nil; lr = lm.peek(v) {
		lm.liveOnly(v, *lr)
		lm.next = nil
	}
	v.abortLive()
}

// abortLive releases the current live mailbox, if any, once its files are
// hashed.
func (v *verifier) abortLive() {
	st := v.cur
	if st == nil || st.live == nil {
		return
	}
	lm := st.live
	st.live = nil
	close(lm.stop)
	for range lm.recs {
	}
	v.liveWG.Add(1)
	go func() {
		defer v.liveWG.Done()
		lm.files.Wait()
		lm.m.Close()
	}()
}

// checkSeenLive reports seen records whose mailbox is neither in the dump
// nor on the live partition: whose uniqueid names no real mailbox there,
// DELETED.* ones included (the mailboxes Spool.Mailboxes lists). Each is
// looked up by its I record in mailboxes.db (Spool.LookupID), O(log n),
// so no set of every live mailbox is held.
func (v *verifier) checkSeenLive(refs []seenRef) error {
	spool := v.opts.Spool
	for _, s := range refs {
		e, ok, err := spool.LookupID(s.uniqueid)
		if err != nil {
			return err
		}
		if !ok || spool.Liveness(e) != partition.Local {
			v.report(Finding{Kind: KindSeen, Offset: s.offset, Detail: fmt.Sprintf(
				"seen record of user %s for mailbox uniqueid %s, which is neither in the dump nor on the live partition",
				s.user, s.uniqueid)})
		}
	}
	return nil
}

// noteInbox records the owner of the dump's mailbox name if it is the
// owner's INBOX, for newMailboxes.
func (v *verifier) noteInbox(name string) {
	cfg := v.opts.Spool.Config
	u := partition.Entry{Name: name}.Owner(cfg)
	if u == "" {
		return
	}
	if (partition.Entry{Name: mboxname.Parent(name)}).Owner(cfg) == u {
		return // not the INBOX
	}
	v.inboxes[u] = true
}

// newMailboxes reports the live mailboxes of the dumped users that the
// dump does not have. A user counts as dumped when the dump has the
// user's INBOX (a dump of single other mailboxes says nothing about the
// rest of a user's mailboxes).
func (v *verifier) newMailboxes() error {
	users := make([]string, 0, len(v.inboxes))
	for u := range v.inboxes {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		live, err := v.opts.Spool.UserMailboxes(u)
		if err != nil {
			return fmt.Errorf("listing the mailboxes of %s: %w", u, err)
		}
		for _, e := range live {
			has, err := v.policy.HasName(e.Name)
			if err != nil {
				return err
			}
			if !has {
				v.report(Finding{Kind: KindMailboxNew, Mailbox: e.Name, Offset: NoOffset,
					Detail: fmt.Sprintf("a live mailbox of user %s that is not in the dump", u)})
			}
		}
	}
	return nil
}

// mboxWalk finds the mailboxes.db entries of the dumped mailboxes. A dump
// of whole users lists its mailboxes in mailboxes.db order, so one walk of
// the database in that order (Spool.MailboxChunksFrom, from the first
// dumped mailbox on: a chunk of records under each hold of the shared
// lock) finds them all in O(1) each; a search down the skip list per
// mailbox (Spool.Lookup) re-read about log n records each time, whose
// pages are dropped at each release of the lock: 26 times the time for 10
// times the mailboxes, from 20,001 to 200,001.
//
// A name the walk does not find (out of order, not or no longer there,
// after the end of the walk) is looked up with Spool.Lookup, which gives
// the same answer as before. Once the walk has passed more mailboxes that
// are not in the dump than a chunk beyond those it found (a dump of
// scattered mailboxes), it is stopped and every name after is looked up:
// the walk never costs more than the lookups plus one chunk.
type mboxWalk struct {
	sp      *partition.Spool
	started bool
	off     bool // stopped: Lookup only
	chunks  chan []partition.Entry
	errc    chan error
	stop    chan struct{}
	buf     []partition.Entry // the rest of the chunk being merged
	last    []byte            // the key of the last name the walk was asked for
	found   int
	skipped int
	waste   int // how many more mailboxes the walk may pass than it finds; maxWalkWaste when 0
}

// maxWalkWaste is how many more mailboxes the walk may pass than it finds.
const maxWalkWaste = 1024

// lookup returns the entry of the real mailbox name, as Spool.Lookup,
// and whether the walk found it.
func (w *mboxWalk) lookup(name string) (partition.Entry, bool, error) {
	if w.off {
		return w.look(name)
	}
	key := partition.NameKey(name)
	if !w.started {
		w.start(name)
	} else if bytes.Compare(key, w.last) <= 0 {
		return w.look(name)
	}
	w.last = key
	for {
		if len(w.buf) == 0 {
			c, ok := <-w.chunks
			if !ok {
				// The end of the database, or the walk failed: Lookup
				// says which, name by name.
				w.halt()
				return w.look(name)
			}
			w.buf = c
			continue
		}
		e := &w.buf[0]
		switch c := bytes.Compare(partition.NameKey(e.Name), key); {
		case c < 0:
			w.buf = w.buf[1:]
			if w.waste == 0 {
				w.waste = maxWalkWaste
			}
			if w.skipped++; w.skipped > w.found+w.waste {
				w.halt()
				return w.look(name)
			}
			continue
		case c == 0:
			w.found++
			entry := *e
			w.buf = w.buf[1:]
			return entry, true, nil
		}
		return w.look(name)
	}
}

// look is Spool.Lookup.
func (w *mboxWalk) look(name string) (partition.Entry, bool, error) {
	e, err := w.sp.Lookup(name)
	return e, false, err
}

// start starts the walk at name.
func (w *mboxWalk) start(name string) {
	w.started = true
	w.chunks = make(chan []partition.Entry, 1)
	w.errc = make(chan error, 1)
	w.stop = make(chan struct{})
	chunks, stop, errc := w.chunks, w.stop, w.errc
	go func() {
		defer close(chunks)
		errc <- w.sp.MailboxChunksFrom(name, func(c []partition.Entry) error {
			select {
			case chunks <- c:
				return nil
			case <-stop:
				return errStopped
			}
		})
	}()
}

// halt stops the walk for good and waits for its goroutine.
func (w *mboxWalk) halt() {
	if w.off {
		return
	}
	w.off = true
	w.buf = nil
	if !w.started {
		return
	}
	close(w.stop)
	for range w.chunks {
	}
}
