package spill

import (
	"bytes"
	"fmt"
)

// Store parks values of type T in a Log between their uses, encoded with
// the functions it is made with: a run that must keep a T per mailbox
// until its end (both restores' per-mailbox state) keeps only a Holder
// of it in memory, which says where the value is parked and holds it
// while it is loaded. A value parked again after its use is written only
// if it changed (Repark, or the bytes it was loaded from).
type Store[T any] struct {
	Log
	enc    Enc
	buf    []byte
	encode func(*T, *Enc)
	decode func(*T, *Dec)
	// loaded keeps the bytes each value now loaded was read from, by
	// where it is parked (at most maxLoaded, then emptied), so that Park
	// compares its new encoding with them rather than reading them back.
	loaded map[int64][]byte
}

// maxLoaded bounds the values whose bytes a Store keeps while they are
// loaded: more than a restore's commit group loads at once.
const maxLoaded = 4096

// A Holder is what a run keeps in memory of a value parked in a Store.
type Holder[T any] interface {
	// Slot returns where the value is parked (-1 before it first is)
	// and the value while it is loaded (nil while it is parked).
	Slot() (ref *int64, v **T)
	// Item names the value in errors.
	Item() string
}

// A Holder that is also Pinned, and says so, keeps its value resident:
// Park leaves it loaded and writes nothing (remote's --into box, which
// the run consults throughout).
type Pinned interface {
	Pinned() bool
}

// NewStore returns an empty Store of values that encode writes and
// decode reads back (reporting damage in the Dec's Err).
func NewStore[T any](encode func(*T, *Enc), decode func(*T, *Dec)) *Store[T] {
	return &Store[T]{encode: encode, decode: decode}
}

// Park writes h's value, if it changed since it was last parked, and
// drops it from memory. A value not loaded stays as it is.
func (s *Store[T]) Park(h Holder[T]) error {
	ref, v := h.Slot()
	if *v == nil {
		return nil
	}
	if p, ok := h.(Pinned); ok && p.Pinned() {
		return nil
	}
	s.enc.Reset()
	s.encode(*v, &s.enc)
	if s.enc.Err != nil {
		return fmt.Errorf("%s: %w", h.Item(), s.enc.Err)
	}
	r := *ref
	var err error
	if old, ok := s.loaded[r]; ok {
		delete(s.loaded, r)
		if !bytes.Equal(old, s.enc.B) {
			r, err = s.Append(s.enc.B)
		}
	} else {
		r, s.buf, err = s.Repark(r, s.enc.B, s.buf)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", h.Item(), err)
	}
	*ref, *v = r, nil
	return nil
}

// Load makes h's value resident, until Park.
func (s *Store[T]) Load(h Holder[T]) error {
	ref, v := h.Slot()
	if *v != nil {
		return nil
	}
	d, err := s.Get(*ref)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Item(), err)
	}
	if s.loaded == nil || len(s.loaded) >= maxLoaded {
		s.loaded = map[int64][]byte{}
	}
	s.loaded[*ref] = bytes.Clone(s.buf) // what Get read
	*v = d
	return nil
}

// Use loads h's value, calls fn, and parks the value again, also when fn
// fails; it returns the first error.
func (s *Store[T]) Use(h Holder[T], fn func() error) error {
	if err := s.Load(h); err != nil {
		return err
	}
	err := fn()
	if perr := s.Park(h); err == nil {
		err = perr
	}
	return err
}

// Size returns about how many bytes h's value takes parked: the bytes it
// was loaded from while it is loaded (Load), else its encoding now.
func (s *Store[T]) Size(h Holder[T]) int {
	ref, v := h.Slot()
	if b, ok := s.loaded[*ref]; ok {
		return len(b)
	}
	if *v == nil {
		return 0
	}
	s.enc.Reset()
	s.encode(*v, &s.enc)
	return len(s.enc.B)
}

// Peek returns h itself while its value is loaded, else a copy of h with
// its value read from the Store, to read: changes to it are lost.
func Peek[T, E any, H interface {
	*E
	Holder[T]
}](s *Store[T], h H) (H, error) {
	ref, v := h.Slot()
	if *v != nil {
		return h, nil
	}
	d, err := s.Get(*ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Item(), err)
	}
	c := H(new(E))
	*c = *h
	_, cv := c.Slot()
	*cv = d
	return c, nil
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
