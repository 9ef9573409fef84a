package dump

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// spoolMailbox is one mailbox of the partition, open and locked as
// partition.OpenMailbox does it, with its message files read ahead into q
// (by the prefetcher, or from the first call of Files).
type spoolMailbox struct {
	s        *spoolSource
	name     string
	m        *partition.Mailbox
	mb       *syncrec.Mailbox
	err      error         // why it could not be opened (m is nil); prefetched only
	user     *userList     // not a mailbox: a user's list (prefetcher)
	q        *queue        // its message files, read and hashed ahead
	produced chan struct{} // closed once every job of q is submitted
	stop     func()
	since    uint64 // only records with a greater MODSEQ (SinceMailbox)
}

// MailboxKnown opens a mailbox of the plan as Mailbox does, asking known
// under the index lock once the keys are read: a mailbox known the Same
// has its records, cache and message annotations left unread.
func (s *spoolSource) MailboxKnown(ctx context.Context, name string, known func(*syncrec.Mailbox) (Known, error)) (Mailbox, Known, error) {
	var k Known
	var mb *syncrec.Mailbox
	m, err := s.openName(ctx, name, func(pm *partition.Mailbox) (bool, error) {
		mb = mailboxRecord(pm)
		var err error
		k, err = known(mb)
		return !k.Same, err
	})
	if err != nil {
		return nil, k, err
	}
	m.mb = mb
	if k.Since > 0 && k.Cached {
		lost, err := m.cacheLost(k.Since)
		if err != nil {
			m.Close()
			return nil, k, err
		}
		if lost {
			k.Since, k.Cached = 0, false
		}
	}
	return m, k, nil
}

var errStop = errors.New("stop")

// cacheLost reports whether a record at or below since (one the
// destination holds with its cache record) has no cache record now.
func (m *spoolMailbox) cacheLost(since uint64) (bool, error) {
	lost := false
	err := m.m.Records(func(r partition.Record) error {
		if r.SystemFlags&partition.InternalUnlinked == 0 && r.Modseq <= since && !partition.HasCacheRecord(r) {
			lost = true
			return errStop
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	return lost, err
}

func (m *spoolMailbox) Since(modseq uint64) { m.since = modseq }

// UIDs yields the ranges of the records' UIDs.
func (m *spoolMailbox) UIDs(fn func(first, last uint32) error) error {
	var first, last uint32
	err := m.m.Records(func(r partition.Record) error {
		if first != 0 && r.UID == last+1 {
			last = r.UID
			return nil
		}
		if first != 0 {
			if err := fn(first, last); err != nil {
				return err
			}
		}
		first, last = r.UID, r.UID
		return nil
	})
	if err == nil && first != 0 {
		err = fn(first, last)
	}
	return err
}

// Mailbox opens a mailbox of the plan. One listed when the dump started
// and gone (or another mailbox) when its turn comes is a problem. When
// the prefetcher runs ahead and name is the next mailbox it opened, that
// one is returned.
func (s *spoolSource) Mailbox(ctx context.Context, name string) (Mailbox, error) {
	if s.pf != nil && s.pf.ahead {
		if m, ok := s.pf.take(name); ok {
			if m.err != nil {
				return nil, m.err
			}
			return m, nil
		}
	}
	m, err := s.openName(ctx, name, nil)
	if err != nil {
		return nil, err
	}
	m.mb = mailboxRecord(m.m)
	return m, nil
}

// openName opens a mailbox of the plan by name (spoolSource.entry).
func (s *spoolSource) openName(ctx context.Context, name string, want func(*partition.Mailbox) (bool, error)) (*spoolMailbox, error) {
	e, err := s.entry(name)
	if err == nil {
		var m *spoolMailbox
		if m, err = s.open(ctx, e, want); err == nil {
			return m, nil
		}
	}
	return nil, notDumped(err)
}

// open opens and locks the mailbox of e.
func (s *spoolSource) open(ctx context.Context, e partition.Entry, want func(*partition.Mailbox) (bool, error)) (*spoolMailbox, error) {
	m, err := s.spool.OpenMailboxIf(ctx, e, want)
	if err != nil {
		return nil, err
	}
	return &spoolMailbox{s: s, name: e.Name, m: m, stop: func() {}}, nil
}

// notDumped says why a mailbox of the plan is not dumped: one listed when
// the dump started and gone (or another mailbox) when its turn came, or
// one that cannot be opened.
func notDumped(err error) error {
	if errors.Is(err, partition.ErrNoMailbox) || errors.Is(err, partition.ErrChanged) {
		return fmt.Errorf("not dumped: deleted or renamed since the dump started: %w", err)
	}
	return fmt.Errorf("not dumped: %w", err)
}

func (m *spoolMailbox) Keys() *syncrec.Mailbox { return m.mb }

// Close releases the mailbox once the producer is done with it: results
// not taken are dropped, returning their budget.
func (m *spoolMailbox) Close() {
	m.stop()
	if m.q != nil && !m.q.drained {
		m.q.discard()
	}
	if m.produced != nil {
		<-m.produced
	}
	if m.m != nil {
		m.m.Close()
	}
}

// start reads the mailbox's message files into a new queue of p, in a
// goroutine of its own.
func (m *spoolMailbox) start(p *pipeline, f Filter) {
	m.q = p.queue(int(m.m.Index.NumRecords))
	m.produced = make(chan struct{})
	go func() {
		m.produce(f)
		close(m.produced)
	}()
}

// produce submits the jobs of the mailbox's message files to m.q, in UID
// order, and closes it.
func (m *spoolMailbox) produce(f Filter) {
	err := m.m.Records(func(r partition.Record) error {
		if r.SystemFlags&partition.InternalUnlinked != 0 || r.Modseq <= m.since && m.since > 0 {
			return nil // no file by design, or the destination's already
		}
		if f.Skip != nil {
			have, err := f.Skip(r.GUID)
			if err != nil {
				return Fatal(err)
			}
			if have {
				return nil
			}
		}
		return m.q.submit(job{uid: r.UID, guid: r.GUID, size: int64(r.Size),
			expunged: r.SystemFlags&partition.InternalExpunged != 0, m: m.m, rec: r})
	})
	m.q.close(err)
}

// Files yields the mailbox's message files, read and hashed ahead by the
// run's workers, in UID order. A mailbox the prefetcher did not open
// starts reading them here.
func (m *spoolMailbox) Files(ctx context.Context, f Filter, put func(*File) error) error {
	if m.q == nil {
		if m.s.pf == nil {
			return errors.New("dump: the offline source is used through Write only")
		}
		m.start(m.s.pf.p, f)
	}
	if err := m.yield(put); err != nil {
		return err
	}
	<-m.produced
	return m.q.err()
}

// yield hands the queue's results to put, in order. It allocates
// nothing per file: put is given the same File each time, whose Write and
// Release act on the current result (put keeps neither past its return).
func (m *spoolMailbox) yield(put func(*File) error) error {
	var cur *result
	write := func(w *dlist.Writer, part string) error {
		err := cur.writeTo(w, part)
		if err != nil {
			var serr *sourceError
			if errors.As(err, &serr) {
				// The file changed between hashing and copying.
				err = fmt.Errorf("%s UID %d: %w", m.mb.Name, cur.uid, err)
			}
		}
		return err
	}
	release := func() { cur.release() }
	var f File
	for {
		res, ok := m.q.next()
		if !ok {
			return nil
		}
		cur = res
		f = File{UID: res.uid, GUID: res.guid, Size: res.size, Expunged: res.expunged,
			Err: res.err, Gone: res.missing, Dup: res.dup, Release: release}
		if res.err == nil {
			f.Write = write
		}
		if err := put(&f); err != nil {
			return err
		}
	}
}

// syncRecords is the most records a mailbox's Records converts in the
// writer's goroutine: for a small mailbox (most of them), a goroutine and
// its hand-offs per mailbox cost more than the overlap they buy.
const syncRecords = 256

// Records streams the records from the index, in a goroutine of their
// own so that reading overlaps writing, except for a small mailbox.
func (m *spoolMailbox) Records(ctx context.Context) (func() (*syncrec.Record, error), error) {
	if m.m.Index.NumRecords <= syncRecords {
		next := m.m.RecordIter()
		return func() (*syncrec.Record, error) {
			for {
				r, ok, err := next()
				if err != nil || !ok {
					return nil, err
				}
				if m.since > 0 && r.Modseq <= m.since {
					continue
				}
				return toRecord(m.m, r), nil
			}
		}, nil
	}
	recs := make(chan *syncrec.Record, 64)
	errc := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(recs)
		errc <- m.m.Records(func(r partition.Record) error {
			if m.since > 0 && r.Modseq <= m.since {
				return nil
			}
			select {
			case recs <- toRecord(m.m, r):
				return nil
			case <-stop:
				return errStopped
			}
		})
	}()
	m.stop = func() {
		close(stop)
		for range recs {
		}
	}
	return func() (*syncrec.Record, error) {
		r, ok := <-recs
		if !ok {
			err := <-errc
			errc <- err
			if errors.Is(err, errStopped) {
				err = nil
			}
			return nil, err
		}
		return r, nil
	}, nil
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
		DeletedModseq:  h.DeletedModseq,
		Generation:     h.Generation,
		UserFlags:      append([]string{}, m.Header.UserFlags...),
		IndexVersion:   h.MinorVersion,
	}
	for _, a := range m.Annotations() {
		mb.Annotations = append(mb.Annotations, syncrec.Annotation(a))
	}
	return mb
}

// toRecord converts an index record to its RECORD entry: flag names in
// Cyrus's order, the real per-message annotations, then the virtual ones
// for index fields that have no RECORD key (docs/cyrus/replication.md §3).
func toRecord(m *partition.Mailbox, r partition.Record) *syncrec.Record {
	rec := &syncrec.Record{
		UID:          r.UID,
		Modseq:       r.Modseq,
		LastUpdated:  int64(r.LastUpdated),
		Flags:        m.FlagNames(r),
		InternalDate: int64(r.InternalDate),
		Size:         r.Size,
		GUID:         r.GUID,
		// The cache record, so that the restored mailbox needs no repack
		// and keeps what Cyrus derived from the message (docs/format.md).
		Cache: m.CacheRecord(r),
	}
	ann := m.RecordAnnotations(r.UID)
	v := m.Index.MinorVersion
	thrid, saveDate, created := v >= 13 && r.CID != 0, v >= 15 && r.SaveDate != 0, v >= 16 && r.CreatedModseq != 0
	// Sized once (and left nil when empty, as before): appending grew it
	// a step per annotation, for every message of a dump.
	if n := len(ann) + btoi(thrid) + btoi(saveDate) + btoi(created); n > 0 {
		rec.Annotations = make([]syncrec.Annotation, 0, n)
	}
	for _, a := range ann {
		rec.Annotations = append(rec.Annotations, syncrec.Annotation(a))
	}
	virt := func(entry string, value []byte) {
		rec.Annotations = append(rec.Annotations, syncrec.Annotation{Entry: entry, Value: value})
	}
	if thrid {
		virt(syncrec.AnnotThrID, fmt.Appendf(nil, "%016x", r.CID))
	}
	if saveDate {
		virt(syncrec.AnnotSaveDate, strconv.AppendUint(nil, uint64(r.SaveDate), 10))
	}
	if created {
		virt(syncrec.AnnotCreatedModseq, strconv.AppendUint(nil, r.CreatedModseq, 10))
	}
	return rec
}

// btoi is 1 for true, 0 for false.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
