package repo

import (
	"context"
	"errors"
	"io"
	"sync"
)

// readAheadChunk and readAheadChunks bound what OpenDump writes ahead of
// its reader: 16 chunks of 256 KiB (4 MiB), whatever the snapshot's size.
const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 16
)

// OpenDump returns the standalone dump of snapshot s that WriteDump
// writes, for reading as restore reads any dump. WriteDump runs in a
// goroutine of its own up to 4 MiB ahead of the reader, so that reading
// the repository (states, boxes, packs: decompression, merging of
// deltas, re-hashing) runs on one core while the reader (a restore:
// parsing, staging files, fsync) runs on another, where an unbuffered
// pipe would run them in turn. Read returns the dump's bytes, then
// WriteDump's error or io.EOF. Close stops WriteDump, waits for it and
// returns its error, unless that came of the Close (a reader that stops
// early has its own error to report). The index must stay open until
// Close.
func (r *Repo) OpenDump(ctx context.Context, idx *Index, s *Snapshot, opts ExportOptions) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	p := newAheadPipe(readAheadChunk, readAheadChunks)
	d := &dumpReader{p: p, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		_, d.err = r.WriteDump(ctx, idx, s, p, opts)
		p.closeWrite(d.err)
	}()
	return d
}

type dumpReader struct {
	p      *aheadPipe
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error // WriteDump's, once done is closed
	closed bool  // Close stopped WriteDump
}

func (d *dumpReader) Read(b []byte) (int, error) { return d.p.Read(b) }

func (d *dumpReader) Close() error {
	d.once.Do(func() {
		select {
		case <-d.done:
		default:
			d.closed = true
		}
		d.cancel()
		d.p.closeRead()
		<-d.done
	})
	if d.closed && (errors.Is(d.err, errReaderClosed) || errors.Is(d.err, context.Canceled)) {
		return nil
	}
	return d.err
}

// errReaderClosed is what the writer of an aheadPipe gets once the reader
// has gone.
var errReaderClosed = errors.New("the reader of the dump has gone")

// aheadPipe is a pipe with a bounded buffer: Write copies into chunks of
// a fixed size and blocks only when n chunks wait for the reader. Chunks
// go back to the writer once read, so memory stays at n+2 chunks.
type aheadPipe struct {
	full  chan []byte // filled chunks, in order
	free  chan []byte // read chunks, for the writer to fill again
	stop  chan struct{}
	once  sync.Once
	size  int
	cur   []byte // the chunk being filled (writer's)
	rd    []byte // the rest of the chunk being read (reader's)
	rdBuf []byte // the chunk rd is in
	err   error  // the writer's end: set before full is closed
}

func newAheadPipe(size, n int) *aheadPipe {
	return &aheadPipe{full: make(chan []byte, n), free: make(chan []byte, n+2), stop: make(chan struct{}), size: size}
}

func (p *aheadPipe) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		if p.cur == nil {
			select {
			case p.cur = <-p.free:
				p.cur = p.cur[:0]
			default:
				p.cur = make([]byte, 0, p.size)
			}
		}
		k := copy(p.cur[len(p.cur):cap(p.cur)], b)
		p.cur = p.cur[:len(p.cur)+k]
		b = b[k:]
		written += k
		if len(p.cur) == cap(p.cur) {
			if err := p.send(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// send hands the current chunk to the reader.
func (p *aheadPipe) send() error {
	select {
	case p.full <- p.cur:
		p.cur = nil
		return nil
	case <-p.stop:
		return errReaderClosed
	}
}

// closeWrite sends what is left and ends the stream with err (io.EOF
// when nil).
func (p *aheadPipe) closeWrite(err error) {
	if len(p.cur) > 0 && err == nil {
		err = p.send()
	}
	if err == nil {
		err = io.EOF
	}
	p.err = err
	close(p.full)
}

func (p *aheadPipe) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for len(p.rd) == 0 {
		if p.rdBuf != nil {
			select {
			case p.free <- p.rdBuf:
			default:
			}
			p.rdBuf = nil
		}
		c, ok := <-p.full
		if !ok {
			return 0, p.err
		}
		p.rd, p.rdBuf = c, c
	}
	n := copy(b, p.rd)
	p.rd = p.rd[n:]
	return n, nil
}

// closeRead tells the writer that nothing more will be read.
func (p *aheadPipe) closeRead() { p.once.Do(func() { close(p.stop) }) }
