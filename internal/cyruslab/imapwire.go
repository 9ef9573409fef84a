package cyruslab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrProtocol is wrapped by errors about server responses the IMAP or LMTP
// client cannot parse.
var ErrProtocol = errors.New("cyruslab: protocol error")

// Limits on what the IMAP reader accepts from a server.
const (
	maxLiteral   = 256 << 20 // bytes in one literal
	maxLine      = 1 << 20   // bytes of one line outside literals
	maxListDepth = 64        // nesting of parenthesized lists
)

// FieldKind says what a Field holds.
type FieldKind int

// The kinds of Field.
const (
	Atom   FieldKind = iota // an atom or number; Text holds it
	String                  // a quoted string or literal; Text holds its value
	Nil                     // NIL
	List                    // a parenthesized list; List holds the items
)

// Field is one parsed item of an untagged IMAP response.
type Field struct {
	Kind FieldKind
	Text string
	List []Field
}

// String formats f roughly as IMAP does, for messages and debugging.
func (f Field) String() string {
	switch f.Kind {
	case String:
		return strconv.Quote(f.Text)
	case Nil:
		return "NIL"
	case List:
		parts := make([]string, len(f.List))
		for i, x := range f.List {
			parts[i] = x.String()
		}
		return "(" + strings.Join(parts, " ") + ")"
	}
	return f.Text
}

// Number returns f as an unsigned number.
func (f Field) Number() (uint64, error) {
	if f.Kind != Atom {
		return 0, fmt.Errorf("%w: %s is not a number", ErrProtocol, f)
	}
	n, err := strconv.ParseUint(f.Text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s is not a number", ErrProtocol, f)
	}
	return n, nil
}

// Data is one untagged response ("* ...").
type Data struct {
	// Num is the leading number of responses such as "* 5 FETCH" and
	// "* 3 EXISTS", else 0.
	Num uint32
	// Name is the response's name in upper case: FETCH, EXISTS, LIST, OK, ...
	Name string
	// Fields are the parsed items after Name, except for status responses
	// (OK, NO, BAD, BYE, PREAUTH), whose rest is in Code and Text.
	Fields []Field
	// Code is the response code of a status response, without brackets
	// ("UIDVALIDITY 123"); Text is its human-readable text.
	Code, Text string
}

// isStatus reports whether name is a status response's name.
func isStatus(name string) bool {
	switch name {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return true
	}
	return false
}

// wireReader parses server responses from a buffered connection.
type wireReader struct {
	r *bufio.Reader
}

// response is one server line: untagged data, a continuation request, or a
// tagged completion.
type response struct {
	tag  string // "*" untagged, "+" continuation, else the tag
	data Data   // for untagged and tagged (Name is the status)
}

// next reads one response. It returns io.EOF only at a clean end, between
// responses.
func (w *wireReader) next() (*response, error) {
	if _, err := w.r.Peek(1); err != nil {
		return nil, err
	}
	tag, err := w.atom()
	if err != nil {
		return nil, err
	}
	if tag == "" {
		if tag, err = w.r.ReadString('\n'); err == nil {
			err = fmt.Errorf("%w: line without a tag: %q", ErrProtocol, tag)
		}
		return nil, err
	}
	if tag == "+" {
		line, err := w.line()
		return &response{tag: "+", data: Data{Text: line}}, err
	}
	if err := w.expect(' '); err != nil {
		return nil, err
	}
	name, err := w.atom()
	if err != nil {
		return nil, err
	}
	res := &response{tag: tag}
	if tag == "*" {
		if n, err := strconv.ParseUint(name, 10, 32); err == nil {
			res.data.Num = uint32(n)
			if err := w.expect(' '); err != nil {
				return nil, err
			}
			if name, err = w.atom(); err != nil {
				return nil, err
			}
		}
	}
	res.data.Name = strings.ToUpper(name)
	if tag != "*" || isStatus(res.data.Name) {
		line, err := w.line()
		if err != nil {
			return nil, err
		}
		res.data.Code, res.data.Text = splitCode(line)
		return res, nil
	}
	res.data.Fields, err = w.fields(0)
	return res, err
}

// splitCode splits " [CODE args] text" into its code and text.
func splitCode(line string) (code, text string) {
	line = strings.TrimPrefix(line, " ")
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			return line[1:i], strings.TrimPrefix(line[i+1:], " ")
		}
	}
	return "", line
}

// line reads the rest of the line without its CRLF.
func (w *wireReader) line() (string, error) {
	var b strings.Builder
	for {
		frag, err := w.r.ReadSlice('\n')
		b.Write(frag)
		if b.Len() > maxLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", unexpectedEOF(err)
		}
		return strings.TrimRight(b.String(), "\r\n"), nil
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (w *wireReader) expect(c byte) error {
	b, err := w.r.ReadByte()
	if err != nil {
		return unexpectedEOF(err)
	}
	if b != c {
		return fmt.Errorf("%w: got %q, want %q", ErrProtocol, b, c)
	}
	return nil
}

// atom reads an atom. Inside an atom, brackets enclose anything up to the
// matching ']' (spaces and parentheses included), as in
// BODY[HEADER.FIELDS (SUBJECT)] or a response code.
func (w *wireReader) atom() (string, error) {
	var b strings.Builder
	depth := 0
	for {
		c, err := w.r.ReadByte()
		if err != nil {
			return "", unexpectedEOF(err)
		}
		switch {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case c == '\r' || c == '\n':
			_ = w.r.UnreadByte()
			return b.String(), nil
		case depth == 0 && (c == ' ' || c == '(' || c == ')' || c == '"'):
			_ = w.r.UnreadByte()
			return b.String(), nil
		}
		b.WriteByte(c)
		if b.Len() > maxLine {
			return "", fmt.Errorf("%w: atom longer than %d bytes", ErrProtocol, maxLine)
		}
	}
}

// fields reads space-separated items up to the end of the line (depth 0) or
// the closing parenthesis of a list (depth > 0), which it consumes.
func (w *wireReader) fields(depth int) ([]Field, error) {
	if depth > maxListDepth {
		return nil, fmt.Errorf("%w: lists nested deeper than %d", ErrProtocol, maxListDepth)
	}
	var out []Field
	for {
		c, err := w.r.ReadByte()
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		switch c {
		case ' ':
			continue
		case '\r':
			if err := w.expect('\n'); err != nil {
				return nil, err
			}
			fallthrough
		case '\n':
			if depth > 0 {
				return nil, fmt.Errorf("%w: line ends inside a list", ErrProtocol)
			}
			return out, nil
		case ')':
			if depth == 0 {
				return nil, fmt.Errorf("%w: unbalanced ')'", ErrProtocol)
			}
			return out, nil
		case '(':
			l, err := w.fields(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, Field{Kind: List, List: l})
		case '"':
			s, err := w.quoted()
			if err != nil {
				return nil, err
			}
			out = append(out, Field{Kind: String, Text: s})
		case '{':
			s, err := w.literal()
			if err != nil {
				return nil, err
			}
			out = append(out, Field{Kind: String, Text: s})
		default:
			_ = w.r.UnreadByte()
			a, err := w.atom()
			if err != nil {
				return nil, err
			}
			if strings.EqualFold(a, "NIL") {
				out = append(out, Field{Kind: Nil})
			} else {
				out = append(out, Field{Kind: Atom, Text: a})
			}
		}
	}
}

// quoted reads a quoted string after its opening quote.
func (w *wireReader) quoted() (string, error) {
	var b strings.Builder
	for {
		c, err := w.r.ReadByte()
		if err != nil {
			return "", unexpectedEOF(err)
		}
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if c, err = w.r.ReadByte(); err != nil {
				return "", unexpectedEOF(err)
			}
		case '\r', '\n':
			return "", fmt.Errorf("%w: line ends inside a quoted string", ErrProtocol)
		}
		b.WriteByte(c)
		if b.Len() > maxLine {
			return "", fmt.Errorf("%w: quoted string longer than %d bytes", ErrProtocol, maxLine)
		}
	}
}

// literal reads "N}\r\n" and N bytes after the opening brace. The bytes are
// read as they arrive; the declared size is not allocated up front.
func (w *wireReader) literal() (string, error) {
	spec, err := w.r.ReadString('\n')
	if err != nil {
		return "", unexpectedEOF(err)
	}
	spec = strings.TrimSuffix(strings.TrimSuffix(spec, "\n"), "\r")
	num, ok := strings.CutSuffix(spec, "}")
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 {
		return "", fmt.Errorf("%w: bad literal size {%s", ErrProtocol, spec)
	}
	if n > maxLiteral {
		return "", fmt.Errorf("%w: literal of %d bytes exceeds %d", ErrProtocol, n, maxLiteral)
	}
	var b strings.Builder
	if _, err := io.CopyN(&b, w.r, n); err != nil {
		return "", fmt.Errorf("reading literal of %d bytes: %w", n, unexpectedEOF(err))
	}
	return b.String(), nil
}

// Quote returns s as an IMAP quoted string. It is meant for names, flags
// and short values without CR or LF; send anything else as a Literal.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
