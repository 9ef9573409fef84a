// Package spill keeps what a run must remember about each mailbox (or
// record) of a dump out of memory: in a Log, an unlinked temporary file
// that items are appended to and read back from by their offset. A run
// then holds an offset per item, or nothing when it reads them again in
// order, so that its memory stays flat however many mailboxes the dump
// has. The file lives as long as the Log and nothing is left behind by a
// crash (guidtable.TempFile); it is read and written through the page
// cache, not the process's memory.
//
// Both restores use it: offline restore parks each mailbox's state there
// between reading the dump and committing it (package restore), and
// restore --server keeps every record's item there between its two
// passes (package remote).
//
// A Log is not safe for concurrent use.
package spill

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/mbtool/mbtool/guidtable"
)

// MaxRecord bounds a record of Append: what is parked per mailbox is
// small (names, an ACL, the mailbox annotations, which the dump's policy
// bounds), and a length beyond this read back from the file is damage.
const MaxRecord = 64 << 20

// Log is an append-only spill file. The zero Log is empty and makes its
// file on the first write.
type Log struct {
	f       *os.File
	w       *bufio.Writer
	size    int64 // bytes written, buffered ones included
	flushed int64 // bytes in the file
	hdr     [4]byte
}

// Write appends p as it is (fixed-size items that the caller finds by
// their place) and returns its offset.
func (l *Log) Write(p []byte) (int64, error) {
	if l.f == nil {
		f, err := guidtable.TempFile("", "mbtool-spill-*")
		if err != nil {
			return 0, fmt.Errorf("spill file: %w", err)
		}
		l.f, l.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	off := l.size
	if _, err := l.w.Write(p); err != nil {
		return 0, fmt.Errorf("writing spill file: %w", err)
	}
	l.size += int64(len(p))
	return off, nil
}

// Append appends p as one record, with its length, and returns the
// offset to Read it by.
func (l *Log) Append(p []byte) (int64, error) {
	if len(p) > MaxRecord {
		return 0, fmt.Errorf("spill record of %d bytes: more than %d", len(p), MaxRecord)
	}
	binary.LittleEndian.PutUint32(l.hdr[:], uint32(len(p)))
	off, err := l.Write(l.hdr[:])
	if err != nil {
		return 0, err
	}
	_, err = l.Write(p)
	return off, err
}

// Flush makes what was written readable. Read and Section call it.
func (l *Log) Flush() error {
	if l.w == nil || l.flushed == l.size {
		return nil
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("writing spill file: %w", err)
	}
	l.flushed = l.size
	return nil
}

// readGuess is how many bytes of a record Read asks for with its length
// when the caller's buffer gives no better guess: what restore parks per
// mailbox is a few hundred bytes, so one read usually brings the whole
// record, where reading the length first cost a second system call.
// readGuessMax bounds the guess a large buffer gives, so that a run that
// once read a large record does not read that much for every small one.
const (
	readGuess    = 1 << 10
	readGuessMax = 64 << 10
)

// Read returns the record Append wrote at off, in buf if it is large
// enough. It reads the length and, in the same read, as much of the
// record as buf holds (at least readGuess bytes, at most readGuessMax);
// only a record longer than that takes a second read.
func (l *Log) Read(off int64, buf []byte) ([]byte, error) {
	if off < 0 || off+4 > l.size {
		return nil, fmt.Errorf("spill record at %d: beyond the %d bytes written", off, l.size)
	}
	if err := l.Flush(); err != nil {
		return nil, err
	}
	want := min(int64(max(min(cap(buf), readGuessMax), readGuess)), l.size-off)
	if int64(cap(buf)) < want {
		buf = make([]byte, want)
	}
	buf = buf[:want]
	got, err := l.f.ReadAt(buf, off)
	if int64(got) < want {
		return nil, fmt.Errorf("reading spill file: %w", eofUnexpected(err))
	}
	n := int64(binary.LittleEndian.Uint32(buf))
	if n > MaxRecord || off+4+n > l.size {
		return nil, fmt.Errorf("spill record at %d: length %d: damaged", off, n)
	}
	if 4+n <= want {
		// The record came with its length: move it to the front.
		copy(buf, buf[4:4+n])
		return buf[:n], nil
	}
	have := want - 4
	if int64(cap(buf)) < n {
		nb := make([]byte, n)
		copy(nb, buf[4:want])
		buf = nb
	} else {
		copy(buf, buf[4:want])
	}
	buf = buf[:n]
	if _, err := l.f.ReadAt(buf[have:], off+4+have); err != nil {
		return nil, fmt.Errorf("reading spill file: %w", err)
	}
	return buf, nil
}

// eofUnexpected turns the io.EOF of a short ReadAt into
// io.ErrUnexpectedEOF: Read asks only for bytes that were written.
func eofUnexpected(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Section returns a buffered reader of the n bytes written at off.
func (l *Log) Section(off, n int64) (*bufio.Reader, error) {
	if off < 0 || n < 0 || off+n > l.size {
		return nil, fmt.Errorf("spill section %d+%d: beyond the %d bytes written", off, n, l.size)
	}
	if err := l.Flush(); err != nil {
		return nil, err
	}
	return bufio.NewReaderSize(io.NewSectionReader(l.f, off, n), int(min(max(n, 16), 16<<10))), nil
}

// Size returns the bytes written.
func (l *Log) Size() int64 { return l.size }

// Close removes the file; the Log is empty again.
func (l *Log) Close() {
	if l != nil && l.f != nil {
		l.f.Close()
		*l = Log{}
	}
}

// Each calls fn with every record Append wrote before the call, in
// order, read through one buffered Section rather than a read per
// record. fn must not keep the slice.
func (l *Log) Each(fn func([]byte) error) error {
	size := l.size
	if size == 0 {
		return nil
	}
	r, err := l.Section(0, size)
	if err != nil {
		return err
	}
	var h [4]byte
	var buf []byte
	for off := int64(0); off < size; {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return fmt.Errorf("reading spill file at %d: %w", off, err)
		}
		n := int64(binary.LittleEndian.Uint32(h[:]))
		if n > MaxRecord || off+4+n > size {
			return fmt.Errorf("spill record at %d: length %d: damaged", off, n)
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("reading spill file at %d: %w", off+4, err)
		}
		if err := fn(buf); err != nil {
			return err
		}
		off += 4 + n
	}
	return nil
}

// Writer returns an io.Writer that appends to the Log (as Write).
func (l *Log) Writer() io.Writer { return logWriter{l} }

type logWriter struct{ l *Log }

func (w logWriter) Write(p []byte) (int, error) {
	if _, err := w.l.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Repark writes p as a record unless the record at ref (ref >= 0) holds
// p already, and returns the offset of p's record: a run that parks an
// item's state again after using it writes it only if it changed. buf is
// a buffer to compare in, returned for reuse.
func (l *Log) Repark(ref int64, p, buf []byte) (int64, []byte, error) {
	if ref >= 0 {
		old, err := l.Read(ref, buf)
		if err != nil {
			return ref, buf, err
		}
		buf = old
		if bytes.Equal(old, p) {
			return ref, buf, nil
		}
	}
	off, err := l.Append(p)
	return off, buf, err
}
