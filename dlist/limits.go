package dlist

// Limits bound what a Reader accepts. Input beyond a limit is an error
// wrapping ErrLimit, reported before any memory is set aside for it: a
// declared size is checked against the limit when it is read, and what is
// held in memory grows only as the bytes arrive.
//
// A zero field means the default (see DefaultLimits).
type Limits struct {
	// MaxLiteral is the largest {n} literal accepted; literals are held in
	// memory. It also bounds the file literals that ReadValue and ReadLine
	// read into Value.Data. Default 64 MiB. (Cyrus 3.6 accepts up to
	// 2147483647 and exits on anything larger.)
	MaxLiteral int64

	// MaxFile is the largest file literal %{partition guid size} accepted.
	// Its bytes are streamed through Reader.Body, never held. Default
	// 4294967295, the largest size Cyrus parses (uint32).
	MaxFile int64

	// MaxAtom is the longest verb, atom or quoted string, in bytes after
	// unescaping. Default 131072, Cyrus's maxword and maxquoted.
	MaxAtom int

	// MaxDepth is the deepest nesting of lists and kvlists; the value of a
	// command line is at depth 1. Default 64. (Cyrus 3.6 has no limit; its
	// own data nests 4 deep.)
	MaxDepth int

	// MaxLine is the most bytes one command line may have, not counting
	// the bodies of literals and file literals. Default 8 GiB: room for
	// an APPLY MAILBOX of some 20 million records, while still ending
	// input that never ends its line. The pull API's memory does not grow
	// with the line; ReadLine's tree does.
	MaxLine int64
}

// Defaults for Limits; see the field comments.
const (
	DefaultMaxLiteral = 64 << 20
	DefaultMaxFile    = 1<<32 - 1
	DefaultMaxAtom    = 131072
	DefaultMaxDepth   = 64
	DefaultMaxLine    = 8 << 30
)

// DefaultLimits returns the limits a new Reader starts with.
func DefaultLimits() Limits {
	return Limits{
		MaxLiteral: DefaultMaxLiteral,
		MaxFile:    DefaultMaxFile,
		MaxAtom:    DefaultMaxAtom,
		MaxDepth:   DefaultMaxDepth,
		MaxLine:    DefaultMaxLine,
	}
}

// withDefaults fills zero (or negative) fields of l with the defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = d.MaxLiteral
	}
	if l.MaxFile <= 0 {
		l.MaxFile = d.MaxFile
	}
	if l.MaxAtom <= 0 {
		l.MaxAtom = d.MaxAtom
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxLine <= 0 {
		l.MaxLine = d.MaxLine
	}
	return l
}
