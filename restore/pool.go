package restore

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// commitWorkers is how many goroutines do the commit phase's file work
// that is independent per mailbox (writeMeta, the rename of placeBox):
// one per core, at most 4 (the work is mostly system calls on one file
// system). 1 does the work in the caller's goroutine. (A variable for
// the tests.)
var commitWorkers = min(runtime.GOMAXPROCS(0), 4)

// poolWindow bounds how many items an inOrder holds fed but not yet
// handed back (each a loaded box: memory stays flat in mailbox count).
const poolWindow = 64

// inOrder runs a function on items fed to it, on up to commitWorkers
// goroutines, and hands each item back with the function's error in the
// order the items were fed, in the feeding goroutine: what depends on
// the order (parking a box, refusing it, mailboxes.db, crash points)
// stays there, serial. The function must touch nothing but its item and
// what is safe for concurrent use. Every goroutine it starts has ended
// once close returns, which its user defers, whatever the path out.
type inOrder[T any] struct {
	fn      func(T) error
	collect func(T, error) error
	// drop, if set, is called by close (in the feeding goroutine) with
	// each item run but not handed back, for what the item holds (the
	// new files a job wrote without names).
	drop  func(T)
	jobs  chan *slot[T]
	queue []*slot[T] // fed, not yet handed back, oldest first
	wg    sync.WaitGroup
	// stopped is set once collect has returned an error, or close has
	// begun: the workers then skip the items they have not started
	// (errStopped), so that after a failed item no more than the ones
	// already running change anything.
	stopped atomic.Bool
}

// errStopped is the error of an item an inOrder skipped (see stopped).
var errStopped = errors.New("restore: not run: an earlier item failed")

type slot[T any] struct {
	v    T
	err  error
	done chan struct{}
}

// newInOrder returns an inOrder that runs fn on each item and hands it
// to collect; collect's first error stops it (put and flush return it).
func newInOrder[T any](fn func(T) error, collect func(T, error) error) *inOrder[T] {
	p := &inOrder[T]{fn: fn, collect: collect}
	if n := commitWorkers; n > 1 {
		jobs := make(chan *slot[T], poolWindow)
		p.jobs = jobs
		p.wg.Add(n)
		for range n {
			go func() {
				defer p.wg.Done()
				for s := range jobs {
					if p.stopped.Load() {
						s.err = errStopped
					} else {
						s.err = p.fn(s.v)
					}
					close(s.done)
				}
			}()
		}
	}
	return p
}

// put feeds v, first handing back the oldest item if the window is full.
func (p *inOrder[T]) put(v T) error {
	if p.jobs == nil {
		return p.collect(v, p.fn(v))
	}
	if len(p.queue) == poolWindow {
		if err := p.next(); err != nil {
			return err
		}
	}
	s := &slot[T]{v: v, done: make(chan struct{})}
	p.queue = append(p.queue, s)
	p.jobs <- s
	return nil
}

// next waits for the oldest item fed and hands it back.
func (p *inOrder[T]) next() error {
	s := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	<-s.done
	err := p.collect(s.v, s.err)
	if err != nil {
		p.stopped.Store(true)
	}
	return err
}

// flush hands back every item fed, in order.
func (p *inOrder[T]) flush() error {
	for len(p.queue) > 0 {
		if err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

// close stops the workers and waits for them: an item fed but not
// handed back (after an error) is run to its end if it had begun, else
// skipped, and dropped (given to drop, if set).
func (p *inOrder[T]) close() {
	if p.jobs != nil {
		p.stopped.Store(true)
		close(p.jobs)
		p.jobs = nil
		p.wg.Wait()
	}
	if p.drop != nil {
		for _, s := range p.queue {
			p.drop(s.v)
		}
	}
	p.queue = nil
}
