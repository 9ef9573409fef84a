package restore

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mbtool/mbtool/guid"
)

// The read phase runs on three goroutines: the one that parses and
// checks the dump (restorer.read, and everything it calls) and two
// writers (lanes) that do the file-system work of staging, each in the
// order the parser hands it over (builder.stage, builder.op): a staged
// mailbox's directory, files, message files and message renames go to
// the lane of its box (pipeline.boxLane: every other mailbox), and the
// message files of APPLY MESSAGE written to msg/, whose bytes the
// parser has read and checked against their GUID already, to msgLane.
// The parser decides everything (what is written where, the staged
// messages' table, the boxes' state) and never looks at what a writer
// made, so they overlap without waiting for each other. The orders
// that matter, that a message file is written before the rename, link
// or copy that reads it, that a copy of a file in msg/ (to a mailbox of
// another partition) reads it before the rename that moves it to its
// first mailbox, and that a mailbox's directory is made before its
// files, are the order of a lane's queue, and across lanes a wait: an
// operation names the last one that wrote or read its source file
// (stageOp.after, from stagedMsg.made) and runs once that one's lane
// has run it. At 20,001 small mailboxes one writer was the read phase's
// bottleneck (2.75 s of CPU in a phase of 3 s, the parser 1.57 s).
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
// Memory: at most pipeDepth batches wait for each lane, besides the one
// it runs and the one the parser fills, so at most
// lanes*(pipeDepth+2)*pipeBatch operations; the message bytes they hold,
// and the held messages', are in pipeBufs buffers of at most pipeMsgMax
// bytes each (pipeBufs*pipeMsgMax = 8 MiB in all; of holdSlabSize for
// small messages, 2 MiB), taken by the parser (waiting for a writer to
// give one back if none is free) and given back once the parser has
// moved on to another and every message in it has been written;
// holdMax < pipeBufs, so the held ones never take them all. A larger
// message is written by the parser itself, straight from the dump, and
// so are held messages that go to msg/ while pipeBusy batches wait for
// msgLane or no buffer is free (the writers are behind: the parser
// takes on some of their work). The builders' index and cache writers
// hand over copies of their 64 KiB buffers (bufSink), each one
// operation: at most 64 KiB times the operations queued, in practice
// the few hundred bytes of a small mailbox's index.
//
// Errors: every operation has a seq, its place in the parser's order.
// The error of the earliest operation that failed is the run's (the one
// a single writer, running them all in that order, would have met
// first): from the first error on, the lanes run only the operations
// before it, and those that close what earlier ones opened
// (stageOp.always). It is returned by the parser's next send, or by
// finish, wrapped as the parser would have wrapped it at that point of
// the dump (dump offset, command), so it reads as before. A parser error
// stops the writers too: finish joins them on every path before the
// staging directories are removed.
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

// pipeSteal lets the parser write held message files to msg/ while
// their writer is behind (busy); off in the tests that need every
// message to go to a writer.
var pipeSteal = true

// pipeline is the writers of the read phase (its lanes) and their
// queues.
type pipeline struct {
	ctx   context.Context
	lanes []*lane
	free  chan []byte // the message buffers not in use
	wg    sync.WaitGroup
	seq   uint64 // the parser's: of the last operation queued

	// ran is signalled as a lane runs an operation that a lane waits for
	// (waitFor); waiting counts the lanes waiting.
	mu      sync.Mutex
	ran     *sync.Cond
	waiting atomic.Int32

	// err is the error of the earliest operation (by seq) that failed,
	// limit its seq (math.MaxUint64 while none has): no operation after
	// it runs from then on (but those that close: stageOp.always).
	errMu sync.Mutex
	err   *pipeError
	limit atomic.Uint64
	// stop is set by the parser to make the writers skip what is left.
	stop atomic.Bool
}

// lane is one writer goroutine of the read phase and its queue: the
// operations of the mailboxes given to it (builder.lane), in the order
// the parser queued them, and (lane 0, msgLane) the message files
// written to msg/.
type lane struct {
	ops   chan []stageOp
	batch []stageOp // the batch the parser fills
	wbuf  []byte    // the lane's copy buffer (restorer.copyBuf is the parser's)
	// done is the seq of the last operation it ran or skipped.
	done atomic.Uint64
}

// msgLane is the lane that writes the message files to msg/.
const msgLane = 0

// pipeLanes is how many lanes the read phase writes with: two, for the
// two cores the writing of 20,001 small mailboxes needs besides the
// parser, or one where the process has one core.
func pipeLanes() int {
	return min(2, max(1, runtime.GOMAXPROCS(0)))
}

// stageOp is one operation of a writer.
type stageOp struct {
	fn func() error
	// always: run even after an error (it closes what an earlier
	// operation opened).
	always bool
	slab   *holdSlab // held message bytes fn writes: unref'd once fn has run
	at     *dumpSpot // where in the dump it comes from, for its error
	seq    uint64    // its place among all the lanes' operations
	// after is the last operation that wrote or read the message file
	// fn renames, links or copies (stagedMsg.made): when it is another
	// lane's, fn runs once that lane has run it.
	after opRef
}

// opRef names an operation by its lane and seq; seq 0 is none.
type opRef struct {
	lane int
	seq  uint64
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

// pipeTestHook, when set (by tests), is called by a writer before each
// operation; an error it returns is that operation's. writeFault, when
// set, is called as a message file from a buffer is written, with its
// GUID and path (in msg/, or in a staged mailbox's directory): an error
// it returns is the write's.
// Each is called by one goroutine at a time (the lanes run at once).
// crossLaneHook, when set, is called by the parser as it queues, on lane,
// an operation that waits for after, of another lane.
var (
	crossLaneHook func(lane int, after opRef)
	pipeTestHook  func() error
	writeFault    func(g guid.GUID, path string) error
	hookMu        sync.Mutex // held around pipeTestHook's and writeFault's calls
)

func newPipeline(ctx context.Context) *pipeline {
	p := &pipeline{
		ctx:  ctx,
		free: make(chan []byte, pipeBufs),
	}
	p.ran = sync.NewCond(&p.mu)
	p.limit.Store(math.MaxUint64)
	for range pipeBufs {
		p.free <- nil // made on first use, as large as the messages need
	}
	for range pipeLanes() {
		l := &lane{ops: make(chan []stageOp, pipeDepth)}
		p.lanes = append(p.lanes, l)
		p.wg.Add(1)
		go p.run(l)
	}
	return p
}

// boxLane is the lane of the mailbox (box id) id.
func (p *pipeline) boxLane(id uint32) int { return int(id % uint32(len(p.lanes))) }

func (p *pipeline) run(l *lane) {
	defer p.wg.Done()
	for batch := range l.ops {
		for _, op := range batch {
			if op.always || p.runs(op.seq) {
				if err := p.runOp(op); err != nil {
					p.fail(op.seq, op.at, err)
				}
			}
			if op.slab != nil {
				p.unref(op.slab)
			}
			l.done.Store(op.seq)
			if p.waiting.Load() > 0 {
				p.mu.Lock()
				p.ran.Broadcast()
				p.mu.Unlock()
			}
		}
	}
}

// runOp runs op: one that does not close what others opened first waits
// for the operation it reads after (its own lane has run those before
// it), and is not run after all if an earlier one failed meanwhile.
func (p *pipeline) runOp(op stageOp) error {
	if !op.always {
		p.waitFor(op.after)
		if !p.runs(op.seq) {
			return nil
		}
		if err := p.ctx.Err(); err != nil {
			return err
		}
		if pipeTestHook != nil {
			hookMu.Lock()
			err := pipeTestHook()
			hookMu.Unlock()
			if err != nil {
				return err
			}
		}
	}
	return op.fn()
}

// runs reports whether the operation seq is to run: no earlier one
// failed, and the parser has not stopped.
func (p *pipeline) runs(seq uint64) bool {
	return seq < p.limit.Load() && !p.stop.Load()
}

// waitFor waits until the lane of r has run (or skipped) r (none: seq
// 0). The parser
// queues an operation only once the one it waits for is queued (send),
// and every operation waits only for an earlier one, so the earliest
// operation not run can always run.
func (p *pipeline) waitFor(r opRef) {
	l := p.lanes[r.lane]
	if r.seq == 0 || l.done.Load() >= r.seq {
		return
	}
	p.mu.Lock()
	p.waiting.Add(1)
	for l.done.Load() < r.seq {
		p.ran.Wait()
	}
	p.waiting.Add(-1)
	p.mu.Unlock()
}

// fail records the error of operation seq if it is the earliest so far:
// the run reports the error a single writer, running the operations in
// the parser's order, would have met first.
func (p *pipeline) fail(seq uint64, at *dumpSpot, err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil || seq < p.limit.Load() {
		p.err = spotError(at, err)
		p.limit.Store(seq)
	}
}

// spotError wraps err, an error of an operation of the command at
// (nil: none), with its place in the dump.
func spotError(at *dumpSpot, err error) *pipeError {
	if at != nil {
		err = fmt.Errorf("dump offset %d: %s: %w", at.off, at.verb, err)
	}
	return &pipeError{err}
}

// failed returns the writers' error, nil while they have none.
func (p *pipeline) failed() error {
	if p.limit.Load() == math.MaxUint64 {
		return nil
	}
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// nextSeq is the seq the next operation queued gets.
func (p *pipeline) nextSeq() uint64 { return p.seq + 1 }

// send queues op on lane i, unless the writers failed or the run was
// cancelled. The operation op waits for is queued first.
func (p *pipeline) send(i int, op stageOp) error {
	if err := p.failed(); err != nil && !op.always {
		if op.slab != nil {
			p.unref(op.slab)
		}
		return err
	}
	// One of its own lane has run before it: nothing to hand over.
	if a := op.after; a.seq > 0 && a.lane != i {
		if crossLaneHook != nil {
			crossLaneHook(i, a)
		}
		if b := p.lanes[a.lane].batch; len(b) > 0 && b[0].seq <= a.seq {
			if err := p.flush(a.lane); err != nil {
				if op.slab != nil {
					p.unref(op.slab)
				}
				return err
			}
		}
	}
	p.seq++
	op.seq = p.seq
	l := p.lanes[i]
	if l.batch == nil {
		l.batch = make([]stageOp, 0, pipeBatch)
	}
	l.batch = append(l.batch, op)
	if len(l.batch) < pipeBatch {
		return nil
	}
	return p.flush(i)
}

// flush hands the batch being filled for lane i to its writer.
func (p *pipeline) flush(i int) error {
	l := p.lanes[i]
	if len(l.batch) == 0 {
		return nil
	}
	b := l.batch
	l.batch = nil
	select {
	case l.ops <- b:
		return nil
	case <-p.ctx.Done():
		// What it holds must be run or given back all the same: the
		// writer is alive, and waits for nothing but what is queued.
		l.ops <- b
		return p.ctx.Err()
	}
}

// flushAll hands every lane its batch.
func (p *pipeline) flushAll() error {
	var first error
	for i := range p.lanes {
		if err := p.flush(i); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// busy reports whether the writer of msg/ is behind: so many batches
// wait, or no buffer is free, that the parser is better off writing a
// message file itself.
func (p *pipeline) busy() bool {
	return pipeSteal && (len(p.lanes[msgLane].ops) >= pipeBusy || len(p.free) == 0)
}

// buffer returns a message buffer of at least n bytes (n <= pipeMsgMax),
// waiting until a writer has given one back (the batches being filled
// are handed over first: they may hold them all).
func (p *pipeline) buffer(n int) ([]byte, error) {
	var b []byte
	select {
	case b = <-p.free:
	default:
		if err := p.flushAll(); err != nil {
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

// finish waits for the writers to run what is queued and returns their
// error. When parsing failed, only the operations that close what others
// opened run, unless a writer failed: then those before its operation
// run too, so that the error is the earliest, as with one writer.
func (p *pipeline) finish(parseFailed bool) error {
	if parseFailed && p.failed() == nil {
		p.stop.Store(true)
	}
	for _, l := range p.lanes {
		if len(l.batch) > 0 {
			l.ops <- l.batch // not flush: a cancelled run's too
			l.batch = nil
		}
		close(l.ops)
	}
	p.wg.Wait()
	return p.failed()
}

// writerBuf returns the copy buffer of the goroutine that runs the
// builder's operations.
func (bl *builder) writerBuf() []byte {
	p := bl.rs.pipe
	if p == nil {
		return bl.rs.copyBuf()
	}
	l := p.lanes[bl.lane]
	if l.wbuf == nil {
		l.wbuf = make([]byte, 64<<10)
	}
	return l.wbuf
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
