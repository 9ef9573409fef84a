package dlist

import (
	"io"
)

// bodyReader reads the current file literal's body from its Reader.
type bodyReader Reader

// Body returns the bytes of the file literal last returned by Next: exactly
// its Size bytes, then io.EOF. Whatever is left unread is skipped by the
// next call to Next, ReadValue or ReadLine. After any other token Body
// returns a reader at its end. Input that ends before the last byte gives
// an error wrapping ErrTruncated (and io.ErrUnexpectedEOF).
//
// The bytes are not checked against the GUID; wrap the body in
// guid.NewReader for that.
func (r *Reader) Body() io.Reader { return (*bodyReader)(r) }

// Read implements io.Reader.
func (b *bodyReader) Read(p []byte) (int, error) {
	r := (*Reader)(b)
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.err != nil {
		return 0, r.err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	if r.pos == r.end {
		if len(p) >= bufSize && r.lender == nil && r.rerr == nil {
			return r.readDirect(p)
		}
		if err := r.fill(); err != nil {
			return 0, r.bodyErr(err)
		}
	}
	n := copy(p, r.buf[r.pos:r.end])
	r.pos += n
	r.left -= int64(n)
	return n, nil
}

// readDirect reads into p straight from the underlying reader, the buffer
// being empty: large reads cost no extra copy.
func (r *Reader) readDirect(p []byte) (int, error) {
	r.base += int64(r.end)
	r.pos, r.end = 0, 0
	n, err := r.rd.Read(p)
	if n < 0 || n > len(p) {
		n, err = 0, io.ErrNoProgress
	}
	r.base += int64(n)
	r.left -= int64(n)
	if err != nil {
		r.rerr = err
		if n == 0 {
			return 0, r.bodyErr(err)
		}
	}
	return n, nil
}

// WriteTo implements io.WriterTo, so io.Copy from a body needs no buffer
// of its own. It writes the rest of the body.
func (b *bodyReader) WriteTo(w io.Writer) (int64, error) {
	r := (*Reader)(b)
	var total int64
	for r.left > 0 {
		if r.err != nil {
			return total, r.err
		}
		if r.pos == r.end {
			if err := r.fill(); err != nil {
				return total, r.bodyErr(err)
			}
		}
		k := r.end - r.pos
		if int64(k) > r.left {
			k = int(r.left)
		}
		n, err := w.Write(r.buf[r.pos : r.pos+k])
		r.pos += n
		r.left -= int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
		if n < k {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// skipBody discards the rest of the current file literal's body.
func (r *Reader) skipBody() error {
	for r.left > 0 {
		if r.pos == r.end {
			if err := r.fill(); err != nil {
				return r.bodyErr(err)
			}
		}
		k := r.end - r.pos
		if int64(k) > r.left {
			k = int(r.left)
		}
		r.pos += k
		r.left -= int64(k)
	}
	return nil
}

// bodyErr records and returns the error for a failed body read.
func (r *Reader) bodyErr(err error) error {
	if err == io.EOF {
		err = &ParseError{Line: r.line, Offset: r.Offset(), Expected: "file literal",
			Err: newReason(ErrTruncated, "unexpected end of input, %d bytes of the body missing", r.left)}
	} else {
		err = r.readErr(r.Offset(), r.line, "file literal", err)
	}
	r.err = err
	return err
}
