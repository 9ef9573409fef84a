package restore

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/mbtool/mbtool/guid"
)

// The read phase runs on two goroutines: the one that parses and checks
// the dump (restorer.read, and everything it calls) and a writer that
// does the file-system work of staging, in the order the parser hands it
// over (restorer.stageOp): the message files of APPLY MESSAGE, whose
// bytes the parser has read and checked against their GUID already, and
// a staged mailbox's directory, files, message files and message renames.
// The parser decides everything (what is written where, the staged
// messages' table, the boxes' state) and never looks at what the writer
// made, so the two overlap without waiting for each other; the one order
// that matters, that a message file is written before the rename or link
// that puts it into a mailbox, and a mailbox's directory made before its
// files, is the order of the queue.
//
// Held messages: a message file of at most pipeMsgMax bytes is read
// into a pipeline buffer (a holdSlab, which takes small messages one
// after another) and held, nothing queued, until the mailbox that first
// uses its GUID is staged: place then has the writer create it there as
// UID., its mtime set on the descriptor (writeStaged), where it used to
// be written to msg/ under its GUID and then renamed (a rename and a
// utimensat by name each, in one large directory). The staged messages'
// table says the same either way (the file's first box, UID and mtime),
// so every later use of the GUID (links, copies, where) is as after a
// rename. What is held is bounded: when a message needs a new slab and
// holdMax slabs hold messages, or holdMsgs messages are held, at the
// next APPLY MESSAGE, and at the end of the dump, those held are written
// to msg/ as before, each with its own APPLY MESSAGE's place in the dump
// for its error; so is one that a mailbox on another partition copies.
// Which messages are held depends on the dump alone, never on how far
// behind the writer is, so a run takes the same steps of package
// cyrusfs every time (the kill tests count on it).
//
// Operations go to the writer in batches of pipeBatch, so that it is
// woken once a batch rather than once an operation (a wake-up costs
// about as much as the system call it hands over).
//
// Memory: at most pipeDepth batches wait, besides the one the writer
// runs and the one the parser fills, so at most (pipeDepth+2)*pipeBatch
// operations; the message bytes they hold, and the held messages', are
// in pipeBufs buffers of at most pipeMsgMax bytes each
// (pipeBufs*pipeMsgMax = 8 MiB in all; of holdSlabSize for small
// messages, 2 MiB), taken by the parser (waiting for
// the writer to give one back if none is free) and given back once the
// parser has moved on to another and every message in it has been
// written; holdMax < pipeBufs, so the held ones never take them all. A
// larger message is written by the parser itself, straight from the
// dump, and so are held messages that go to msg/ while pipeBusy batches
// wait or no buffer is free (the writer is behind: the parser takes on
// some of its work, so that both cores stay busy). The builders' index
// and cache writers hand over copies of their 64 KiB buffers (bufSink),
// each one operation: at most 64 KiB times the operations queued, in
// practice the few hundred bytes of a small mailbox's index.
//
// Errors: the first error of the writer stops it (it runs only the
// operations that close what earlier ones opened, stageOp.always) and
// is returned by the parser's next stageOp, or by finish, wrapped as the
// parser would have wrapped it at that point of the dump (dump offset,
// command), so it reads as before. A parser error stops the writer too:
// finish joins it on every path before the staging directories are
// removed.
const (
	pipeBatch  = 64
	pipeDepth  = 4
	pipeBufs   = 32
	pipeMsgMax = 256 << 10
)

// pipeBusy is how many waiting batches make the writer behind (busy).
const pipeBusy = 2

// holdMax is how many message buffers (slabs) may hold messages for
// the mailboxes to come, holdMsgs how many messages may be held
// ("Held messages" above). A slab is holdSlabSize bytes, or the one
// message's size where that is larger: buffers that grew to
// pipeMsgMax for small messages packed together would add 7.5 MiB to
// every run's peak RSS (37 -> 47 MiB at 20,001 mailboxes), where
// those of 64 KiB hold 1 MiB of small messages for the next mailbox,
// hundreds of them.
const (
	holdMax      = pipeBufs / 2
	holdMsgs     = 4096
	holdSlabSize = 64 << 10
)

// pipeSteal lets the parser write held message files to msg/ while the
// writer is behind (busy); off in the tests that need every message to
// go to the writer.
var pipeSteal = true

// pipeline is the writer of the read phase and its queue.
type pipeline struct {
	ctx   context.Context
	ops   chan []stageOp
	batch []stageOp   // the batch the parser fills
	free  chan []byte // the message buffers not in use
	done  chan struct{}
	wbuf  []byte // the writer's copy buffer (restorer.copyBuf is the parser's)

	err atomic.Pointer[pipeError] // the first error of the writer
	// stop is set by the parser to make the writer skip what is left.
	stop atomic.Bool
}

// stageOp is one operation of the writer.
type stageOp struct {
	fn func() error
	// always: run even after an error (it closes what an earlier
	// operation opened).
	always bool
	slab   *holdSlab // held message bytes fn writes: unref'd once fn has run
	at     *dumpSpot // where in the dump it comes from, for its error
}

// dumpSpot is the command of the dump being read, for the errors of the
// operations it queued.
type dumpSpot struct {
	off  int64
	verb string
}

// pipeError is an error of the writer (or of a held message the parser
// wrote: toMsgDir), already wrapped with its place in the dump.
type pipeError struct{ err error }

func (e *pipeError) Error() string { return e.err.Error() }
func (e *pipeError) Unwrap() error { return e.err }

// pipeTestHook, when set (by tests), is called by the writer before each
// operation; an error it returns is that operation's. writeFault, when
// set, is called as a message file from a buffer is written, with its
// GUID and path (in msg/, or in a staged mailbox's directory): an error
// it returns is the write's.
var (
	pipeTestHook func() error
	writeFault   func(g guid.GUID, path string) error
)

func newPipeline(ctx context.Context) *pipeline {
	p := &pipeline{
		ctx:  ctx,
		ops:  make(chan []stageOp, pipeDepth),
		free: make(chan []byte, pipeBufs),
		done: make(chan struct{}),
	}
	for range pipeBufs {
		p.free <- nil // made on first use, as large as the messages need
	}
	go p.run()
	return p
}

func (p *pipeline) run() {
	defer close(p.done)
	for batch := range p.ops {
		for _, op := range batch {
			if op.always || p.err.Load() == nil && !p.stop.Load() {
				err := p.ctx.Err()
				if op.always {
					err = nil
				}
				if err == nil && pipeTestHook != nil && !op.always {
					err = pipeTestHook()
				}
				if err == nil {
					err = op.fn()
				}
				if err != nil {
					p.fail(op.at, err)
				}
			}
			if op.slab != nil {
				p.unref(op.slab)
			}
		}
	}
}

// fail records the writer's first error.
func (p *pipeline) fail(at *dumpSpot, err error) {
	p.err.CompareAndSwap(nil, spotError(at, err))
}

// spotError wraps err, an error of an operation of the command at
// (nil: none), with its place in the dump.
func spotError(at *dumpSpot, err error) *pipeError {
	if at != nil {
		err = fmt.Errorf("dump offset %d: %s: %w", at.off, at.verb, err)
	}
	return &pipeError{err}
}

// failed returns the writer's error, nil while it has none.
func (p *pipeline) failed() error {
	if e := p.err.Load(); e != nil {
		return e
	}
	return nil
}

// send queues op, unless the writer failed or the run was cancelled.
func (p *pipeline) send(op stageOp) error {
	if err := p.failed(); err != nil && !op.always {
		if op.slab != nil {
			p.unref(op.slab)
		}
		return err
	}
	if p.batch == nil {
		p.batch = make([]stageOp, 0, pipeBatch)
	}
	p.batch = append(p.batch, op)
	if len(p.batch) < pipeBatch {
		return nil
	}
	return p.flush()
}

// flush hands the batch being filled to the writer.
func (p *pipeline) flush() error {
	if len(p.batch) == 0 {
		return nil
	}
	b := p.batch
	p.batch = nil
	select {
	case p.ops <- b:
		return nil
	case <-p.ctx.Done():
		// What it holds must be run or given back all the same: the
		// writer is alive, and waits for nothing but the queue.
		p.ops <- b
		return p.ctx.Err()
	}
}

// busy reports whether the writer is behind: so many batches wait, or
// no buffer is free, that the parser is better off writing a message
// file itself.
func (p *pipeline) busy() bool {
	return pipeSteal && (len(p.ops) >= pipeBusy || len(p.free) == 0)
}

// buffer returns a message buffer of at least n bytes (n <= pipeMsgMax),
// waiting until the writer has given one back (the batch being filled
// is handed over first: it may hold them all).
func (p *pipeline) buffer(n int) ([]byte, error) {
	var b []byte
	select {
	case b = <-p.free:
	default:
		if err := p.flush(); err != nil {
			return nil, err
		}
		select {
		case b = <-p.free:
		case <-p.ctx.Done():
			return nil, p.ctx.Err()
		}
	}
	if cap(b) < n {
		b = make([]byte, 0, max(n, 16<<10))
	}
	return b[:0], nil
}

// holdSlab is a message buffer that held messages are appended to
// ("Held messages" above): it goes back to the pipeline once the parser
// has moved on to another and each of its messages has been written.
type holdSlab struct {
	// buf is the pipeline's buffer, given back whole; b the slab in it,
	// its capacity the slab's size whatever buf's is (a buffer grown
	// for a larger message once), so that which messages a slab takes
	// depends on the dump alone, not on which buffer came back first.
	buf []byte
	b   []byte // the parser's: appended to, never moved (room is checked)
	// refs counts its messages not written yet, and 1 while it is the
	// parser's current one.
	refs atomic.Int32
	held int // the parser's: its messages still held
}

// unref drops one reference to s, giving its buffer back with the last.
func (p *pipeline) unref(s *holdSlab) {
	if s.refs.Add(-1) == 0 {
		p.free <- s.buf[:0]
	}
}

// finish waits for the writer to run what is queued (all of it when
// parsing succeeded, else only the always operations) and returns its
// error.
func (p *pipeline) finish(parseFailed bool) error {
	if parseFailed {
		p.stop.Store(true)
	}
	if len(p.batch) > 0 {
		p.ops <- p.batch // not flush: a cancelled run's too
		p.batch = nil
	}
	close(p.ops)
	<-p.done
	return p.failed()
}

// stageOp has the writer run fn after everything queued before it, or
// runs it at once outside the read phase (or in a test that turns the
// pipeline off). The error it returns is the writer's error so far (of
// an earlier operation), not fn's: fn's comes out of a later call, or of
// the end of the read phase.
func (rs *restorer) stageOp(fn func() error) error {
	if rs.pipe == nil {
		return fn()
	}
	return rs.pipe.send(stageOp{fn: fn, at: rs.spot})
}

// stageClose is stageOp for an operation that closes what earlier ones
// opened: it runs even after an error.
func (rs *restorer) stageClose(fn func() error) error {
	if rs.pipe == nil {
		return fn()
	}
	return rs.pipe.send(stageOp{fn: fn, always: true, at: rs.spot})
}

// writerBuf returns the copy buffer of the goroutine that runs the
// staging operations.
func (rs *restorer) writerBuf() []byte {
	if rs.pipe == nil {
		return rs.copyBuf()
	}
	if rs.pipe.wbuf == nil {
		rs.pipe.wbuf = make([]byte, 64<<10)
	}
	return rs.pipe.wbuf
}

// bufSink is what a builder's buffered writers write to: in the read
// phase each Write hands a copy of the bytes to the writer goroutine
// (builder.op), which writes them to the file *f, made by an earlier
// operation; outside it, Write writes to *f at once.
type bufSink struct {
	bl *builder
	f  *builderFile
}

func (s bufSink) Write(b []byte) (int, error) {
	if s.bl.rs.pipe == nil {
		return (*s.f).Write(b)
	}
	c := append([]byte(nil), b...)
	f := s.f
	if err := s.bl.op(func() error { _, err := (*f).Write(c); return err }); err != nil {
		return 0, err
	}
	return len(b), nil
}

// noPipeline, when set (by tests), makes the read phase run every
// staging operation on the parsing goroutine, as before the pipeline.
var noPipeline bool
