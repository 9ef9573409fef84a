package dlist

import (
	"errors"
	"fmt"
	"io"
)

// Sentinel errors. A *ParseError unwraps to exactly one of ErrSyntax,
// ErrLimit or ErrTruncated; accessors of Value return errors wrapping
// ErrType, ErrRange or ErrMissing; the Writer's refusals wrap ErrInvalid.
var (
	// ErrSyntax reports input that Cyrus 3.6's parser rejects.
	ErrSyntax = errors.New("dlist: syntax error")

	// ErrLimit reports input beyond one of the Reader's Limits (or beyond
	// what Cyrus itself accepts, where Cyrus's reaction would be fatal).
	ErrLimit = errors.New("dlist: limit exceeded")

	// ErrTruncated reports input that ends in the middle of a line or of a
	// literal. errors.Is(ErrTruncated, io.ErrUnexpectedEOF) is true.
	ErrTruncated error = truncatedError{}

	// ErrType reports a Value of the wrong kind for an accessor, or text
	// that does not convert (Cyrus treats both as a missing value).
	ErrType = errors.New("dlist: wrong type")

	// ErrRange reports a number too large for the accessor.
	ErrRange = errors.New("dlist: value out of range")

	// ErrMissing reports an accessor called on a nil *Value, which is what
	// Get returns for an absent key. Errors wrapping ErrMissing also wrap
	// ErrType, because Cyrus does not tell missing from unconvertible.
	ErrMissing = errors.New("dlist: missing value")

	// ErrInvalid reports a Writer asked to print something that would not
	// parse back (an unbalanced list, a value without its key, a flag that
	// is not atom-safe, ...).
	ErrInvalid = errors.New("dlist: invalid output")
)

type truncatedError struct{}

func (truncatedError) Error() string { return "dlist: unexpected end of input" }

// Is makes errors.Is(ErrTruncated, io.ErrUnexpectedEOF) true.
func (truncatedError) Is(target error) bool { return target == io.ErrUnexpectedEOF }

// ParseError is the error for input the Reader, ParseValue or ParseSAX
// rejects. It names the position: Line is the line number as the package
// documentation defines it (0 for ParseSAX, which reads one value from a
// buffer), Offset the byte offset of the failing item from the start of
// the input.
type ParseError struct {
	Line     int    // line number (see above); 0 when not applicable
	Offset   int64  // byte offset of the item that failed
	Expected string // grammar item being read: "atom", "literal size", ...
	Err      error  // the reason; wraps ErrSyntax, ErrLimit or ErrTruncated
}

// Error returns a message such as
// `dlist: line 3, offset 91234: literal size: want digit, got 'x'`.
func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("dlist: line %d, offset %d: %s: %v", e.Line, e.Offset, e.Expected, e.Err)
	}
	return fmt.Sprintf("dlist: offset %d: %s: %v", e.Offset, e.Expected, e.Err)
}

// Unwrap returns Err.
func (e *ParseError) Unwrap() error { return e.Err }

// reason is the Err of a ParseError: a message of its own and a sentinel
// for errors.Is.
type reason struct {
	msg      string
	sentinel error
}

func (r *reason) Error() string { return r.msg }
func (r *reason) Unwrap() error { return r.sentinel }

func newReason(sentinel error, format string, args ...any) error {
	return &reason{msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}

// describe renders one input byte for an error message: 'x' for printable
// ASCII, else its name or hex value.
func describe(c byte) string {
	switch c {
	case ' ':
		return "SP"
	case '\t':
		return "HT"
	case '\r':
		return "CR"
	case '\n':
		return "LF"
	case 0:
		return "NUL"
	}
	if c > ' ' && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return fmt.Sprintf("0x%02x", c)
}

// quoteShort quotes b for an error message, cutting it to a sane length.
func quoteShort(b []byte) string {
	const max = 48
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
