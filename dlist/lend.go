package dlist

import "io"

// Lender is a source that can lend its bytes instead of copying them. A
// Reader whose source is a Lender parses the lent bytes where they are,
// and LendBody hands a file literal's bytes on the same way: the bytes of
// a dump are then copied by nobody between the read system call and the
// hashing of them.
type Lender interface {
	io.Reader
	// Lend returns the next bytes of the stream, like Read but in the
	// Lender's own memory: at least one byte, or an error. They stay
	// unchanged at least until the next call to Lend or Read.
	Lend() ([]byte, error)
	// Hold keeps the bytes the last Lend returned unchanged until the
	// Pin is released, whatever the Lender is asked meanwhile. It
	// returns nil if it cannot.
	//
	// A Lender's memory is bounded: Lend may wait until bytes held
	// are released. A caller must therefore not keep Pins of more than
	// a few buffers (Pins that differ) where only its own further
	// reading would release them: package dumpfile's reader stalls for
	// good when one caller holds 12 of its 256 KiB chunks that way.
	Hold() Pin
}

// Pin is a hold on bytes lent by a Lender. Pins are comparable; the Pins
// of bytes in the same buffer of the Lender's may be equal.
type Pin interface {
	// Release ends the hold; it must be called exactly once.
	Release()
}

// LendBody returns the next bytes of the current file literal's body, at
// most max (max > 0) and at least one, and consumes them; at the end of
// the body it returns io.EOF, and input that ends before it an error
// wrapping ErrTruncated, as Body does.
//
// When the Reader's source is a Lender, the bytes are the Lender's memory
// and pin is a hold on them: they stay unchanged until the caller releases
// it, which it must. Otherwise pin is nil and the bytes are the Reader's
// own, valid until its next call: copy them.
func (r *Reader) LendBody(max int) (b []byte, pin Pin, err error) {
	if r.left == 0 {
		return nil, nil, io.EOF
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	if r.pos == r.end {
		if err := r.fill(); err != nil {
			return nil, nil, r.bodyErr(err)
		}
	}
	k := int(min(int64(r.end-r.pos), r.left, int64(max)))
	if k <= 0 {
		return nil, nil, io.ErrNoProgress
	}
	b = r.buf[r.pos : r.pos+k : r.pos+k] // an append must not write over the bytes that follow
	if r.lent {
		pin = r.lender.Hold()
	}
	r.pos += k
	r.left -= int64(k)
	return b, pin, nil
}

// lend makes the Lender's next bytes the buffer; the buffer is empty.
func (r *Reader) lend() error {
	r.base += int64(r.end)
	r.pos, r.end = 0, 0
	for range 100 {
		b, err := r.lender.Lend()
		r.buf, r.end, r.lent = b, len(b), true
		if err != nil {
			r.rerr = err
			if len(b) > 0 {
				return nil
			}
			return err
		}
		if len(b) > 0 {
			return nil
		}
	}
	r.rerr = io.ErrNoProgress
	return r.rerr
}
