package dumpfile

import (
	"io"

	"github.com/zeebo/blake3"
)

// sealer is a sealed Writer's output: it writes every byte to out and
// adds it to the digest h. The dlist writer above it is a dump's one
// sequential stage, through which every byte passes; with the digest and
// the write (a system call that waits for the reader of a full pipe, or
// zstd's compression) one after the other on it, it was the stage that
// the dump's hashing workers waited for (docs/benchmarks.md, "What bounds
// dump and verify").
//
// In the background (Options.Background), each full buffer of the dlist
// writer is taken whole (dlist.BufferWriter) and written by a goroutine
// of its own while the writer fills the next: the writer waits only when
// that one is full too. That goroutine then hashes the buffer too, unless
// it compresses: zstd is then the slowest stage, and the writer hashes
// each buffer as it hands it over, beside the compression. Otherwise,
// and for a direct Write, the write runs on a goroutine beside the
// digest, and Write returns once both are done.
type sealer struct {
	out        io.Writer
	h          *blake3.Hasher
	background bool
	hashBehind bool       // the background goroutine hashes what it wrote
	done       chan error // the outcome of the write in flight
	inFlight   []byte     // the buffer being written, in the background
	spare      []byte     // the buffer written last, for the dlist writer to fill
	err        error      // the first write error
}

func newSealer(out io.Writer, h *blake3.Hasher, background, compress bool) *sealer {
	return &sealer{out: out, h: h, background: background, hashBehind: !compress, done: make(chan error, 1)}
}

// sealAsyncMin is the smallest write that goes to out from a goroutine
// beside the digest: below it, starting the goroutine and waiting for it
// costs more than the overlap gains.
const sealAsyncMin = 64 << 10

// start writes p to out on a goroutine of its own; wait collects it.
// With digest, that goroutine then adds p to the digest: the buffer was
// just read by the write, and the digest then never reads it at the same
// time as the write (measured, that made BLAKE3 slower).
func (s *sealer) start(p []byte, digest bool) {
	go func() {
		n, err := s.out.Write(p)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		if digest {
			s.h.Write(p)
		}
		s.done <- err
	}()
}

// wait waits for the write in flight, if any, and returns the first
// write error.
func (s *sealer) wait() error {
	if s.inFlight != nil {
		if err := <-s.done; err != nil && s.err == nil {
			s.err = err
		}
		s.spare, s.inFlight = s.inFlight[:0], nil
	}
	return s.err
}

// Write writes p to out and adds it to the digest, and returns once both
// are done (after the buffer in flight). Like io.MultiWriter, it reports
// out's error; BLAKE3's Write never fails. The digest of a stream whose
// write failed is never written.
func (s *sealer) Write(p []byte) (int, error) {
	if err := s.wait(); err != nil {
		return 0, err
	}
	if len(p) < sealAsyncMin {
		s.h.Write(p)
		n, err := s.out.Write(p)
		if err != nil {
			s.err = err
		}
		return n, err
	}
	s.start(p, false)
	s.h.Write(p)
	if err := <-s.done; err != nil {
		s.err = err
		return 0, err
	}
	return len(p), nil
}

// WriteBuffer takes b to write (and hash) in the background and returns
// the buffer written before it (dlist.BufferWriter). One buffer at a time
// is in flight, so the digest is over the bytes in order.
func (s *sealer) WriteBuffer(b []byte) ([]byte, error) {
	if !s.background {
		_, err := s.Write(b)
		return b[:0], err
	}
	if err := s.wait(); err != nil {
		return b, err
	}
	s.inFlight = b
	s.start(b, s.hashBehind)
	if !s.hashBehind {
		s.h.Write(b)
	}
	next := s.spare
	s.spare = nil
	if next == nil {
		next = make([]byte, 0, cap(b))
	}
	return next, nil
}
