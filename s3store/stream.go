package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Writer streams an object of unknown size: bytes are spooled to a part
// file on disk; each full part is uploaded while the next fills, with at
// most Parallel parts in flight, so memory stays flat and the disk holds
// at most Parallel+1 parts. Nothing is visible under the key until
// Commit, which makes the whole object appear at once.
type Writer struct {
	c           *Client
	ctx         context.Context
	cancel      context.CancelFunc
	bucket, key string
	partSize    int64

	cur  *os.File
	curN int64
	up   *upload
	num  int
	n    int64
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	done bool
}

// NewWriter starts writing key; an existing key is replaced at Commit.
func (c *Client) NewWriter(ctx context.Context, bucket, key string) *Writer {
	ctx, cancel := context.WithCancel(ctx)
	return &Writer{c: c, ctx: ctx, cancel: cancel, bucket: bucket, key: key, partSize: c.opts.PartSize,
		sem: make(chan struct{}, c.opts.Parallel)}
}

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
		w.cancel()
	}
	w.mu.Unlock()
}

// Write spools p, uploading each part as it fills.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("s3 writer: write after commit or abort")
	}
	written := 0
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return written, err
		}
		if w.cur == nil {
			f, err := w.c.Spool()
			if err != nil {
				return written, err
			}
			w.cur, w.curN = f, 0
		}
		k := min(int64(len(p)), w.partSize-w.curN)
		m, err := w.cur.Write(p[:k])
		w.curN += int64(m)
		w.n += int64(m)
		written += m
		if err != nil {
			return written, fmt.Errorf("spooling for s3://%s/%s: %w", w.bucket, w.key, err)
		}
		p = p[k:]
		if w.curN == w.partSize {
			if err := w.sendPart(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// sendPart hands the spooled part to an uploader.
func (w *Writer) sendPart() error {
	if w.up == nil {
		up, err := w.c.startUpload(w.ctx, w.bucket, w.key)
		if err != nil {
			return err
		}
		w.up = up
	}
	w.num++
	if w.num == maxParts {
		return fmt.Errorf("s3://%s/%s: more than %d parts", w.bucket, w.key, maxParts)
	}
	if w.num%1000 == 0 {
		w.partSize *= 2 // 10,000 parts reach 15 TiB from 16 MiB
	}
	f, n, num := w.cur, w.curN, w.num
	w.cur, w.curN = nil, 0
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		f.Close()
		return w.ctx.Err()
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		defer f.Close()
		if err := w.up.part(w.ctx, num, io.NewSectionReader(f, 0, n), 0, false); err != nil {
			w.fail(err)
		}
	}()
	return nil
}

// Written returns the bytes written so far.
func (w *Writer) Written() int64 { return w.n }

// Commit uploads what is left and makes the object visible.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("s3 writer: already committed or aborted")
	}
	if w.up == nil {
		// Smaller than a part: one Upload (in parts of its own, run
		// at once, when it is large enough for them).
		w.done = true
		defer w.release()
		if w.cur == nil {
			return w.c.Put(w.ctx, w.bucket, w.key, nil, false)
		}
		return w.c.Upload(w.ctx, w.bucket, w.key, w.cur, w.curN, false)
	}
	if w.curN > 0 {
		if err := w.sendPart(); err != nil {
			w.Abort()
			return err
		}
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		w.Abort()
		return err
	}
	w.done = true
	defer w.release()
	return w.up.complete(w.ctx, false)
}

func (w *Writer) release() {
	if w.cur != nil {
		w.cur.Close()
		w.cur = nil
	}
	w.cancel()
}

// Abort discards the upload; it is a no-op after Commit.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.cancel()
	w.wg.Wait()
	if w.up != nil {
		w.up.abort()
	}
	w.release()
}
