package dump

import (
	"context"

	"github.com/mbtool/mbtool/partition"
)

// lookahead is how many mailboxes the prefetcher keeps open, their files
// being read, beyond the one being written: enough that the writer does
// not wait for a small mailbox's locks, index and files, while the locks
// held stay a handful.
//
// Holding a mailbox's shared name lock while the next ones are opened
// cannot deadlock with Cyrus (docs/cyrus/locks.md §4.2): a repack queued
// for the exclusive name lock of an open mailbox may hold its owner's
// namespace lock and so stall the opening of the next one, but the writer
// never waits for a mailbox that is not yet open while holding one, and
// it closes each as soon as it is written, which lets the repack through.
const lookahead = 2

// prefetcher opens the mailboxes of the plan in the order of the dump
// ahead of the writer and reads their message files into the run's
// pipeline: the work of opening, locking and reading one mailbox overlaps
// the writing of the one before, on the other core. It lists each user's
// mailboxes as it reaches the user and hands the list to the writer
// (spoolSource.User) in the same queue, before the mailboxes: the writer
// then asks for the very mailboxes it opens, in their order.
type prefetcher struct {
	cancel context.CancelFunc
	p      *pipeline
	ahead  bool // mailboxes are opened ahead
	filter Filter
	ready  chan *spoolMailbox // users' lists and opened mailboxes, in the order of the dump
	next   *spoolMailbox      // taken from ready and not yet wanted (the writer's goroutine's)
	done   chan struct{}      // closed when run has returned
}

// Prefetch starts the run's hashing workers and, with ahead, opens the
// plan's mailboxes in the order Write asks for them (each user's in
// mailboxes.db order, then the single ones) and reads their files with
// the filter's Skip. The returned stop ends it and releases what it
// holds; Write calls it before returning.
func (s *spoolSource) Prefetch(ctx context.Context, f Filter, ahead bool) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	pf := &prefetcher{cancel: cancel, p: newPipeline(ctx, s.workers, s.bufs), ahead: ahead, filter: f,
		ready: make(chan *spoolMailbox, lookahead), done: make(chan struct{})}
	s.pf = pf
	if ahead {
		go pf.run(ctx, s)
	} else {
		close(pf.ready)
		close(pf.done)
	}
	return func() {
		cancel()
		if pf.next != nil {
			pf.next.Close()
			pf.next = nil
		}
		for m := range pf.ready {
			m.Close()
		}
		<-pf.done
		pf.p.stop()
	}
}

// userList is a user's mailboxes as the prefetcher listed them, handed to
// the writer in the queue of opened mailboxes (as a spoolMailbox with
// user set and nothing open).
type userList struct {
	name    string
	entries []partition.Entry
	err     error
}

func (pf *prefetcher) run(ctx context.Context, s *spoolSource) {
	defer close(pf.done)
	defer close(pf.ready)
	for _, u := range s.plan.Users {
		mbs, err := s.spool.UserMailboxes(u)
		if !pf.send(ctx, &spoolMailbox{s: s, stop: func() {}, user: &userList{name: u, entries: mbs, err: err}}) {
			return
		}
		if err != nil {
			return // the writer ends the run
		}
		for _, e := range mbs {
			if !pf.open(ctx, s, e.Name, e, nil) {
				return
			}
		}
	}
	for _, name := range s.plan.Mailboxes {
		e, err := s.spool.Lookup(name)
		if !pf.open(ctx, s, name, e, err) {
			return
		}
	}
}

// open opens one mailbox (or records why it cannot be opened: lookupErr,
// or the opening's error), hands it to the writer and reads its files;
// false when the run is cancelled.
func (pf *prefetcher) open(ctx context.Context, s *spoolSource, name string, e partition.Entry, lookupErr error) bool {
	var m *spoolMailbox
	err := lookupErr
	if err == nil {
		m, err = s.open(ctx, e, nil)
	}
	if err != nil {
		m = &spoolMailbox{s: s, name: name, err: notDumped(err), stop: func() {}}
	} else {
		m.mb = mailboxRecord(m.m)
		m.q = pf.p.queue(int(m.m.Index.NumRecords))
		m.produced = make(chan struct{})
	}
	if !pf.send(ctx, m) {
		return false
	}
	if m.q != nil {
		m.produce(pf.filter)
		close(m.produced)
	}
	return true
}

// send queues m for the writer, or closes it when the run is cancelled.
func (pf *prefetcher) send(ctx context.Context, m *spoolMailbox) bool {
	select {
	case pf.ready <- m:
		return true
	case <-ctx.Done():
		if m.q != nil {
			m.q.close(ctx.Err())
			close(m.produced)
		}
		m.Close()
		return false
	}
}

// peek returns the next item of the queue without taking it, nil once
// the prefetcher is done.
func (pf *prefetcher) peek() *spoolMailbox {
	if pf.next == nil {
		pf.next = <-pf.ready
	}
	return pf.next
}

// takeUser returns the list of the user's mailboxes if it is the next
// one the prefetcher made; what was opened before it is closed (Write
// asks for users and mailboxes in order, so there is nothing).
func (pf *prefetcher) takeUser(name string) ([]partition.Entry, error, bool) {
	for m := pf.peek(); m != nil; m = pf.peek() {
		pf.next = nil
		if m.user != nil && m.user.name == name {
			return m.user.entries, m.user.err, true
		}
		m.Close()
	}
	return nil, nil, false
}

// take returns the mailbox name if it is the next one opened ahead;
// mailboxes opened before it are closed (Write asks for them in order,
// so there are none). A user's list is left for takeUser.
func (pf *prefetcher) take(name string) (*spoolMailbox, bool) {
	for m := pf.peek(); m != nil && m.user == nil; m = pf.peek() {
		pf.next = nil
		if m.name == name {
			return m, true
		}
		m.Close()
	}
	return nil, false
}
