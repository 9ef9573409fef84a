package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Object is an object opened for reading at any offset. Reads are ranged
// GETs pinned to the object's ETag (a replaced object is an error, never
// a mix of two). A read that continues where the last one ended reads on
// from one open response (sequential reading costs one request per
// stream window, not one per read); a dropped or stalled response is
// resumed at its offset. It is safe for concurrent use (reads take turns).
type Object struct {
	c           *Client
	ctx         context.Context // of Open: cancelling it ends reads
	bucket, key string
	size        int64
	etag        string
	whole       []byte // the whole object, when Open read it all

	mu      sync.Mutex
	body    io.ReadCloser
	cancel  context.CancelFunc
	pos     int64 // offset of body's next byte
	end     int64 // end of body's range
	lastEnd int64 // where the last read ended
}

// streamWindow is how much one streaming GET asks for.
const streamWindow = 64 << 20

// seqGap is how far ahead of an open response a read may start and still
// be served from it (the bytes between are read and dropped): a pack's
// files are separated by short literal headers.
const seqGap = 64 << 10

// headBytes is how much of an object Open asks for with its first GET:
// an object no larger (a state, a snapshot, a lock, the config) is read
// whole by that one request and kept; a larger one's first bytes are
// dropped, and it is read by ranged GETs as it is used.
const headBytes = 128 << 10

// Open opens an object; a missing one is fs.ErrNotExist. One ranged GET
// of the object's first headBytes learns its size and ETag (as a HEAD
// would) and, for a small object, all of its bytes.
func (c *Client) Open(ctx context.Context, bucket, key string) (*Object, error) {
	o := &Object{c: c, ctx: ctx, bucket: bucket, key: key, lastEnd: -1}
	var head []byte
	var sizeUnknown bool
	_, err := c.readOp(ctx, func(ctx context.Context) (bool, error) {
		head, sizeUnknown = nil, false
		out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, Range: aws.String("bytes=0-" + strconv.Itoa(headBytes-1))})
		if err != nil {
			return false, err
		}
		defer out.Body.Close()
		n := aws.ToInt64(out.ContentLength)
		size, ok := rangeTotal(aws.ToString(out.ContentRange))
		switch {
		case !ok && out.ContentRange == nil && (out.ContentLength == nil || n < 0):
			// The store ignored the range and sends it all without
			// saying how much (chunked, or to the connection's end,
			// where a cut is not seen): the size and ETag come from a
			// HEAD, and what was read is the object if it agrees.
			sizeUnknown = true
			b, err := io.ReadAll(io.LimitReader(out.Body, headBytes+1))
			if err != nil {
				return true, err
			}
			if len(b) <= headBytes {
				head, o.etag = b, aws.ToString(out.ETag)
			}
			return false, nil // closing the body drops the connection
		case !ok && out.ContentRange == nil:
			size = n // the store ignored the range and sends it all
		case !ok:
			return false, fmt.Errorf("the store answered a ranged GET with Content-Range %q", aws.ToString(out.ContentRange))
		case !strings.HasPrefix(aws.ToString(out.ContentRange), "bytes 0-"):
			return false, fmt.Errorf("the store answered a GET of the first bytes with Content-Range %q", aws.ToString(out.ContentRange))
		}
		o.size, o.etag = size, aws.ToString(out.ETag)
		if n > headBytes {
			return false, nil // closing the body drops the connection
		}
		if size > headBytes || n != size {
			// Read to the end, so that the connection is reused.
			io.Copy(io.Discard, out.Body)
			return false, nil
		}
		head = make([]byte, n)
		_, err = io.ReadFull(out.Body, head)
		return err != nil, err
	})
	var ae smithy.APIError
	if (err == nil && sizeUnknown) || (errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange") {
		// An empty object has no byte 0, and an answer of unknown
		// length says no size: ask for its head instead.
		getETag := o.etag
		err = c.op(ctx, func(ctx context.Context) error {
			out, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
			if err == nil {
				o.size, o.etag = aws.ToInt64(out.ContentLength), aws.ToString(out.ETag)
			}
			return err
		})
		if int64(len(head)) != o.size || getETag != o.etag {
			head = nil // not the whole object, or not this one
		}
	}
	if err != nil {
		return nil, fmt.Errorf("s3://%s/%s: %w", bucket, key, err)
	}
	o.whole = head
	return o, nil
}

// rangeTotal reads the object's size from a Content-Range answer
// ("bytes 0-131071/33669611").
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok || !strings.HasPrefix(cr, "bytes ") {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil && n >= 0
}

// Size returns the object's size.
func (o *Object) Size() int64 { return o.size }

// ReadAt reads len(p) bytes at off (fewer only at the end, with io.EOF).
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("s3://%s/%s: negative offset", o.bucket, o.key)
	}
	if off >= o.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := p
	if int64(len(want)) > o.size-off {
		want = want[:o.size-off]
	}
	if len(want) == 0 {
		return 0, nil
	}
	if o.whole != nil {
		n := copy(want, o.whole[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.readAt(want, off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (o *Object) readAt(p []byte, off int64) (int, error) {
	// A read at or just after where the last one ended (the next file
	// of a pack, past its literal header) starts a stream.
	sequential := (o.lastEnd >= 0 && off >= o.lastEnd && off-o.lastEnd <= seqGap) || len(p) >= 256<<10
	if o.body != nil && (off < o.pos || off > o.pos+seqGap || off+int64(len(p)) > o.end) {
		o.closeBody()
	}
	if o.body == nil && !sequential {
		// A lone read (an index block, a message elsewhere): exactly its
		// bytes, so the connection is reused.
		if err := o.get(p, off); err != nil {
			return 0, err
		}
		o.lastEnd = off + int64(len(p))
		return len(p), nil
	}
	done := 0
	for attempt := 0; done < len(p); {
		if o.body == nil {
			if err := o.openBody(off + int64(done)); err != nil {
				return done, err
			}
		}
		if skip := off + int64(done) - o.pos; skip > 0 {
			if _, err := io.CopyN(io.Discard, o.timed(), skip); err != nil {
				o.closeBody()
				if attempt++; attempt >= o.c.opts.Attempts {
					return done, o.readErr(err)
				}
				continue
			}
			o.pos += skip
		}
		n, err := io.ReadFull(o.timed(), p[done:])
		done += n
		o.pos += int64(n)
		if err != nil {
			o.closeBody()
			if attempt++; attempt >= o.c.opts.Attempts {
				return done, o.readErr(err)
			}
			if werr := sleep(o.ctx, backoff(attempt)); werr != nil {
				return done, werr
			}
			continue
		}
	}
	o.lastEnd = off + int64(len(p))
	return done, nil
}

func (o *Object) readErr(err error) error {
	return fmt.Errorf("reading s3://%s/%s at offset %d: %w", o.bucket, o.key, o.pos, err)
}

// get reads p at off with one ranged GET. The request is retried as op
// retries; an answer cut short (the connection dropped in the middle of
// its body) is asked for again, up to the attempt bound.
func (o *Object) get(p []byte, off int64) error {
	cut, err := o.c.readOp(o.ctx, func(ctx context.Context) (bool, error) {
		body, err := o.getRange(ctx, off, off+int64(len(p)))
		if err != nil {
			return false, err
		}
		defer body.Close()
		_, err = io.ReadFull(body, p)
		return err != nil, err
	})
	if err == nil || !cut {
		return err
	}
	return fmt.Errorf("reading s3://%s/%s at offset %d: %d attempts: %w", o.bucket, o.key, off, o.c.opts.Attempts, err)
}

// readOp runs fn (a GET, and the read of its answer's body) as op does,
// and tries it again, up to the attempt bound and with backoff, when fn
// says the body was cut short (the connection dropped in its middle):
// the SDK retries requests, not the reading of their answers. It
// reports whether the last try's body was cut short.
func (c *Client) readOp(ctx context.Context, fn func(ctx context.Context) (cut bool, err error)) (bool, error) {
	var err error
	var cut bool
	for attempt := 0; attempt < c.opts.Attempts; attempt++ {
		if attempt > 0 {
			if werr := sleep(ctx, backoff(attempt)); werr != nil {
				return false, werr
			}
		}
		err = c.op(ctx, func(ctx context.Context) error {
			var err error
			cut, err = fn(ctx)
			return err
		})
		if err == nil || !cut {
			return false, err
		}
	}
	return true, err
}

// getRange sends a GET of the bytes from off to end, pinned to the
// object's ETag, and returns the response's body, which must hold them
// all.
func (o *Object) getRange(ctx context.Context, off, end int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &o.bucket, Key: &o.key,
		Range: aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(end-1, 10))}
	if o.etag != "" {
		in.IfMatch = aws.String(o.etag)
	}
	out, err := o.c.s3.GetObject(ctx, in)
	if err != nil {
		return nil, err
	}
	if aws.ToInt64(out.ContentLength) != end-off {
		out.Body.Close()
		return nil, fmt.Errorf("s3://%s/%s: asked for %d bytes at %d, the store sent %d", o.bucket, o.key, end-off, off, aws.ToInt64(out.ContentLength))
	}
	return out.Body, nil
}

// openBody starts a streaming GET at off.
func (o *Object) openBody(off int64) error {
	end := min(o.size, off+streamWindow)
	var body io.ReadCloser
	var cancel context.CancelFunc
	err := o.c.op(o.ctx, func(octx context.Context) error {
		// The request's own context lives as long as the stream; the
		// op's timeout covers only getting the response's head.
		ctx, cc := context.WithCancel(o.ctx)
		stop := context.AfterFunc(octx, func() {
			if octx.Err() == context.DeadlineExceeded {
				cc()
			}
		})
		b, err := o.getRange(ctx, off, end)
		stop()
		if err != nil {
			cc()
			return err
		}
		body, cancel = b, cc
		return nil
	})
	if err != nil {
		return o.readErr(err)
	}
	o.body, o.cancel, o.pos, o.end = body, cancel, off, end
	return nil
}

func (o *Object) closeBody() {
	if o.body != nil {
		o.cancel()
		o.body.Close()
		o.body, o.cancel = nil, nil
	}
}

// timed reads from the open response, giving up when a read makes no
// progress within the timeout (a stalled connection).
func (o *Object) timed() io.Reader { return timedReader{o} }

type timedReader struct{ o *Object }

func (t timedReader) Read(p []byte) (int, error) {
	cancel := t.o.cancel
	timer := time.AfterFunc(t.o.c.opts.Timeout, cancel)
	n, err := t.o.body.Read(p)
	if !timer.Stop() && err == nil && n == 0 {
		err = errors.New("no data within the timeout")
	}
	return n, err
}

// Close ends any open response.
func (o *Object) Close() error {
	o.mu.Lock()
	o.closeBody()
	o.mu.Unlock()
	return nil
}

// Reader returns a sequential reader of the whole object.
func (o *Object) Reader() io.Reader { return io.NewSectionReader(o, 0, o.size) }
