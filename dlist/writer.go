package dlist

import (
	"fmt"
	"io"
	"strconv"

	"github.com/mbtool/mbtool/guid"
)

// flushAt is the buffered size at which a Writer from NewWriter writes
// out.
const flushAt = 64 << 10

// Writer prints dlist command lines exactly as Cyrus 3.6 prints them: one
// SP between verb, name and value, between a key and its value and between
// list items, none after "(" or "%(" or before ")", CRLF at the end of a
// line; strings by the astring rules (bare atom, else quoted without
// escapes, else literal).
//
// Lines can be written whole (WriteLine, WriteValue) or streamed without a
// tree (BeginLine, Key, Atom, Num, ..., BeginList, EndList, EndLine), which
// keeps memory flat for an APPLY MAILBOX of a million records.
//
// Output is buffered; call Flush at the end. The first error (from the
// underlying writer, or ErrInvalid for a call that would make output that
// does not parse back) is sticky: later calls do nothing and return it.
type Writer struct {
	w       io.Writer
	bw      BufferWriter // w, when it takes whole buffers (Flush); asked once, not per literal
	buf     []byte
	flushAt int // len(buf) at which it is written out
	flushed int64
	err     error
	sync    bool

	inLine  bool
	hasName bool
	done    bool // the line's value is complete
	sep     bool // the next item needs a leading SP
	stack   []wframe
	tree    []treeFrame // WriteValue's stack, reused
}

type wframe struct {
	kv    bool
	keyed bool // a key was written, its value is due
}

type treeFrame struct {
	v *Value
	i int
}

// NewWriter returns a Writer printing to w. Literals are printed
// non-synchronising ({n+}), as Cyrus's sync_client and its in-memory
// printing do.
func NewWriter(w io.Writer) *Writer {
	return NewWriterSize(w, flushAt)
}

// NewWriterSize is NewWriter writing out once size bytes are buffered
// (64 KiB at least): fewer, larger writes for a stream of many file
// literals, such as a dump into a pipe. A file literal that fits in the
// buffer is copied into it; a larger one is copied through it, at most a
// buffer at a time.
func NewWriterSize(w io.Writer, size int) *Writer {
	size = max(size, flushAt)
	bw, _ := w.(BufferWriter)
	return &Writer{w: w, bw: bw, buf: make([]byte, 0, size+4096), flushAt: size}
}

// SetSyncLiterals makes literals print as {n} rather than {n+}, as a Cyrus
// server prints them in its replies.
func (w *Writer) SetSyncLiterals(sync bool) { w.sync = sync }

// Err returns the Writer's sticky error, if any.
func (w *Writer) Err() error { return w.err }

// Written returns the number of bytes written so far, to the underlying
// writer or still in the buffer.
func (w *Writer) Written() int64 { return w.flushed + int64(len(w.buf)) }

// BufferWriter is an underlying writer that takes a Writer's buffer
// whole, to write it while the Writer fills another: Flush hands the
// buffer to WriteBuffer and fills the one it returns. WriteBuffer owns b
// from the call on; the buffer it returns is empty and no smaller than b.
// An error it returns may be that of an earlier buffer's write.
type BufferWriter interface {
	io.Writer
	WriteBuffer(b []byte) ([]byte, error)
}

// Flush writes the buffered bytes to the underlying writer, or hands them
// to it if it is a BufferWriter.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	if w.bw != nil {
		n := len(w.buf)
		next, err := w.bw.WriteBuffer(w.buf)
		if err != nil {
			w.err = fmt.Errorf("dlist: writing: %w", err)
			return w.err
		}
		w.flushed += int64(n)
		w.buf = next[:0]
		return nil
	}
	n, err := w.w.Write(w.buf)
	w.flushed += int64(n)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("dlist: writing: %w", err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *Writer) maybeFlush() {
	if len(w.buf) >= w.flushAt {
		w.Flush()
	}
}

// invalid records an ErrInvalid error.
func (w *Writer) invalid(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("dlist: %s: %w", fmt.Sprintf(format, args...), ErrInvalid)
	}
}

// BeginLine starts a line with a verb and, unless name is empty, a name:
// BeginLine("APPLY", "MAILBOX"). The name is printed by the astring rules.
// A line with a name must get exactly one value before EndLine; a line
// without ("EXIT") must get none.
func (w *Writer) BeginLine(verb, name string) {
	w.beginLine(verb, name, name != "")
}

func (w *Writer) beginLine(verb, name string, hasName bool) {
	if w.err != nil {
		return
	}
	if w.inLine {
		w.invalid("BeginLine %s: previous line not ended", verb)
		return
	}
	if !validVerb(verb) {
		w.invalid("verb %q is not an atom", verb)
		return
	}
	if hasName && !validKey(name) {
		w.invalid("name %q contains NUL", name)
		return
	}
	w.buf = append(w.buf, verb...)
	if hasName {
		w.buf = append(w.buf, ' ')
		w.buf = appendAString(w.buf, name, w.sync)
	}
	w.inLine, w.hasName, w.done, w.sep = true, hasName, false, true
	w.stack = w.stack[:0]
}

// EndLine ends the line with CRLF. It fails with ErrInvalid if a list is
// still open or a named line has no value.
func (w *Writer) EndLine() error {
	if w.err != nil {
		return w.err
	}
	switch {
	case !w.inLine:
		w.invalid("EndLine without BeginLine")
	case len(w.stack) > 0:
		w.invalid("EndLine with %d lists open", len(w.stack))
	case w.hasName && !w.done:
		w.invalid("EndLine: the line's name has no value")
	}
	if w.err != nil {
		return w.err
	}
	w.buf = append(w.buf, '\r', '\n')
	w.inLine = false
	w.maybeFlush()
	return w.err
}

// item prepares for a value: it checks that one may come here and writes
// the separator.
func (w *Writer) item() bool {
	if w.err != nil {
		return false
	}
	if !w.inLine {
		w.invalid("value outside a line")
		return false
	}
	if n := len(w.stack); n == 0 {
		if !w.hasName || w.done {
			w.invalid("second value for the line")
			return false
		}
	} else if f := &w.stack[n-1]; f.kv {
		if !f.keyed {
			w.invalid("value in a kvlist without a key")
			return false
		}
		f.keyed = false
	}
	if w.sep {
		w.buf = append(w.buf, ' ')
	}
	return true
}

// scalarDone finishes a scalar value.
func (w *Writer) scalarDone() {
	w.sep = true
	if len(w.stack) == 0 {
		w.done = true
	}
	if len(w.buf) >= w.flushAt {
		w.Flush()
	}
}

// Key writes a key inside a KVList; the next call writes its value.
func (w *Writer) Key(name string) {
	if w.err != nil {
		return
	}
	n := len(w.stack)
	if n == 0 || !w.stack[n-1].kv {
		w.invalid("key %q outside a kvlist", name)
		return
	}
	if w.stack[n-1].keyed {
		w.invalid("key %q after a key", name)
		return
	}
	if !validKey(name) {
		w.invalid("key %q contains NUL", name)
		return
	}
	if w.sep {
		w.buf = append(w.buf, ' ')
	}
	w.buf = appendAString(w.buf, name, w.sync)
	w.stack[n-1].keyed = true
	w.sep = true
}

// Atom writes s by the astring rules (see NewAtom).
func (w *Writer) Atom(s string) {
	if w.item() {
		w.buf = appendAString(w.buf, s, w.sync)
		w.scalarDone()
	}
}

// Bytes writes b by the BUF rules (see NewBytes).
func (w *Writer) Bytes(b []byte) {
	if w.item() {
		w.buf = appendAString(w.buf, b, w.sync)
		w.scalarDone()
	}
}

// Num writes n in decimal.
func (w *Writer) Num(n uint64) {
	if w.item() {
		w.buf = strconv.AppendUint(w.buf, n, 10)
		w.scalarDone()
	}
}

// Hex writes n as 16 lowercase hex digits.
func (w *Writer) Hex(n uint64) {
	if w.item() {
		w.buf = appendHex16(w.buf, n)
		w.scalarDone()
	}
}

// GUID writes the 40 lowercase hex digits of g.
func (w *Writer) GUID(g guid.GUID) {
	if w.item() {
		w.buf = g.AppendHex(w.buf)
		w.scalarDone()
	}
}

// Flag writes s verbatim, as Cyrus prints flags. A flag that would not
// parse back as the same text (empty, NIL, holding a separator, '(', ')',
// '"' or NUL, or starting with '{' or '%') is refused with ErrInvalid.
func (w *Writer) Flag(s string) {
	if !validFlag(s) {
		if w.err == nil {
			w.invalid("flag %q cannot be printed verbatim", s)
		}
		return
	}
	if w.item() {
		w.buf = append(w.buf, s...)
		w.scalarDone()
	}
}

// Nil writes NIL.
func (w *Writer) Nil() {
	if w.item() {
		w.buf = append(w.buf, "NIL"...)
		w.scalarDone()
	}
}

// BeginList opens a List.
func (w *Writer) BeginList() { w.begin(false) }

// BeginKVList opens a KVList; its items are written as Key then a value.
func (w *Writer) BeginKVList() { w.begin(true) }

func (w *Writer) begin(kv bool) {
	if !w.item() {
		return
	}
	if kv {
		w.buf = append(w.buf, '%', '(')
	} else {
		w.buf = append(w.buf, '(')
	}
	w.stack = append(w.stack, wframe{kv: kv})
	w.sep = false
}

// EndList closes the innermost List or KVList.
func (w *Writer) EndList() {
	if w.err != nil {
		return
	}
	n := len(w.stack)
	if n == 0 {
		w.invalid("EndList without an open list")
		return
	}
	if w.stack[n-1].keyed {
		w.invalid("EndList: the last key has no value")
		return
	}
	w.stack = w.stack[:n-1]
	w.buf = append(w.buf, ')')
	w.scalarDone()
}

// File writes the file literal %{partition guid size} CRLF and copies
// exactly size bytes from body after it; a body shorter than size is an
// error wrapping io.ErrUnexpectedEOF (and the output is then unusable). The
// bytes are not hashed: wrap body in guid.NewReader to check them.
func (w *Writer) File(partition string, g guid.GUID, size int64, body io.Reader) error {
	if !w.fileHeader(partition, g, size) {
		return w.err
	}
	w.copyBody(size, body)
	w.scalarDone()
	return w.err
}

// FileBytes is File for a body already in memory: a body that fits in the
// buffer is copied into it; a larger one is written from data as it is,
// after the buffered bytes, without a copy.
func (w *Writer) FileBytes(partition string, g guid.GUID, data []byte) error {
	if !w.fileHeader(partition, g, int64(len(data))) {
		return w.err
	}
	w.body(data)
	w.scalarDone()
	return w.err
}

// FileChunks is FileBytes for a body in pieces: its bytes are the chunks'
// bytes in order.
func (w *Writer) FileChunks(partition string, g guid.GUID, chunks [][]byte) error {
	var size int64
	for _, c := range chunks {
		size += int64(len(c))
	}
	if !w.fileHeader(partition, g, size) {
		return w.err
	}
	for _, c := range chunks {
		w.body(c)
	}
	w.scalarDone()
	return w.err
}

// body writes bytes of a file literal's body.
func (w *Writer) body(data []byte) {
	if w.err != nil {
		return
	}
	if len(data) <= cap(w.buf)-len(w.buf) {
		w.buf = append(w.buf, data...)
	} else if w.bw != nil {
		// Through full buffers handed over: a copy, but the write and
		// whatever the BufferWriter does with them run beside us.
		for len(data) > 0 {
			if len(w.buf) == cap(w.buf) && w.Flush() != nil {
				break
			}
			k := min(len(data), cap(w.buf)-len(w.buf))
			w.buf = append(w.buf, data[:k]...)
			data = data[k:]
		}
	} else if w.Flush() == nil {
		n, err := w.w.Write(data)
		w.flushed += int64(n)
		if err == nil && n < len(data) {
			err = io.ErrShortWrite
		}
		if err != nil {
			w.err = fmt.Errorf("dlist: writing: %w", err)
		}
	}
}

// fileHeader checks a file literal and writes its %{partition guid size}
// CRLF; false means the Writer has failed.
func (w *Writer) fileHeader(partition string, g guid.GUID, size int64) bool {
	if size < 0 || size > DefaultMaxFile {
		w.invalid("file literal size %d out of range", size)
	}
	if !validKey(partition) {
		w.invalid("partition %q contains NUL", partition)
	}
	if !w.item() {
		return false
	}
	w.buf = append(w.buf, '%', '{')
	w.buf = appendAString(w.buf, partition, w.sync)
	w.buf = append(w.buf, ' ')
	w.buf = g.AppendHex(w.buf)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendInt(w.buf, size, 10)
	w.buf = append(w.buf, '}', '\r', '\n')
	return true
}

// copyBody copies n bytes of body into the output: small bodies through
// the buffer, large ones straight to the underlying writer. An error the
// body returns together with its last bytes, or on a read after them,
// fails the copy: that is how guid.Reader reports a GUID mismatch, and
// io.ReadFull would drop it.
func (w *Writer) copyBody(n int64, body io.Reader) {
	bodyErr := func(err error, got int64) {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		w.err = fmt.Errorf("dlist: file literal body: %d of %d bytes: %w", got, n, err)
	}
	if w.bw != nil {
		// Read into the buffer, handing each full one over (Flush).
		for got := int64(0); got < n; {
			if len(w.buf) == cap(w.buf) && w.Flush() != nil {
				return
			}
			k := len(w.buf)
			m, err := readFull(body, w.buf[k:k+int(min(n-got, int64(cap(w.buf)-k)))])
			w.buf = w.buf[:k+m]
			got += int64(m)
			if err == nil && got == n {
				err = bodyEnd(body)
			}
			if err != nil {
				bodyErr(err, got)
				return
			}
		}
		return
	}
	if free := int64(cap(w.buf) - len(w.buf)); n <= free {
		k := len(w.buf)
		m, err := readFull(body, w.buf[k:k+int(n)])
		if err == nil {
			err = bodyEnd(body)
		}
		if err != nil {
			bodyErr(err, int64(m))
			return
		}
		w.buf = w.buf[:k+int(n)]
		return
	}
	if w.Flush() != nil {
		return
	}
	if rf, ok := w.w.(io.ReaderFrom); ok {
		m, err := rf.ReadFrom(io.LimitReader(body, n))
		w.flushed += m
		if err == nil && m < n {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			err = bodyEnd(body)
		}
		if err != nil {
			bodyErr(err, m)
		}
		return
	}
	// Use the empty buffer to copy, without allocating.
	b := w.buf[:cap(w.buf)]
	for got := int64(0); got < n; {
		k := int64(len(b))
		if n-got < k {
			k = n - got
		}
		m, err := readFull(body, b[:k])
		if m > 0 {
			wn, werr := w.w.Write(b[:m])
			w.flushed += int64(wn)
			got += int64(wn)
			if werr == nil && wn < m {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				w.err = fmt.Errorf("dlist: writing: %w", werr)
				return
			}
		}
		if err == nil && got == n {
			err = bodyEnd(body)
		}
		if err != nil {
			bodyErr(err, got)
			return
		}
	}
}

// readFull is io.ReadFull, except that an error returned with the bytes
// that fill b is kept.
func readFull(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			if err == io.EOF && n == len(b) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

// bodyEnd asks a body that gave all its bytes for a late error with an
// empty read; io.EOF or nothing means it is fine.
func bodyEnd(body io.Reader) error {
	if _, err := body.Read(nil); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// CopyLines copies r to the output as it is, between lines: r must hold
// whole lines another Writer printed (a line built aside, to go after
// lines that were due before it). It returns the Writer's error.
func (w *Writer) CopyLines(r io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if w.inLine {
		w.invalid("CopyLines inside a line")
		return w.err
	}
	for {
		if len(w.buf) == cap(w.buf) && w.Flush() != nil {
			return w.err
		}
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		if err == io.EOF {
			w.maybeFlush()
			return w.err
		}
		if err != nil {
			w.err = fmt.Errorf("dlist: copying lines: %w", err)
			return w.err
		}
	}
}
