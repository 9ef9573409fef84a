package dlist

import (
	"errors"
	"fmt"
	"io"
)

const bufSize = 64 << 10

// state is where the Reader is in the grammar of a command line.
type state uint8

const (
	stLineStart state = iota // next: a verb, or io.EOF
	stAfterVerb              // next: SP (name or status text) or end of line
	stName                   // next: the line's <NAME>, right after one SP
	stText                   // next: the text of a status line
	stTopValue               // next: the line's value
	stAfterTop               // next: [CR] LF
	stInList                 // next: a list item or ')'
	stKVKey                  // next: a key or ')'
	stKVValue                // next: the value of a key
)

// Reader reads a stream of dlist command lines, as sync_client sends them
// and mbtool dumps store them. It reads its input through a buffer of its
// own (64 KiB), so it may read past the last line it returns. When r is a
// Lender, it parses the bytes r lends instead (see Lender).
//
// Next returns one token at a time with no allocation; ReadValue and
// ReadLine build trees. They can be mixed: a typical consumer reads the
// verb, name and the opening of an APPLY MAILBOX with Next, then each
// RECORD with ReadValue. After a File token, Body returns the file's bytes.
//
// The Reader accepts what Cyrus 3.6's stream parser (dlist_parse) accepts
// and rejects what it rejects, except where noted in the package
// documentation. After an error every call returns that error.
type Reader struct {
	rd       io.Reader
	buf      []byte
	pos, end int
	base     int64 // input offset of buf[0]
	rerr     error // error from rd, reported once the buffer is drained
	err      error // sticky error
	lim      Limits

	line       int   // 1 + LF bytes consumed outside literals
	lineStart  int64 // offset of the current command line
	lineBodies int64 // body bytes (literals, file literals) in the current line
	state      state
	status     bool              // the current line's verb is OK, NO or BAD
	stack      []Kind            // open List and KVList containers
	scratch    []byte            // atoms and quoted strings that span refills or have escapes
	big        []byte            // literal contents that do not fit the buffer
	lender     Lender            // rd, when it lends its bytes
	lent       bool              // buf is what lender.Lend returned last
	own        []byte            // the Reader's own buffer; nil until needed with a Lender
	left       int64             // unread bytes of the current file literal's body
	openVals   []openFrame       // ReadValue's open containers, reused
	kids       []*Value          // ReadValue's children being gathered
	arena      arena             // memory for ReadValue's trees
	keys       map[string]string // interned keys
}

// NewReader returns a Reader reading from r with DefaultLimits.
func NewReader(r io.Reader) *Reader {
	rd := &Reader{
		rd:   r,
		lim:  DefaultLimits(),
		line: 1,
	}
	if l, ok := r.(Lender); ok {
		rd.lender = l
	} else {
		rd.own = make([]byte, bufSize)
		rd.buf = rd.own
	}
	return rd
}

// SetLimits replaces the Reader's limits; zero fields take the defaults.
func (r *Reader) SetLimits(l Limits) { r.lim = l.withDefaults() }

// Offset returns the number of input bytes consumed so far.
func (r *Reader) Offset() int64 { return r.base + int64(r.pos) }

// LineNumber returns the current line number: 1 plus the LF bytes
// consumed outside literals (see the package documentation). For input
// printed by Cyrus or a Writer it is the number of the command line being
// read.
func (r *Reader) LineNumber() int { return r.line }

var errLineTooLong = errors.New("line too long")

// fill reads more input into the buffer, discarding the bytes before pos.
// It returns io.EOF at the end of input, errLineTooLong when the current
// line exceeds MaxLine, or the read error.
func (r *Reader) fill() error {
	if r.state != stLineStart {
		if n := r.Offset() - r.lineStart - r.lineBodies; n > r.lim.MaxLine {
			return errLineTooLong
		}
	}
	if r.rerr != nil {
		return r.rerr
	}
	if r.lender != nil {
		if r.pos == r.end {
			return r.lend()
		}
		if r.lent {
			// An item goes on past the lent bytes (the parsing never
			// asks for more before the end; this keeps it correct if
			// it did): go on with a copy in the Reader's own buffer.
			rest := r.buf[r.pos:r.end]
			if len(r.own) < len(rest)+bufSize {
				r.own = make([]byte, len(rest)+bufSize)
			}
			n := copy(r.own, rest)
			r.base += int64(r.pos)
			r.buf, r.pos, r.end, r.lent = r.own, 0, n, false
		}
	}
	if r.pos > 0 {
		n := copy(r.buf, r.buf[r.pos:r.end])
		r.base += int64(r.pos)
		r.pos, r.end = 0, n
	}
	for i := 0; i < 100; i++ {
		n, err := r.rd.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			err, n = errors.New("dlist: invalid Read count"), 0
		}
		r.end += n
		if err != nil {
			r.rerr = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	r.rerr = io.ErrNoProgress
	return r.rerr
}

// peek returns the next byte without consuming it.
func (r *Reader) peek() (byte, error) {
	if r.pos < r.end {
		return r.buf[r.pos], nil
	}
	if err := r.fill(); err != nil {
		return 0, err
	}
	return r.buf[r.pos], nil
}

// syntaxErr returns a ParseError wrapping ErrSyntax for the item that
// started at off on line line.
func (r *Reader) syntaxErr(off int64, line int, what, format string, args ...any) error {
	return &ParseError{Line: line, Offset: off, Expected: what, Err: newReason(ErrSyntax, format, args...)}
}

// limitErr is syntaxErr for ErrLimit.
func (r *Reader) limitErr(off int64, line int, what, format string, args ...any) error {
	return &ParseError{Line: line, Offset: off, Expected: what, Err: newReason(ErrLimit, format, args...)}
}

// readErr turns an error from fill into the error to return: truncation
// and line limits become ParseErrors, I/O errors are wrapped with the
// offset.
func (r *Reader) readErr(off int64, line int, what string, err error) error {
	switch err {
	case io.EOF:
		return &ParseError{Line: line, Offset: off, Expected: what,
			Err: newReason(ErrTruncated, "unexpected end of input at offset %d", r.Offset())}
	case errLineTooLong:
		return &ParseError{Line: r.line, Offset: r.lineStart, Expected: "line",
			Err: newReason(ErrLimit, "longer than %d bytes", r.lim.MaxLine)}
	}
	return fmt.Errorf("dlist: reading %s at offset %d: %w", what, r.Offset(), err)
}

// skipSpace skips isspace() bytes, counting LFs.
func (r *Reader) skipSpace() error {
	for {
		for r.pos < r.end {
			c := r.buf[r.pos]
			if !isSpace[c] {
				return nil
			}
			if c == '\n' {
				r.line++
			}
			r.pos++
		}
		if err := r.fill(); err != nil {
			return err
		}
	}
}

// Next returns the next token. It returns io.EOF only at a clean end of
// input, between lines; input ending elsewhere is an error wrapping
// ErrTruncated. Unread bytes of a file literal are skipped first.
func (r *Reader) Next() (t Token, err error) {
	if err = r.nextInto(&t); err != nil {
		return Token{}, err
	}
	return t, nil
}

// nextInto is Next without copying the Token; t must be zero.
func (r *Reader) nextInto(t *Token) error {
	if r.err != nil {
		return r.err
	}
	if cap(r.big) > 1<<20 {
		r.big = nil // do not keep a large literal's memory
	}
	if err := r.next(t); err != nil {
		r.err = err
		return err
	}
	return nil
}

// next reads the next token into t, which the caller has zeroed.
func (r *Reader) next(t *Token) error {
	if r.left > 0 {
		if err := r.skipBody(); err != nil {
			return err
		}
	}
	switch r.state {
	case stInList, stKVKey:
		// The common case, first: one SP, then an atom.
		if r.pos < r.end && r.buf[r.pos] == ' ' {
			r.pos++
		}
		if r.pos >= r.end || isSpace[r.buf[r.pos]] {
			if err := r.skipSpace(); err != nil {
				return r.readErr(r.Offset(), r.line, "list item", err)
			}
		}
		t.Offset, t.Line = r.Offset(), r.line
		if r.buf[r.pos] == ')' {
			t.Kind = End
			r.pos++
			r.stack = r.stack[:len(r.stack)-1]
			r.valueDone()
			return nil
		}
		if r.state == stKVKey {
			return r.key(t, false)
		}
		return r.value(t)
	case stTopValue, stKVValue:
		if r.pos < r.end && r.buf[r.pos] == ' ' {
			r.pos++
		}
		if r.pos >= r.end || isSpace[r.buf[r.pos]] {
			if err := r.skipSpace(); err != nil {
				return r.readErr(r.Offset(), r.line, "value", err)
			}
		}
		t.Offset, t.Line = r.Offset(), r.line
		return r.value(t)
	case stLineStart:
		return r.verb(t)
	case stAfterVerb:
		return r.afterVerb(t)
	case stName:
		t.Offset, t.Line = r.Offset(), r.line
		return r.key(t, true)
	case stText:
		return r.text(t)
	default: // stAfterTop
		return r.eol(t)
	}
}

// valueDone sets the state after a complete value.
func (r *Reader) valueDone() {
	switch {
	case len(r.stack) == 0:
		r.state = stAfterTop
	case r.stack[len(r.stack)-1] == List:
		r.state = stInList
	default:
		r.state = stKVKey
	}
}

func (r *Reader) verb(t *Token) error {
	if r.pos >= r.end {
		if err := r.fill(); err == io.EOF && r.pos >= r.end {
			return io.EOF
		} else if err != nil {
			return r.readErr(r.Offset(), r.line, "verb", err)
		}
	}
	r.lineStart = r.Offset()
	r.lineBodies = 0
	r.state = stAfterVerb
	t.Kind, t.Offset, t.Line = Atom, r.lineStart, r.line
	b, err := r.atom("verb")
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return r.syntaxErr(t.Offset, t.Line, "verb", "want a command word, got %s", describe(r.buf[r.pos]))
	}
	t.Bytes = b
	r.status = string(b) == "OK" || string(b) == "NO" || string(b) == "BAD"
	return nil
}

func (r *Reader) afterVerb(t *Token) error {
	off, line := r.Offset(), r.line
	c, err := r.peek()
	if err != nil {
		return r.readErr(off, line, "end of line", err)
	}
	if c != ' ' {
		return r.eol(t)
	}
	r.pos++
	if r.status {
		r.state = stText
		return r.text(t)
	}
	r.state = stName
	t.Offset, t.Line = r.Offset(), r.line
	return r.key(t, true)
}

// eol reads [CR] LF.
func (r *Reader) eol(t *Token) error {
	t.Kind, t.Offset, t.Line = EOL, r.Offset(), r.line
	c, err := r.peek()
	if err != nil {
		return r.readErr(t.Offset, t.Line, "end of line", err)
	}
	if c == '\r' {
		r.pos++
		if c, err = r.peek(); err != nil {
			return r.readErr(t.Offset, t.Line, "end of line", err)
		}
	}
	if c != '\n' {
		return r.syntaxErr(r.Offset(), r.line, "end of line", "want CRLF, got %s", describe(c))
	}
	if n := r.Offset() - r.lineStart - r.lineBodies; n > r.lim.MaxLine {
		return r.readErr(0, 0, "", errLineTooLong)
	}
	r.pos++
	r.line++
	r.state = stLineStart
	return nil
}

// text reads the text of a status line, up to CR or LF.
func (r *Reader) text(t *Token) error {
	t.Kind, t.Offset, t.Line = Text, r.Offset(), r.line
	r.scratch = r.scratch[:0]
	start, spilled := r.pos, false
	for {
		i := r.pos
		for i < r.end && r.buf[i] != '\r' && r.buf[i] != '\n' && r.buf[i] != 0 {
			i++
		}
		if n := i - start + len(r.scratch); n > r.lim.MaxAtom {
			return r.limitErr(t.Offset, t.Line, "status text", "longer than %d bytes", r.lim.MaxAtom)
		}
		r.pos = i
		if i < r.end {
			if r.buf[i] == 0 {
				return r.syntaxErr(r.Offset(), r.line, "status text", "NUL byte")
			}
			break
		}
		r.scratch = append(r.scratch, r.buf[start:i]...)
		spilled = true
		if err := r.fill(); err != nil {
			return r.readErr(t.Offset, t.Line, "status text", err)
		}
		start = r.pos
	}
	if spilled {
		t.Bytes = append(r.scratch, r.buf[start:r.pos]...)
	} else {
		t.Bytes = r.buf[start:r.pos]
	}
	r.state = stAfterTop
	return nil
}

// key reads a name: the line's <NAME> (top) or a KVList key, an astring.
// t.Offset and t.Line are set.
func (r *Reader) key(t *Token, top bool) error {
	what := "key"
	if top {
		what = "name"
	}
	t.Kind, t.IsKey = Atom, true
	c, err := r.peek()
	if err != nil {
		return r.readErr(t.Offset, t.Line, what, err)
	}
	switch {
	case c == '"':
		t.Quoted = true
		t.Bytes, err = r.quoted(what)
	case c == '{':
		t.Kind = Literal
		t.Bytes, t.Sync, err = r.literal(what)
		if err == nil && indexNUL(t.Bytes) >= 0 {
			err = r.syntaxErr(t.Offset, t.Line, what, "literal contains NUL")
		}
	case atomStop[c]:
		// Cyrus's getastring refuses these first bytes (an isspace()
		// byte other than SP, CR, LF would give an empty name).
		return r.syntaxErr(t.Offset, t.Line, what, "want atom, quoted string or literal, got %s", describe(c))
	default:
		t.Bytes, err = r.atom(what)
	}
	if err != nil {
		return err
	}
	if top {
		r.state = stTopValue
	} else {
		r.state = stKVValue
	}
	return nil
}

// value reads a value, the reader being at its first byte. t.Offset and
// t.Line are set.
func (r *Reader) value(t *Token) error {
	c := r.buf[r.pos]
	var err error
	switch c {
	case '(':
		return r.open(t, List)
	case '%':
		r.pos++
		c2, err := r.peek()
		if err != nil {
			return r.readErr(t.Offset, t.Line, "value", err)
		}
		switch c2 {
		case '(':
			return r.open(t, KVList)
		case '{':
			r.pos++
			return r.file(t)
		}
		return r.syntaxErr(t.Offset, t.Line, "value", "'%%' followed by %s, want '(' or '{'", describe(c2))
	case '{':
		t.Kind = Literal
		t.Bytes, t.Sync, err = r.literal("literal")
	case '"':
		t.Kind, t.Quoted = Atom, true
		t.Bytes, err = r.quoted("quoted string")
	case '\\':
		t.Kind = Flag
		t.Bytes, err = r.atom("flag")
	case ')':
		return r.syntaxErr(t.Offset, t.Line, "value", "want a value, got ')'")
	default:
		t.Kind = Atom
		t.Bytes, err = r.atom("atom")
		if err == nil && len(t.Bytes) == 3 && string(t.Bytes) == "NIL" {
			t.Kind, t.Bytes = Nil, nil
		}
	}
	if err != nil {
		return err
	}
	r.valueDone()
	return nil
}

// open starts a List or KVList at '(' (after '%' for a KVList).
func (r *Reader) open(t *Token, k Kind) error {
	if len(r.stack) >= r.lim.MaxDepth {
		return r.limitErr(t.Offset, t.Line, k.String(), "nesting deeper than %d", r.lim.MaxDepth)
	}
	r.pos++
	r.stack = append(r.stack, k)
	t.Kind = k
	if k == List {
		r.state = stInList
	} else {
		r.state = stKVKey
	}
	return nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}
