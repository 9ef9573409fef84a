package dump

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
	"golang.org/x/sys/unix"
)

// Memory budget of the read-ahead: message files up to a size (bufPool's
// whole: half the read-ahead, at least smallMax and at most wholeMax) are
// read and hashed by workers into buffers, at most Options.ReadAhead
// bytes of them in flight (DefaultReadAhead); larger files are hashed by
// a worker and copied by the writer straight from the file, so read
// twice, the second time on the writer, the dump's one sequential stage.
// In the generated 100,000-message partition, files of 1 to 4.2 MB (192
// of them) held 47% of the bytes; read whole, dump's read calls on the
// writer went from 450 MB to none.
const (
	smallMax = 1 << 20
	wholeMax = 4 << 20
	// tokenSize is the unit of the read-ahead's budget and the size of
	// its buffers: a file read whole takes as many as its bytes and one
	// more fill. Most message files fit in one. With 64 KiB, a message of
	// a few KB held a whole 64 KiB of the budget, so 8 MiB of read-ahead
	// was about 128 messages in flight, and the writer waited for the
	// batch a worker was hashing (a 4 MiB file) while the producer waited
	// for budget held by messages already hashed; with 16 KiB, dump -o - |
	// cat of the generated 100,000-message partition took 1.28 s against
	// 1.54 s (medians of 5 alternating runs), peak RSS the same.
	tokenSize = 16 << 10
	// largeRead is the size of the reads that hash a large file.
	largeRead = 256 << 10
	// DefaultReadAhead is the read-ahead of a dump unless
	// Options.ReadAhead says otherwise.
	DefaultReadAhead = 8 << 20
	// CompressReadAhead is the read-ahead of a compressed dump: zstd's
	// encoder keeps 16 MiB of history (twice its 8 MiB window), and is
	// the dump's slowest stage, so the workers keep ahead of it with a
	// smaller lead. Measured on the generated 100,000-message partition,
	// peak RSS 68 MiB -> 60 MiB, time unchanged (2.84-4.37 s against
	// 2.89-3.39 s, 3 runs each).
	CompressReadAhead = 2 << 20
)

var errStopped = errors.New("stopped")

// job is one message file to embed.
type job struct {
	uid      uint32
	guid     guid.GUID
	size     int64
	expunged bool
	m        *partition.Mailbox
	rec      partition.Record
}

// path is the job's message file, for errors: derived, not kept, so that
// the many jobs that succeed cost no path string.
func (j *job) path() string { return j.m.MessagePath(j.rec) }

// sourceError is a message file that is missing, unreadable, of the wrong
// size or whose SHA-1 is not its GUID.
type sourceError struct {
	path string
	err  error
}

func (e *sourceError) Error() string {
	var pe *fs.PathError
	if errors.As(e.err, &pe) && pe.Path == e.path {
		return e.err.Error() // it names the file already
	}
	return fmt.Sprintf("%s: %v", e.path, e.err)
}
func (e *sourceError) Unwrap() error { return e.err }

// result is a job's outcome, ready for the writer.
type result struct {
	job
	data    [][]byte    // the file's bytes, for a file read whole
	one     [1][]byte   // data's backing array for a file in one buffer
	info    os.FileInfo // the file hashed, for large files
	err     error
	missing bool // the file does not exist
	dup     bool // same GUID as an earlier job of this mailbox that succeeded
	tokens  int
	p       *pipeline
}

type pending struct {
	result
	b     *batch   // the batch it was handed to the workers in
	first *pending // for a duplicate GUID within the mailbox: the first job
}

// batchMax is how many jobs of a queue are handed to a worker, and then
// to the writer, at once: most message files are small, and a hand-off
// per file (a channel send to a worker, one to the writer, a close and
// the wake-ups) cost as much as reading one.
const batchMax = 16

// batchBytes ends a batch early: a batch of large files would keep the
// writer waiting for one worker.
const batchBytes = 256 << 10

// batch is a run of consecutive jobs of one queue. A worker hashes them
// in order and closes done; the writer takes them in order.
type batch struct {
	jobs  []pending // never grows past its capacity: jobs point into it
	bytes int64     // the jobs' sizes
	done  chan struct{}
}

// pipeline reads and hashes message files ahead of the writer for a whole
// run, across mailboxes: its workers live as long as the run, and the
// memory budget (tokens) is shared by every mailbox's queue. Only the
// producer takes tokens, in the order of the dump, and the writer returns
// them in that same order, so a queue waiting for budget never holds back
// one the writer is emptying: a producer hands its batch on before it
// waits for budget.
type pipeline struct {
	ctx    context.Context
	work   chan *batch
	tokens *budget
	bufs   *bufPool
	wg     sync.WaitGroup
}

// queue is one mailbox's jobs, in UID order.
type queue struct {
	p     *pipeline
	order chan *batch
	cur   *batch // the batch being filled; the producer's only
	mu    sync.Mutex
	// byGUID holds the jobs in flight (submitted, their batch not yet
	// taken by next), for duplicates within the mailbox: a later job
	// with the same GUID waits for the first instead of reading the file
	// again. Once the first is taken, the dumper's table of embedded
	// GUIDs answers for it, so this map stays as small as the
	// read-ahead, however large the mailbox.
	byGUID  map[guid.GUID]*pending // under mu
	perr    error                  // under mu
	head    *batch                 // the batch next takes from; the writer's only
	taken   int                    // jobs of head taken
	drained bool                   // next has returned the last result
	left    int                    // jobs still to come, at most; the producer's only
}

func newPipeline(ctx context.Context, workers int, bufs *bufPool) *pipeline {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &pipeline{
		ctx:    ctx,
		work:   make(chan *batch, workers),
		tokens: newBudget(ctx, int(bufs.budget/tokenSize)),
		bufs:   bufs,
	}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var scratch []byte // for large files, allocated at the first
			for b := range p.work {
				for i := range b.jobs {
					pd := &b.jobs[i]
					if pd.dup {
						continue
					}
					if pd.size > p.bufs.whole && scratch == nil {
						scratch = make([]byte, largeRead)
					}
					pd.result.hash(scratch)
				}
				close(b.done)
			}
		}()
	}
	return p
}

// stop ends the workers once the jobs handed to them are done; no job may
// be submitted afterwards.
func (p *pipeline) stop() {
	close(p.work)
	p.wg.Wait()
}

// queue returns a new, empty queue for one mailbox of at most records
// jobs (its index's record count).
func (p *pipeline) queue(records int) *queue {
	return &queue{p: p, order: make(chan *batch, max(1, p.tokens.size/batchMax)), byGUID: map[guid.GUID]*pending{},
		left: records}
}

// newBatch returns an empty batch sized for the jobs the queue has left,
// batchMax at most: most mailboxes of a partition hold a few messages,
// and a batchMax array of jobs for each was most of the bytes a dump
// allocated per mailbox (with it the collector's work). A queue given
// more jobs than it was told gets batches of one, still correct.
func (q *queue) newBatch() *batch {
	return &batch{jobs: make([]pending, 0, min(batchMax, max(1, q.left))), done: make(chan struct{})}
}

// submit queues a job; it blocks while the memory budget is spent.
func (q *queue) submit(j job) error {
	p := q.p
	if q.cur == nil {
		q.cur = q.newBatch()
	}
	q.left--
	q.cur.jobs = append(q.cur.jobs, pending{result: result{job: j, p: p}, b: q.cur})
	pd := &q.cur.jobs[len(q.cur.jobs)-1]
	q.mu.Lock()
	first, ok := q.byGUID[j.guid]
	if !ok {
		q.byGUID[j.guid] = pd
	}
	q.mu.Unlock()
	if ok {
		pd.first = first
		pd.dup = true
	} else {
		n := 1
		if j.size <= p.bufs.whole {
			n = tokensFor(j.size)
		}
		if !p.tokens.tryTake(n) {
			// The budget is spent: what is batched goes to the
			// workers first (the writer may be waiting for it), and
			// the producer waits until the writer has returned a
			// good part of the budget, not a token at a time, which
			// would hand the workers a batch per file again.
			if len(q.cur.jobs) > 1 {
				b := q.cur
				b.jobs = b.jobs[:len(b.jobs)-1]
				q.left++ // the moved job is counted again below
				rest := q.newBatch()
				q.left--
				rest.jobs = append(rest.jobs, *pd)
				q.cur = rest
				pd = &rest.jobs[0]
				pd.b = rest
				q.mu.Lock()
				q.byGUID[j.guid] = pd
				q.mu.Unlock()
				if err := q.send(b); err != nil {
					return err
				}
			}
			if err := p.tokens.take(n); err != nil {
				q.dropCur()
				return err
			}
		}
		pd.tokens = n
	}
	q.cur.bytes += j.size
	// A batch ends after a large file, or batchBytes: the writer waits
	// for a whole batch, and the other worker hashes the next meanwhile.
	if len(q.cur.jobs) == cap(q.cur.jobs) || q.cur.bytes >= batchBytes {
		b := q.cur
		q.cur = nil
		return q.send(b)
	}
	return nil
}

// send hands a batch to the writer's queue and to the workers.
func (q *queue) send(b *batch) error {
	select {
	case q.order <- b:
	case <-q.p.ctx.Done():
		for i := range b.jobs {
			b.jobs[i].releaseTokens()
		}
		q.dropCur()
		return q.p.ctx.Err()
	}
	q.p.work <- b
	return nil
}

// dropCur releases the batch being filled, unsent.
func (q *queue) dropCur() {
	if q.cur == nil {
		return
	}
	for i := range q.cur.jobs {
		q.cur.jobs[i].releaseTokens()
	}
	q.cur = nil
}

// close ends the mailbox's job stream; err is the producer's error, if any.
func (q *queue) close(err error) {
	if b := q.cur; b != nil && len(b.jobs) > 0 {
		q.cur = nil
		if serr := q.send(b); serr != nil && err == nil {
			err = serr
		}
	}
	q.dropCur()
	q.mu.Lock()
	q.perr = err
	q.mu.Unlock()
	close(q.order)
}

// next returns the next result in submission order.
func (q *queue) next() (*result, bool) {
	if q.head == nil || q.taken == len(q.head.jobs) {
		b, ok := <-q.order
		if !ok {
			q.head = nil
			q.drained = true
			return nil, false
		}
		<-b.done
		q.mu.Lock()
		for i := range b.jobs {
			if pd := &b.jobs[i]; q.byGUID[pd.guid] == pd {
				delete(q.byGUID, pd.guid)
			}
		}
		q.mu.Unlock()
		q.head, q.taken = b, 0
	}
	pd := &q.head.jobs[q.taken]
	q.taken++
	if pd.dup {
		<-pd.first.b.done
		if pd.first.err == nil {
			return &pd.result, true
		}
		// The first copy was bad; this one is a file of its own.
		pd.dup = false
		pd.result.hash(nil)
	}
	return &pd.result, true
}

// discard releases the results not taken, once the producer has closed q.
func (q *queue) discard() {
	if b := q.head; b != nil {
		for ; q.taken < len(b.jobs); q.taken++ {
			b.jobs[q.taken].result.release()
		}
	}
	for b := range q.order {
		<-b.done
		for i := range b.jobs {
			b.jobs[i].result.release()
		}
	}
	q.head = nil
	q.drained = true
}

func (q *queue) err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if errors.Is(q.perr, errStopped) {
		return nil
	}
	if q.perr != nil {
		return fmt.Errorf("reading index: %w", q.perr)
	}
	return q.p.ctx.Err()
}

// hash reads and checks the job's file. Files up to the pool's whole size
// are read whole into the pool's buffers, a chain of them for a file
// larger than one, with raw system calls (no fstat: reading one byte more
// than the index says tells a wrong size just as well), which halves the
// per-file cost of os.File on a partition of many small messages.
// scratch, if not nil, is the caller's buffer for reading a large file.
func (r *result) hash(scratch []byte) {
	if r.size > r.p.bufs.whole {
		r.hashLarge(scratch)
		return
	}
	fd, err := r.m.OpenMessageFd(r.rec)
	if err != nil {
		r.missing = errors.Is(err, fs.ErrNotExist)
		r.fail(err)
		return
	}
	segs := r.p.getBufs(r.one[:0], r.size+1)
	n, err := readFile(fd, segs)
	unix.Close(fd)
	if err != nil {
		r.p.putBufs(segs)
		r.fail(err)
		return
	}
	if int64(n) != r.size {
		r.p.putBufs(segs)
		what := "smaller"
		if int64(n) > r.size {
			what = "larger"
		}
		r.fail(fmt.Errorf("file is %s than the %d bytes the index says", what, r.size))
		return
	}
	// The last buffer held the one byte more that was not there.
	last := len(segs) - 1
	segs[last] = segs[last][:len(segs[last])-1]
	if len(segs[last]) == 0 && last > 0 {
		r.p.putBuf(segs[last])
		segs = segs[:last]
	}
	var g guid.GUID
	if len(segs) == 1 {
		g = sha1.Sum(segs[0])
	} else {
		h := sha1.New()
		for _, b := range segs {
			h.Write(b)
		}
		h.Sum(g[:0])
	}
	if g != r.guid {
		r.p.putBufs(segs)
		r.fail(&guid.MismatchError{Want: r.guid, Got: g, WantSize: r.size, GotSize: r.size})
		return
	}
	r.data = segs
}

// hashLarge hashes a large file in reads of scratch's size (largeRead
// when scratch is nil); the writer copies it again from the file.
func (r *result) hashLarge(scratch []byte) {
	f, err := r.m.OpenMessageFile(r.rec)
	if err != nil {
		r.missing = errors.Is(err, fs.ErrNotExist)
		r.fail(err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		r.fail(err)
		return
	}
	if fi.Size() != r.size {
		r.fail(fmt.Errorf("file is %d bytes, the index says %d", fi.Size(), r.size))
		return
	}
	if scratch == nil {
		scratch = make([]byte, largeRead)
	}
	g, n, err := guid.OfBuffer(f, scratch)
	if err != nil {
		r.fail(err)
		return
	}
	if n != r.size || g != r.guid {
		r.fail(&guid.MismatchError{Want: r.guid, Got: g, WantSize: r.size, GotSize: n})
		return
	}
	r.info = fi
}

// readFile reads a file the index says is one byte less than segs hold
// into segs, in order, until they are full or the file ends, and returns
// the bytes read. A first read that stops short exactly one byte before
// the end of segs is the end of the file (a local regular file's read
// stops short at its end only), so a file of the right size costs one
// read, not a second one that returns nothing. Once a read has stopped
// short before that (a network or FUSE filesystem, a FIFO), a short read
// says nothing of the end: only a read returning nothing, or full segs,
// does. Either way the caller checks the bytes' SHA-1.
func readFile(fd int, segs [][]byte) (int, error) {
	total := 0
	for _, b := range segs {
		total += len(b)
	}
	n, first := 0, true
	for n < total {
		var m int
		var err error
		if len(segs) == 1 {
			m, err = unix.Read(fd, segs[0][n:])
		} else {
			iov := unread(segs, n)
			m, err = unix.Readv(fd, iov[:min(len(iov), iovMax)])
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "read", Err: err}
		}
		if m == 0 {
			break
		}
		n += m
		if n == total-1 && first {
			break
		}
		first = false
	}
	return n, nil
}

// iovMax is the most buffers one readv takes (Linux's IOV_MAX); a file
// read whole takes at most wholeMax/tokenSize + 1 of them.
const iovMax = 1024

// unread is what of segs lies past the first n bytes, for readv.
func unread(segs [][]byte, n int) [][]byte {
	for len(segs) > 0 && n >= len(segs[0]) {
		n -= len(segs[0])
		segs = segs[1:]
	}
	if n == 0 {
		return segs
	}
	rest := make([][]byte, len(segs))
	copy(rest, segs)
	rest[0] = rest[0][n:]
	return rest
}

func (r *result) fail(err error) {
	r.err = &sourceError{path: r.path(), err: err}
	r.releaseTokens()
}

func (r *result) releaseTokens() {
	if r.tokens > 0 {
		r.p.tokens.give(r.tokens)
		r.tokens = 0
	}
}

// release returns the result's buffers and budget.
func (r *result) release() {
	if r.data != nil {
		r.p.putBufs(r.data)
		r.data = nil
	}
	r.releaseTokens()
}

// bufSize is the size of the reusable read buffers, and of the budget's
// tokens: most messages fit in one; a larger file read whole takes a chain
// of them, as many as its tokens.
const bufSize = tokenSize

// bufPool keeps read buffers for the whole run, across mailboxes, as many
// as its budget (the read-ahead, in bytes) holds: the tokens a producer
// holds are the buffers its files are read into, so the read-ahead
// allocates nothing once the pool is full.
type bufPool struct {
	free   chan []byte
	budget int64
	whole  int64 // files up to this size are read whole (see smallMax)
}

func newBufPool(budget int64) *bufPool {
	if budget <= 0 {
		budget = DefaultReadAhead
	}
	budget = max(budget, 2*smallMax) // the largest file read whole fits, twice
	whole := min(wholeMax, budget/2)
	return &bufPool{free: make(chan []byte, budget/bufSize), budget: budget, whole: whole}
}

// tokensFor is the buffers (and tokens) a file of size bytes read whole
// takes: its bytes and the one more read to tell a larger file.
func tokensFor(size int64) int { return int(size/bufSize) + 1 }

// getBufs appends to segs buffers for n bytes, all of bufSize but the
// last, which is cut to what is left.
func (p *pipeline) getBufs(segs [][]byte, n int64) [][]byte {
	for n > 0 {
		k := min(n, bufSize)
		segs = append(segs, p.getBuf()[:k])
		n -= k
	}
	return segs
}

func (p *pipeline) getBuf() []byte {
	select {
	case b := <-p.bufs.free:
		return b
	default:
		return make([]byte, bufSize)
	}
}

func (p *pipeline) putBufs(segs [][]byte) {
	for _, b := range segs {
		p.putBuf(b)
	}
}

func (p *pipeline) putBuf(b []byte) {
	select {
	case p.bufs.free <- b[:cap(b)]:
	default:
	}
}

// writeTo writes the file literal. A large file is copied from disk; it
// must still be the file that was hashed.
func (r *result) writeTo(w *dlist.Writer, part string) error {
	defer r.release()
	if r.data != nil {
		return w.FileChunks(part, r.guid, r.data)
	}
	f, err := r.m.OpenMessageFile(r.rec)
	if err != nil {
		return &sourceError{path: r.path(), err: err}
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, r.info) || fi.Size() != r.size || !fi.ModTime().Equal(r.info.ModTime()) {
		return &sourceError{path: r.path(), err: errors.New("file changed while being dumped")}
	}
	if err := w.File(part, r.guid, r.size, f); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &sourceError{path: r.path(), err: err}
		}
		return err
	}
	return nil
}

// budget is the read-ahead's memory budget, in tokens of tokenSize bytes:
// a semaphore whose taker, once it has had to wait, waits for a quarter
// of it to be free (or what it needs, if more), so that the files it then
// submits go to the workers in batches.
type budget struct {
	mu   sync.Mutex
	cond sync.Cond
	ctx  context.Context
	size int
	free int // under mu
}

func newBudget(ctx context.Context, size int) *budget {
	b := &budget{ctx: ctx, size: size, free: size}
	b.cond.L = &b.mu
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	return b
}

// tryTake takes n tokens if they are free.
func (b *budget) tryTake(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free < n {
		return false
	}
	b.free -= n
	return true
}

// take waits until max(n, size/4) tokens are free and takes n; it fails
// once the context is done.
func (b *budget) take(n int) error {
	low := min(b.size, max(n, b.size/4))
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.free < low {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		b.cond.Wait()
	}
	b.free -= n
	return nil
}

// give returns n tokens.
func (b *budget) give(n int) {
	b.mu.Lock()
	b.free += n
	if b.free >= b.size/4 || b.free == b.size {
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}
