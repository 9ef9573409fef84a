package commands

import (
	"context"
	"io"
	"os"
)

// interruptible returns a reader of r whose Read returns ctx's error as soon
// as ctx is done, even while a read of r is blocked: a dump read from a
// pipe whose writer has stalled (ssh hung, a producer stopped) would
// otherwise ignore the first SIGINT until more input came. Regular files
// never block for long and are returned as they are.
//
// After ctx is done the blocked read is abandoned: its goroutine ends when
// the read returns, or with the process.
func interruptible(ctx context.Context, r io.Reader) io.Reader {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return r
		}
	}
	if _, ok := r.(interface{ Len() int }); ok {
		return r // in memory (strings.Reader, bytes.Buffer): never blocks
	}
	return &ctxReader{ctx: ctx, r: r, buf: make([]byte, 64<<10), done: make(chan readResult, 1)}
}

type readResult struct {
	n   int
	err error
}

// ctxReader reads r in a goroutine, into its own buffer, so that an
// abandoned read never writes into the caller's.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	buf  []byte
	data []byte // read but not yet returned
	err  error  // r's error, returned once data is drained
	done chan readResult
	busy bool // a read of r is outstanding
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(c.data) == 0 && c.err == nil {
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
		if !c.busy {
			c.busy = true
			go func() {
				n, err := c.r.Read(c.buf)
				c.done <- readResult{n, err}
			}()
		}
		select {
		case res := <-c.done:
			c.busy = false
			c.data, c.err = c.buf[:res.n], res.err
		case <-c.ctx.Done():
			return 0, c.ctx.Err()
		}
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	if n > 0 {
		return n, nil
	}
	return 0, c.err
}
