package dump

import (
	"context"
	"runtime"
	"sync"
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

// openUnit is a run of consecutive mailboxes of the dump with one owner
// (shared mailboxes: owner ""), opened in order by one opener.
type openUnit struct {
	names []string
	ch    chan *spoolMailbox // opened, in order; closed after the last
}

// prefetcher opens the mailboxes of the plan in the order of the dump
// ahead of the writer and reads their message files into the run's
// pipeline: the work of opening, locking and reading one mailbox overlaps
// the writing of the one before, on the other core.
//
// With more than one opener, the openers open the mailboxes of different
// owners at once (each owner's run of mailboxes in order, by one opener),
// and one sequencer hands them on in the order of the dump and submits
// their files to the pipeline (the budget is taken in the order of the
// dump only: pipeline). An opener hands each mailbox on before it opens
// the next of the same owner, and the sequencer waits only for the
// earliest owner not yet handed on, whose opener waits for nothing a later
// one holds: a repack queued for an open mailbox's exclusive name lock
// (holding the owner's namespace lock) stalls only that owner's opener,
// until the writer has written and closed the mailbox, as with one.
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

// openMailbox opens a mailbox of the plan for the prefetcher: an error is
// carried to the writer in the mailbox.
func (s *spoolSource) openAhead(ctx context.Context, name string) *spoolMailbox {
	m, err := s.open(ctx, name, nil)
	if err != nil {
		return &spoolMailbox{s: s, name: name, err: err, stop: func() {}}
	}
	m.mb = mailboxRecord(m.m)
	return m
}

// units splits the plan's order into runs of one owner.
func (s *spoolSource) units() []openUnit {
	var units []openUnit
	cfg := s.spool.Config
	start, owner := 0, ""
	for i, name := range s.order {
		o := s.entries[name].Owner(cfg)
		if i > 0 && o != owner {
			units = append(units, openUnit{names: s.order[start:i]})
			start = i
		}
		owner = o
	}
	if start < len(s.order) {
		units = append(units, openUnit{names: s.order[start:]})
	}
	return units
}

func (pf *prefetcher) run(ctx context.Context, s *spoolSource) {
	defer close(pf.done)
	defer close(pf.ready)
	openers := s.openers
	if openers <= 0 {
		openers = runtime.GOMAXPROCS(0)
	}
	units := s.units()
	// One owner's run (dump --user) has nothing to open in parallel, and
	// an opener of its own would only keep more of its mailboxes open
	// ahead of the writer than lookahead says.
	if openers == 1 || len(units) == 1 {
		for _, name := range s.order {
			if !pf.handOn(ctx, s.openAhead(ctx, name)) {
				return
			}
		}
		return
	}
	for i := range units {
		units[i].ch = make(chan *spoolMailbox, 1)
	}
	// slots bounds the units taken by openers and not yet handed on by
	// the sequencer, and so the mailboxes held open.
	slots := make(chan struct{}, openers+1)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	octx, ocancel := context.WithCancel(ctx)
	for range openers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case slots <- struct{}{}:
				case <-octx.Done():
					return
				}
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(units) {
					return
				}
				u := &units[i]
				for _, name := range u.names {
					m := s.openAhead(octx, name)
					select {
					case u.ch <- m:
					case <-octx.Done():
						m.Close()
						return
					}
				}
				close(u.ch)
			}
		}()
	}
	defer func() {
		ocancel()
		wg.Wait()
		// What the openers handed on and the sequencer did not take.
		for i := range units {
			for {
				select {
				case m, ok := <-units[i].ch:
					if ok {
						m.Close()
						continue
					}
				default:
				}
				break
			}
		}
	}()
	for i := range units {
		u := &units[i]
		for {
			var m *spoolMailbox
			var ok bool
			select {
			case m, ok = <-u.ch:
			case <-ctx.Done():
				return
			}
			if !ok {
				break
			}
			if !pf.handOn(ctx, m) {
				return
			}
		}
		<-slots
	}
}

// handOn gives the writer an opened mailbox and submits its message files
// to the pipeline; it reports false when the run is cancelled.
func (pf *prefetcher) handOn(ctx context.Context, m *spoolMailbox) bool {
	if m.m != nil {
		m.q = pf.p.queue()
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
		return false
	}
	if m.q != nil {
		m.produce(pf.filter)
		close(m.produced)
	}
	return true
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
