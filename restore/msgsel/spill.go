package msgsel

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"io"
	"os"

	"github.com/mbtool/mbtool/syncrec"
)

// Spill keeps records of a dump in an unlinked temporary file, so that a
// merge can go over them again after the dump has been read (and over the
// protocol, again after a retry) in flat memory. The zero Spill is empty.
type Spill struct {
	f   *os.File
	w   *bufio.Writer
	enc *gob.Encoder
	n   int64
}

// Add appends r.
func (s *Spill) Add(r *syncrec.Record) error {
	if s.f == nil {
		f, err := os.CreateTemp("", "mbtool-records-*")
		if err != nil {
			return err
		}
		os.Remove(f.Name())
		s.f, s.w = f, bufio.NewWriterSize(f, 64<<10)
		s.enc = gob.NewEncoder(s.w)
	}
	if err := s.enc.Encode(r); err != nil {
		return fmt.Errorf("spilling records: %w", err)
	}
	s.n++
	return nil
}

// Len is the number of records added.
func (s *Spill) Len() int64 { return s.n }

// Records returns the records added, in order, one per call; nil at the
// end. It may be called again for another pass; Add must not be called
// meanwhile.
func (s *Spill) Records() (func() (*syncrec.Record, error), error) {
	if s.n == 0 {
		return func() (*syncrec.Record, error) { return nil, nil }, nil
	}
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("spilling records: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	dec := gob.NewDecoder(bufio.NewReaderSize(s.f, 64<<10))
	var read int64
	return func() (*syncrec.Record, error) {
		if read == s.n {
			return nil, nil
		}
		read++
		r := new(syncrec.Record)
		if err := dec.Decode(r); err != nil {
			return nil, fmt.Errorf("reading spilled records: %w", err)
		}
		return r, nil
	}, nil
}

// Close removes the file.
func (s *Spill) Close() {
	if s != nil && s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
