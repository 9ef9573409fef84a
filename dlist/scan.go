package dlist

import (
	"io"

	"github.com/mbtool/mbtool/guid"
)

// atom reads bytes up to an atom terminator (isspace, '(', ')', '"') or
// the end of input, which it does not consume. The result aliases the
// buffer when it can, so it is valid until the next read.
func (r *Reader) atom(what string) ([]byte, error) {
	// Fast path: the atom ends inside the buffer.
	buf := r.buf[:r.end]
	start, i := r.pos, r.pos
	for i < len(buf) && !atomStop[buf[i]] {
		i++
	}
	if i < len(buf) && buf[i] != 0 && i-start <= r.lim.MaxAtom {
		r.pos = i
		return buf[start:i], nil
	}
	return r.atomSlow(what)
}

func (r *Reader) atomSlow(what string) ([]byte, error) {
	off, line := r.Offset(), r.line
	start, spilled := r.pos, false
	for {
		i := r.pos
		for i < r.end && !atomStop[r.buf[i]] {
			i++
		}
		n := i - start
		if spilled {
			n += len(r.scratch)
		}
		if n > r.lim.MaxAtom {
			return nil, r.limitErr(off, line, what, "longer than %d bytes", r.lim.MaxAtom)
		}
		r.pos = i
		if i < r.end {
			if r.buf[i] == 0 {
				// Cyrus's atom reader takes NUL but its C string ends
				// there: the value would be cut short silently.
				return nil, r.syntaxErr(off, line, what, "NUL byte at offset %d", r.Offset())
			}
			break
		}
		if !spilled {
			r.scratch = r.scratch[:0]
			spilled = true
		}
		r.scratch = append(r.scratch, r.buf[start:i]...)
		if err := r.fill(); err == io.EOF {
			start = r.pos
			break // EOF ends an atom; the caller sees it next
		} else if err != nil {
			return nil, r.readErr(off, line, what, err)
		}
		start = r.pos
	}
	if spilled {
		r.scratch = append(r.scratch, r.buf[start:r.pos]...)
		return r.scratch, nil
	}
	return r.buf[start:r.pos], nil
}

// quoted reads a quoted string, the reader being at its opening quote. A
// backslash escapes any byte; an unescaped CR or LF is an error, as in
// Cyrus's getxstring. NUL is refused (see atom).
func (r *Reader) quoted(what string) ([]byte, error) {
	off, line := r.Offset(), r.line
	r.pos++
	start, spilled := r.pos, false
	for {
		i := r.pos
		for i < r.end && !quoteStop[r.buf[i]] {
			i++
		}
		n := i - start
		if spilled {
			n += len(r.scratch)
		}
		if n > r.lim.MaxAtom {
			return nil, r.limitErr(off, line, what, "longer than %d bytes", r.lim.MaxAtom)
		}
		if i < r.end {
			c := r.buf[i]
			switch c {
			case '"':
				r.pos = i + 1
				if !spilled {
					return r.buf[start:i], nil
				}
				r.scratch = append(r.scratch, r.buf[start:i]...)
				return r.scratch, nil
			case '\\':
				if !spilled {
					r.scratch = r.scratch[:0]
					spilled = true
				}
				r.scratch = append(r.scratch, r.buf[start:i]...)
				r.pos = i + 1
				e, err := r.peek()
				if err != nil {
					return nil, r.readErr(off, line, what, err)
				}
				if e == 0 {
					return nil, r.syntaxErr(off, line, what, "NUL byte at offset %d", r.Offset())
				}
				if e == '\n' {
					r.line++
				}
				r.scratch = append(r.scratch, e)
				r.pos++
				start = r.pos
				continue
			case 0:
				r.pos = i
				return nil, r.syntaxErr(off, line, what, "NUL byte at offset %d", r.Offset())
			default: // CR, LF
				r.pos = i
				return nil, r.syntaxErr(off, line, what, "unescaped %s at offset %d", describe(c), r.Offset())
			}
		}
		if !spilled {
			r.scratch = r.scratch[:0]
			spilled = true
		}
		r.scratch = append(r.scratch, r.buf[start:i]...)
		r.pos = i
		if err := r.fill(); err != nil {
			return nil, r.readErr(off, line, what, err)
		}
		start = r.pos
	}
}

// number reads 1 or more decimal digits. It returns the value, or
// overflow if it exceeds max, in which case digits holds the (first)
// digits read, for the error message.
func (r *Reader) number(off int64, line int, what string, max int64) (n int64, digits string, overflow bool, err error) {
	var d [24]byte
	nd := 0
	for {
		c, err := r.peek()
		if err != nil {
			return 0, "", false, r.readErr(off, line, what, err)
		}
		if c < '0' || c > '9' {
			if nd == 0 {
				return 0, "", false, r.syntaxErr(off, line, what, "want digit, got %s", describe(c))
			}
			break
		}
		r.pos++
		if nd < len(d) {
			d[nd] = c
		}
		nd++
		if !overflow {
			v := int64(c - '0')
			if n > (max-v)/10 {
				overflow = true
			} else {
				n = n*10 + v
			}
		}
	}
	if overflow {
		if nd > len(d) {
			digits = string(d[:]) + "..."
		} else {
			digits = string(d[:nd])
		}
	}
	return n, digits, overflow, nil
}

// literal reads {n} or {n+}, CRLF and n bytes, the reader being at '{'.
// Small literals alias the buffer; larger ones are copied into memory that
// grows as the bytes arrive.
func (r *Reader) literal(what string) (b []byte, sync bool, err error) {
	off, line := r.Offset(), r.line
	r.pos++
	n, digits, overflow, err := r.number(off, line, what+" size", r.lim.MaxLiteral)
	if err != nil {
		return nil, false, err
	}
	if overflow {
		return nil, false, r.limitErr(off, line, what+" size", "%s exceeds limit %d", digits, r.lim.MaxLiteral)
	}
	c, err := r.peek()
	if err != nil {
		return nil, false, r.readErr(off, line, what+" size", err)
	}
	sync = true
	if c == '+' {
		sync = false
		r.pos++
		if c, err = r.peek(); err != nil {
			return nil, false, r.readErr(off, line, what+" size", err)
		}
	}
	if c != '}' {
		return nil, false, r.syntaxErr(off, line, what+" size", "want '}', got %s", describe(c))
	}
	r.pos++
	// Unlike after a file literal's header, CR is mandatory here.
	for _, want := range []byte("\r\n") {
		c, err := r.peek()
		if err != nil {
			return nil, false, r.readErr(off, line, what, err)
		}
		if c != want {
			return nil, false, r.syntaxErr(off, line, what, "want CRLF after '}', got %s", describe(c))
		}
		r.pos++
	}
	r.lineBodies += n
	if int64(r.end-r.pos) >= n {
		b = r.buf[r.pos : r.pos+int(n)]
		r.pos += int(n)
		return b, sync, nil
	}
	r.big = r.big[:0]
	for left := n; left > 0; {
		if r.pos == r.end {
			if err := r.fill(); err != nil {
				if err == io.EOF {
					return nil, false, &ParseError{Line: line, Offset: off, Expected: what,
						Err: newReason(ErrTruncated, "unexpected end of input after %d of %d bytes", n-left, n)}
				}
				return nil, false, r.readErr(off, line, what, err)
			}
		}
		k := r.end - r.pos
		if int64(k) > left {
			k = int(left)
		}
		r.big = append(r.big, r.buf[r.pos:r.pos+k]...)
		r.pos += k
		left -= int64(k)
	}
	return r.big, sync, nil
}

// astring reads an atom, quoted string or literal without NUL, as Cyrus's
// getastring; used for the parts of a file literal's header.
func (r *Reader) astring(what string) ([]byte, error) {
	off, line := r.Offset(), r.line
	c, err := r.peek()
	if err != nil {
		return nil, r.readErr(off, line, what, err)
	}
	switch {
	case c == '"':
		return r.quoted(what)
	case c == '{':
		b, _, err := r.literal(what)
		if err == nil && indexNUL(b) >= 0 {
			err = r.syntaxErr(off, line, what, "literal contains NUL")
		}
		return b, err
	case atomStop[c]:
		return nil, r.syntaxErr(off, line, what, "want atom, quoted string or literal, got %s", describe(c))
	}
	return r.atom(what)
}

// file reads a file literal's header after "%{": partition SP guid SP
// size "}" [CR] LF. Its bytes are then read by Body or skipped.
func (r *Reader) file(t *Token) error {
	t.Kind = File
	p, err := r.astring("file literal partition")
	if err != nil {
		return err
	}
	t.File.Partition = string(p)
	if err := r.want(' ', "file literal partition"); err != nil {
		return err
	}
	goff := r.Offset()
	g, err := r.astring("file literal guid")
	if err != nil {
		return err
	}
	// Cyrus checks the GUID after the header's LF; the order of two
	// errors in one header is not worth copying.
	if t.File.GUID, err = guid.ParseBytes(g); err != nil {
		return r.syntaxErr(goff, t.Line, "file literal guid", "%s: not 40 hex digits", quoteShort(g))
	}
	if err := r.want(' ', "file literal guid"); err != nil {
		return err
	}
	soff := r.Offset()
	n, digits, overflow, err := r.number(soff, r.line, "file literal size", r.lim.MaxFile)
	if err != nil {
		return err
	}
	if overflow {
		return r.limitErr(soff, t.Line, "file literal size", "%s exceeds limit %d", digits, r.lim.MaxFile)
	}
	t.File.Size = n
	if err := r.want('}', "file literal size"); err != nil {
		return err
	}
	c, err := r.peek()
	if err != nil {
		return r.readErr(t.Offset, t.Line, "file literal", err)
	}
	if c == '\r' { // optional here, unlike after a literal's '}'
		r.pos++
	}
	if err := r.want('\n', "file literal"); err != nil {
		return err
	}
	r.lineBodies += n
	r.left = n
	r.valueDone()
	return nil
}

// want consumes the byte c or fails.
func (r *Reader) want(c byte, what string) error {
	off, line := r.Offset(), r.line
	got, err := r.peek()
	if err != nil {
		return r.readErr(off, line, what, err)
	}
	if got != c {
		return r.syntaxErr(off, line, what, "want %s, got %s", describe(c), describe(got))
	}
	r.pos++
	return nil
}
