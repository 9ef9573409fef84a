package spill

import "fmt"

// Store parks values of type T in a Log between their uses, encoded with
// the functions it is made with: a run that must keep a T per mailbox
// until its end (both restores' per-mailbox state) keeps only the offset
// in memory, and parks a value again after using it, which writes it
// only if it changed (Repark).
type Store[T any] struct {
	Log
	enc    Enc
	buf    []byte
	encode func(*T, *Enc)
	decode func(*T, *Dec)
}

// NewStore returns an empty Store of values that encode writes and
// decode reads back (reporting damage in the Dec's Err).
func NewStore[T any](encode func(*T, *Enc), decode func(*T, *Dec)) *Store[T] {
	return &Store[T]{encode: encode, decode: decode}
}

// Park writes v, unless the record at ref (ref >= 0: where v was parked
// before) holds it already, and returns where v is parked.
func (s *Store[T]) Park(ref int64, v *T) (int64, error) {
	s.enc.Reset()
	s.encode(v, &s.enc)
	ref, buf, err := s.Repark(ref, s.enc.B, s.buf)
	s.buf = buf
	return ref, err
}

// Get returns a new value read from where Park put it.
func (s *Store[T]) Get(ref int64) (*T, error) {
	if ref < 0 {
		return nil, fmt.Errorf("%w: nothing parked", ErrDamaged)
	}
	p, err := s.Read(ref, s.buf)
	if err != nil {
		return nil, err
	}
	s.buf = p
	v := new(T)
	d := Dec{B: p}
	s.decode(v, &d)
	if d.Err == nil && len(d.B) != 0 {
		d.Err = ErrDamaged
	}
	return v, d.Err
}
