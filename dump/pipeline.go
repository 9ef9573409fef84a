package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
)

// Memory budget of the read-ahead: message files up to smallMax bytes are
// read and hashed by workers into buffers, at most budget bytes of them in
// flight; larger files are hashed by a worker and copied by the writer
// straight from the file.
const (
	smallMax  = 1 << 20
	tokenSize = 64 << 10
	budget    = 16 << 20
)

var errStopped = errors.New("stopped")

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// job is one message file to embed.
type job struct {
	uid      uint32
	guid     guid.GUID
	size     int64
	path     string
	expunged bool
}

// sourceError is a message file that is missing, unreadable, of the wrong
// size or whose SHA-1 is not its GUID.
type sourceError struct {
	path string
	err  error
}

func (e *sourceError) Error() string { return fmt.Sprintf("%s: %v", e.path, e.err) }
func (e *sourceError) Unwrap() error { return e.err }

// result is a job's outcome, ready for the writer.
type result struct {
	job
	data    []byte      // the file's bytes, for small files
	info    os.FileInfo // the file hashed, for large files
	err     error
	missing bool // the file does not exist
	dup     bool // same GUID as an earlier job of this mailbox that succeeded
	tokens  int
	p       *pipeline
}

type pending struct {
	result
	done  chan struct{}
	first *pending // for a duplicate GUID within the mailbox: the first job
}

type pipeline struct {
	ctx    context.Context
	work   chan *pending
	order  chan *pending
	tokens chan struct{}
	pool   sync.Pool
	wg     sync.WaitGroup
	byGUID map[guid.GUID]*pending // this mailbox's jobs, for duplicates
	mu     sync.Mutex
	perr   error
}

func newPipeline(ctx context.Context, workers int) *pipeline {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &pipeline{
		ctx:    ctx,
		work:   make(chan *pending, workers),
		order:  make(chan *pending, budget/tokenSize),
		tokens: make(chan struct{}, budget/tokenSize),
		byGUID: map[guid.GUID]*pending{},
	}
	p.pool.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for pd := range p.work {
				pd.result.hash()
				close(pd.done)
			}
		}()
	}
	return p
}

// submit queues a job; it blocks while the memory budget is spent.
func (p *pipeline) submit(j job) error {
	pd := &pending{result: result{job: j, p: p}, done: make(chan struct{})}
	if first, ok := p.byGUID[j.guid]; ok {
		pd.first = first
		pd.dup = true
	} else {
		p.byGUID[j.guid] = pd
		n := 1
		if j.size <= smallMax {
			n = int((j.size + tokenSize - 1) / tokenSize)
			if n == 0 {
				n = 1
			}
		}
		for range n {
			select {
			case p.tokens <- struct{}{}:
			case <-p.ctx.Done():
				return p.ctx.Err()
			}
		}
		pd.tokens = n
	}
	select {
	case p.order <- pd:
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	if !pd.dup {
		p.work <- pd
	}
	return nil
}

// close ends the job stream; err is the producer's error, if any.
func (p *pipeline) close(err error) {
	p.mu.Lock()
	p.perr = err
	p.mu.Unlock()
	close(p.work)
	close(p.order)
}

// next returns the next result in submission order.
func (p *pipeline) next() (*result, bool) {
	pd, ok := <-p.order
	if !ok {
		p.wg.Wait()
		return nil, false
	}
	if pd.dup {
		<-pd.first.done
		if pd.first.err == nil {
			return &pd.result, true
		}
		// The first copy was bad; this one is a file of its own.
		pd.dup = false
		pd.result.hash()
		return &pd.result, true
	}
	<-pd.done
	return &pd.result, true
}

func (p *pipeline) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if errors.Is(p.perr, errStopped) {
		return nil
	}
	if p.perr != nil {
		return fmt.Errorf("reading index: %w", p.perr)
	}
	return p.ctx.Err()
}

// hash reads and checks the job's file.
func (r *result) hash() {
	f, err := os.Open(r.path)
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
	if r.size <= smallMax {
		bp := r.p.pool.Get().(*[]byte)
		if int64(cap(*bp)) < r.size {
			*bp = make([]byte, r.size)
		}
		buf := (*bp)[:r.size]
		if _, err := io.ReadFull(f, buf); err != nil {
			r.p.pool.Put(bp)
			r.fail(err)
			return
		}
		if g, _, _ := guid.Of(bytes.NewReader(buf)); g != r.guid {
			r.p.pool.Put(bp)
			r.fail(&guid.MismatchError{Want: r.guid, Got: g, WantSize: r.size, GotSize: r.size})
			return
		}
		r.data = buf
		return
	}
	g, n, err := guid.Of(f)
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

func (r *result) fail(err error) {
	r.err = &sourceError{path: r.path, err: err}
	r.releaseTokens()
}

func (r *result) releaseTokens() {
	for ; r.tokens > 0; r.tokens-- {
		<-r.p.tokens
	}
}

// release returns the result's buffer and budget.
func (r *result) release() {
	if r.data != nil {
		b := r.data[:0]
		r.p.pool.Put(&b)
		r.data = nil
	}
	r.releaseTokens()
}

// writeTo writes the file literal. A large file is copied from disk; it
// must still be the file that was hashed.
func (r *result) writeTo(w *dlist.Writer, part string) error {
	defer r.release()
	if r.data != nil {
		return w.File(part, r.guid, r.size, bytes.NewReader(r.data))
	}
	f, err := os.Open(r.path)
	if err != nil {
		return &sourceError{path: r.path, err: err}
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, r.info) || fi.Size() != r.size || !fi.ModTime().Equal(r.info.ModTime()) {
		return &sourceError{path: r.path, err: errors.New("file changed while being dumped")}
	}
	if err := w.File(part, r.guid, r.size, f); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &sourceError{path: r.path, err: err}
		}
		return err
	}
	return nil
}
