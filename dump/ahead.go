package dump

import "context"

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
// the writing of the one before, on the other core.
type prefetcher struct {
	cancel context.CancelFunc
	p      *pipeline
	ahead  bool // mailboxes are opened ahead
	filter Filter
	ready  chan *spoolMailbox // opened, in the order of the dump
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
		for m := range pf.ready {
			m.Close()
		}
		<-pf.done
		pf.p.stop()
	}
}

func (pf *prefetcher) run(ctx context.Context, s *spoolSource) {
	defer close(pf.done)
	defer close(pf.ready)
	for _, name := range s.order {
		m, err := s.open(ctx, name, nil)
		if err != nil {
			m = &spoolMailbox{s: s, name: name, err: err, stop: func() {}}
		} else {
			m.mb = mailboxRecord(m.m)
			m.q = pf.p.queue(int(m.m.Index.NumRecords))
			m.produced = make(chan struct{})
		}
		select {
		case pf.ready <- m:
		case <-ctx.Done():
			if m.q != nil {
				m.q.close(ctx.Err())
				close(m.produced)
			}
			m.Close()
			return
		}
		if m.q != nil {
			m.produce(pf.filter)
			close(m.produced)
		}
	}
}

// take returns the mailbox name if it is the next one opened ahead;
// mailboxes opened before it are closed (Write asks for them in order,
// so there are none).
func (pf *prefetcher) take(name string) (*spoolMailbox, bool) {
	for m := range pf.ready {
		if m.name == name {
			return m, true
		}
		m.Close()
	}
	return nil, false
}
