package verify

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
)

// Hashing runs in worker goroutines. The reader hands file literal bytes
// to them in batches: where the dump reader lends them (dlist.LendBody,
// the dump's own read buffers), a batch holds them there and releases
// them once hashed; otherwise the reader copies them into the batch's
// buffer of batchSize bytes. Several small literals go to a batch; a
// literal larger than what is left of a batch continues in the next one.
// The pieces of one literal are hashed in order: each waits until the one
// before it is done. At most budget/batchSize batches exist, so the memory
// for bytes in flight is fixed (the dump reader bounds the bytes it lends).
const (
	batchSize     = 1 << 20
	DefaultBudget = 16 << 20 // Options.Budget when zero
	scratchSize   = 256 << 10
	// lentBatch is the lent bytes after which a batch is handed over: a
	// batch holds few of the dump reader's chunks (256 KiB each).
	lentBatch = 256 << 10
	// pinBatch is the lent pieces of distinct buffers after which a batch
	// is handed over, whatever their bytes: small literals far apart in
	// the dump (a few bytes each between mailbox lines of hundreds of KiB)
	// would otherwise hold every chunk of the dump reader in the batch
	// being filled, and the reader would wait for a chunk that only the
	// batch it has not handed over would release.
	pinBatch = 2
	// maxSegs is the segments after which a batch is handed over: empty
	// or tiny literals (a hostile dump can hold millions, 50 bytes each)
	// would otherwise fill a batch without end, 128 bytes of memory for
	// 50 of the dump.
	maxSegs = 4096
)

// literal is one file literal being hashed.
type literal struct {
	guid   guid.GUID
	size   int64
	offset int64  // of its %{ in the dump
	group  *group // the APPLY MESSAGE lines it arrived in
	h      hash.Hash
}

// segment is the part of a literal that lies in one batch.
type segment struct {
	lit  *literal
	data []byte
	pin  dlist.Pin     // the hold on data when lent; nil when in the batch's buffer
	wait chan struct{} // closed when the literal's previous segment is hashed; nil for the first
	done chan struct{} // closed by this segment's worker; nil for the last
}

// task is work for the pool: a batch of literal bytes or a live message
// file. scratch is the worker's own buffer.
type task interface {
	run(scratch []byte)
}

type batch struct {
	p    *pool
	ptr  *[]byte // buf's home in bufPool; nil until the batch copies bytes
	buf  []byte
	lent int       // bytes of lent segments
	pins int       // distinct Pins among the lent segments (consecutive ones compared)
	last dlist.Pin // the Pin of the last lent segment
	segs []segment
}

// pool runs the hashing workers.
type pool struct {
	work    chan task
	free    chan *batch
	made    int // batches allocated so far
	max     int // batches allowed
	wg      sync.WaitGroup
	cur     *batch // being filled by the reader
	onBad   func(l *literal, got guid.GUID)
	stopped bool
}

func newPool(workers int, budget int64, onBad func(*literal, guid.GUID)) *pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if budget <= 0 {
		budget = DefaultBudget
	}
	n := max(2, int(budget/batchSize))
	p := &pool{
		work:  make(chan task, n),
		free:  make(chan *batch, n),
		max:   n,
		onBad: onBad,
	}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			scratch := make([]byte, scratchSize)
			for t := range p.work {
				t.run(scratch)
			}
		}()
	}
	return p
}

// batch returns the batch being filled, taking a free one (or making one,
// up to the budget) when there is none; it blocks while all are in use.
func (p *pool) batch() *batch {
	if p.cur != nil {
		return p.cur
	}
	select {
	case b := <-p.free:
		p.cur = b
	default:
		if p.made < p.max {
			p.made++
			p.cur = &batch{p: p, segs: make([]segment, 0, 64)}
		} else {
			p.cur = <-p.free
		}
	}
	return p.cur
}

// dispatch hands the batch being filled to the workers.
func (p *pool) dispatch() {
	if p.cur != nil && len(p.cur.segs) > 0 {
		p.work <- p.cur
		p.cur = nil
	}
}

// submit queues a task other than a batch.
func (p *pool) submit(t task) { p.work <- t }

// stop hands over the last batch and waits until every task is done. The
// pool cannot be used afterwards.
func (p *pool) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	p.dispatch()
	close(p.work)
	p.wg.Wait()
	if p.cur != nil {
		p.free <- p.cur
		p.cur = nil
	}
	for range p.made {
		b := <-p.free
		if b.ptr != nil {
			*b.ptr = b.buf[:0]
			bufPool.Put(b.ptr)
		}
	}
}

// bufPool keeps batch buffers from one Run to the next.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, batchSize); return &b }}

// bodyLender gives a file literal's bytes: *dlist.Reader.
type bodyLender interface {
	LendBody(max int) ([]byte, dlist.Pin, error)
}

// literal hands the body of a file literal to the hashers: the bytes the
// dump reader lends as they are, others copied into batches. An error is
// the reader's: the literal is then left unchecked.
func (p *pool) literal(l *literal, body bodyLender) error {
	left := l.size
	var wait chan struct{}
	// add appends a segment of l to the batch being filled; more says
	// that others follow.
	add := func(data []byte, pin dlist.Pin, more bool) {
		b := p.batch()
		s := segment{lit: l, data: data, pin: pin, wait: wait}
		if more {
			s.done = make(chan struct{})
			wait = s.done
		}
		b.segs = append(b.segs, s)
		if len(b.segs) >= maxSegs {
			p.dispatch()
			return
		}
		if pin != nil {
			b.lent += len(data)
			if pin != b.last {
				b.pins++
				b.last = pin
			}
			if b.lent >= lentBatch || b.pins >= pinBatch {
				p.dispatch()
			}
		}
	}
	if left == 0 {
		add(nil, nil, false)
		return nil
	}
	for left > 0 {
		data, pin, err := body.LendBody(int(min(left, 1<<30)))
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		left -= int64(len(data))
		if pin != nil {
			add(data, pin, left > 0)
			continue
		}
		// The reader's own bytes, valid until its next call: copy them.
		for len(data) > 0 {
			b := p.batch()
			if b.ptr == nil {
				b.ptr = bufPool.Get().(*[]byte)
				b.buf = (*b.ptr)[:0]
			}
			space := cap(b.buf) - len(b.buf)
			if space == 0 {
				p.dispatch()
				continue
			}
			k := min(space, len(data))
			start := len(b.buf)
			b.buf = append(b.buf, data[:k]...)
			data = data[k:]
			add(b.buf[start:start+k], nil, left > 0 || len(data) > 0)
		}
	}
	return nil
}

func (b *batch) run([]byte) {
	for i := range b.segs {
		s := &b.segs[i]
		s.hash(b.p.onBad)
		if s.pin != nil {
			s.pin.Release()
		}
	}
	clear(b.segs)
	b.segs = b.segs[:0]
	b.buf = b.buf[:0]
	b.lent, b.pins, b.last = 0, 0, nil
	b.p.free <- b
}

// hash adds the segment to its literal's SHA-1, and checks the literal
// at its last segment.
func (s *segment) hash(onBad func(*literal, guid.GUID)) {
	l := s.lit
	if s.wait == nil && s.done == nil {
		// The whole literal is here: no hasher state to keep.
		l.check(sha1.Sum(s.data), onBad)
		return
	}
	if s.wait != nil {
		<-s.wait
	} else {
		l.h = sha1.New()
	}
	l.h.Write(s.data)
	if s.done != nil {
		close(s.done)
		return
	}
	var sum guid.GUID
	l.h.Sum(sum[:0])
	l.h = nil
	l.check(sum, onBad)
}

func (l *literal) check(sum guid.GUID, onBad func(*literal, guid.GUID)) {
	if sum != l.guid {
		onBad(l, sum)
	}
}

// fileTask hashes one live message file.
type fileTask struct {
	open func() (*os.File, error) // follows no symlink (partition.Mailbox.OpenMessageFile)
	guid guid.GUID
	size int64
	done func(err error) // nil error: the file matches
}

// errFileMissing marks a message file that does not exist.
var errFileMissing = errors.New("message file missing")

func (t *fileTask) run(scratch []byte) {
	t.done(hashFile(t.open, t.guid, t.size, scratch))
}

// hashFile checks that the file open opens has size bytes that hash to want.
func hashFile(open func() (*os.File, error), want guid.GUID, size int64, scratch []byte) error {
	f, err := open()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errFileMissing
		}
		return err
	}
	defer f.Close()
	h := sha1.New()
	var n int64
	for {
		k, err := f.Read(scratch)
		h.Write(scratch[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	var got guid.GUID
	h.Sum(got[:0])
	if n != size || got != want {
		return &guid.MismatchError{Want: want, Got: got, WantSize: size, GotSize: n}
	}
	return nil
}

func describeMismatch(err error) string {
	var me *guid.MismatchError
	if errors.As(err, &me) {
		if me.WantSize != me.GotSize {
			return fmt.Sprintf("message file is %d bytes, the index says %d; its bytes hash to %s", me.GotSize, me.WantSize, me.Got)
		}
		return fmt.Sprintf("message file's bytes hash to %s", me.Got)
	}
	return err.Error()
}
