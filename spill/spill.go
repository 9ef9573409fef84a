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
//
// What was written last is kept in pend until pendSize bytes gather, and
// read back from there; what was read from the file last is kept in win.
// The passes of a restore over its mailboxes read the record of each in
// turn, most often in the order they were written, mixed with writes of
// the ones that changed: each read was a pread, and each read after a
// write a write of the buffer too (about a dozen system calls a mailbox
// at 20,000 mailboxes). A record is never changed once written, so
// neither copy goes stale.
type Log struct {
	f       *os.File
	pend    []byte // the bytes after flushed, not in the file yet
	size    int64  // bytes written, pending ones included
	flushed int64  // bytes in the file
	hdr     [4]byte
	win     []byte // bytes of the file from winOff, read by Read
	winOff  int64
	winEnd  int64 // where the last record Read ended: a read there is in order
	reads   int   // preads of the file, for tests
	writes  int   // writes to the file, for tests
}

// pendSize is the bytes Write gathers before writing them to the file;
// readWindow the bytes of the file Read reads at once when records are
// read in order (a window), so that the next ones come from memory.
const (
	pendSize   = 64 << 10
	readWindow = 64 << 10
)

// Write appends p as it is (fixed-size items that the caller finds by
// their place) and returns its offset.
func (l *Log) Write(p []byte) (int64, error) {
	if l.f == nil {
		f, err := guidtable.TempFile("", "mbtool-spill-*")
		if err != nil {
			return 0, fmt.Errorf("spill file: %w", err)
		}
		l.f = f
	}
	off := l.size
	if len(l.pend)+len(p) > pendSize {
		if err := l.Flush(); err != nil {
			return 0, err
		}
		if len(p) >= pendSize {
			l.writes++
			if _, err := l.f.WriteAt(p, l.flushed); err != nil {
				return 0, fmt.Errorf("writing spill file: %w", err)
			}
			l.size += int64(len(p))
			l.flushed = l.size
			return off, nil
		}
	}
	if l.pend == nil {
		l.pend = make([]byte, 0, pendSize)
	}
	l.pend = append(l.pend, p...)
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

// Flush writes what is pending to the file, for Section and Each, which
// read the file itself; Read needs no Flush.
func (l *Log) Flush() error {
	if len(l.pend) == 0 {
		return nil
	}
	l.writes++
	// At its offset, not the file's position: after a short write the
	// same bytes go to the same place again, and no record moves.
	if _, err := l.f.WriteAt(l.pend, l.flushed); err != nil {
		return fmt.Errorf("writing spill file: %w", err)
	}
	l.flushed = l.size
	l.pend = l.pend[:0]
	return nil
}

// readGuess is how many bytes Read reads at once at an offset out of
// order (a record of one mailbox looked up): what restore parks per
// mailbox is a few hundred bytes, so one read usually brings the whole
// record, and no more is read than the next record out of order would
// use.
const readGuess = 1 << 10

// Read returns the record Append wrote at off, in buf if it is large
// enough (never in the Log's own memory: the caller may keep it until
// it passes buf again).
func (l *Log) Read(off int64, buf []byte) ([]byte, error) {
	if off < 0 || off+4 > l.size {
		return nil, fmt.Errorf("spill record at %d: beyond the %d bytes written", off, l.size)
	}
	var h [4]byte
	if err := l.readAt(h[:], off, cap(buf)); err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(h[:]))
	if n > MaxRecord || off+4+n > l.size {
		return nil, fmt.Errorf("spill record at %d: length %d: damaged", off, n)
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if err := l.readAt(buf, off+4, 0); err != nil {
		return nil, err
	}
	l.winEnd = off + 4 + n
	return buf, nil
}

// readAt fills dst with the bytes written at off (all of them written):
// those in the file through the window, the others from pend. guess is
// how many bytes from off are likely wanted next (the caller's buffer).
func (l *Log) readAt(dst []byte, off int64, guess int) error {
	if off < l.flushed {
		n := min(int64(len(dst)), l.flushed-off)
		if err := l.fileAt(dst[:n], off, guess); err != nil {
			return err
		}
		dst, off = dst[n:], off+n
	}
	if len(dst) > 0 {
		copy(dst, l.pend[off-l.flushed:])
	}
	return nil
}

// fileAt fills dst with the file's bytes at off, from the window when it
// holds them. Otherwise it reads a new window at off: readWindow bytes
// when off follows the last record read (records read in order), else
// readGuess or guess, up to readWindow (a record read out of order, in
// one read when the caller's buffer says how long it may be); a dst
// larger than that is read into directly.
func (l *Log) fileAt(dst []byte, off int64, guess int) error {
	if off >= l.winOff && off+int64(len(dst)) <= l.winOff+int64(len(l.win)) {
		copy(dst, l.win[off-l.winOff:])
		return nil
	}
	want := int64(min(max(readGuess, guess+4), readWindow))
	if off >= l.winEnd && off-l.winEnd < readWindow {
		want = readWindow
	}
	l.reads++
	if int64(len(dst)) > want {
		if got, err := l.f.ReadAt(dst, off); got < len(dst) {
			return fmt.Errorf("reading spill file: %w", eofUnexpected(err))
		}
		return nil
	}
	want = min(want, l.flushed-off)
	if int64(cap(l.win)) < want {
		l.win = make([]byte, max(want, readGuess))
	}
	l.win = l.win[:want]
	got, err := l.f.ReadAt(l.win, off)
	if int64(got) < want {
		l.win = l.win[:0]
		return fmt.Errorf("reading spill file: %w", eofUnexpected(err))
	}
	l.winOff = off
	copy(dst, l.win)
	return nil
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
