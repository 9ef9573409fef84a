package spill

import (
	"encoding/binary"
	"errors"
)

// Enc builds a record for Append from strings, integers and byte
// strings; a Dec reads them back in the same order.
type Enc struct {
	B []byte
	// Err is the first value that could not be encoded (Fixed), which
	// Store.Park reports; Reset clears it.
	Err error
}

// Reset empties the record, keeping its buffer.
func (e *Enc) Reset() { e.B, e.Err = e.B[:0], nil }

// Fixed appends v, a fixed-size value or a pointer to one, as
// encoding/binary writes it, little-endian; a Dec reads it back with
// binary.Decode. A value binary cannot write is recorded in Err and
// nothing is appended.
func (e *Enc) Fixed(v any) {
	b, err := binary.Append(e.B, binary.LittleEndian, v)
	if err != nil {
		if e.Err == nil {
			e.Err = err
		}
		return
	}
	e.B = b
}

// Uint appends an unsigned integer.
func (e *Enc) Uint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

// Int appends a signed integer.
func (e *Enc) Int(v int64) { e.B = binary.AppendVarint(e.B, v) }

// Bool appends a boolean.
func (e *Enc) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

// String appends a string.
func (e *Enc) String(s string) {
	e.Uint(uint64(len(s)))
	e.B = append(e.B, s...)
}

// Bytes appends a byte string; nil and empty are told apart.
func (e *Enc) Bytes(p []byte) {
	if p == nil {
		e.Uint(0)
		return
	}
	e.Uint(uint64(len(p)) + 1)
	e.B = append(e.B, p...)
}

// ErrDamaged is what a Dec reports for a record that ends early or holds
// a bad length: a damaged spill file.
var ErrDamaged = errors.New("damaged spill record")

// Dec reads a record an Enc built. The first error sticks: read every
// field, then check Err.
type Dec struct {
	B   []byte
	Err error
}

func (d *Dec) fail() {
	if d.Err == nil {
		d.Err = ErrDamaged
	}
	d.B = nil
}

// Uint reads an unsigned integer.
func (d *Dec) Uint() uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Int reads a signed integer.
func (d *Dec) Int() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Bool reads a boolean.
func (d *Dec) Bool() bool {
	if len(d.B) == 0 {
		d.fail()
		return false
	}
	v := d.B[0] != 0
	d.B = d.B[1:]
	return v
}

// Count reads a count of items that take at least one byte each in what
// is left of the record: a larger count is damage, and reads as 0, so
// that a damaged count never makes its reader allocate.
func (d *Dec) Count() uint64 {
	n := d.Uint()
	if n > uint64(len(d.B)) {
		d.fail()
		return 0
	}
	return n
}

// String reads a string.
func (d *Dec) String() string {
	n := d.Uint()
	if n > uint64(len(d.B)) {
		d.fail()
		return ""
	}
	s := string(d.B[:n])
	d.B = d.B[n:]
	return s
}

// Bytes reads a byte string (a copy).
func (d *Dec) Bytes() []byte {
	n := d.Uint()
	if n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.B)) {
		d.fail()
		return nil
	}
	p := append([]byte{}, d.B[:n]...)
	d.B = d.B[n:]
	return p
}
