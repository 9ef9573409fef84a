package dlist

import (
	"bytes"
	"sync"
)

// ParseSAX parses one value from b the way Cyrus 3.6's dlist_parsesax
// does. Cyrus uses that stricter parser, not the stream parser, for the
// dlist in cyrus.header and for mailboxes.db values, so a reader of those
// files should use ParseSAX:
//
//   - Exactly one SP separates items, and a key from its value; no other
//     whitespace is skipped anywhere.
//   - An atom is everything up to the next SP or the end of b, less any
//     trailing ')' bytes (they close lists): atoms cannot end in ')', and
//     '(' and '"' inside an atom are ordinary bytes. An empty atom is
//     possible ("( )" is a list of one empty string).
//   - A bare NIL is the Nil value; as a key it is an error.
//   - Quoted strings take '\' as an escape for any byte; CR and LF are
//     ordinary bytes.
//   - Literals are {n} or {n+}, CRLF, n bytes, and at least one more byte
//     must follow the data in b (a Cyrus quirk). An empty digit string
//     means 0.
//   - '%(' opens a KVList and '(' a List; '%' before anything else is an
//     error. There are no file literals and no Flag kind: \Seen is an Atom.
//   - After the value, b must be at its end.
//
// Strings holding NUL are refused (Cyrus would cut them short at it),
// except in a literal value. Nesting is limited to DefaultMaxDepth.
// Errors are *ParseError with Line 0 and Offset into b.
func ParseSAX(b []byte) (*Value, error) {
	s := saxParser{b: b}
	return s.parse()
}

// WithSAX parses b as ParseSAX does and calls fn with the value, whose
// memory (values, children, atom bytes) is reused by a later parse once
// fn returns: fn must keep no part of the tree, and copy out what it
// keeps (Atom, Num64 and the other accessors copy or convert; a Key may
// be kept, being a string of its own). A reader that turns each
// mailboxes.db entry and cyrus.header line into a struct of its own, as
// a dump does for every mailbox, so allocates no tree per parse. An
// error from the parse is returned without calling fn; one from fn is
// returned as is.
func WithSAX(b []byte, fn func(*Value) error) error {
	s := saxPool.Get().(*saxParser)
	s.b, s.p = b, 0
	root, err := s.parse()
	if err == nil {
		err = fn(root)
	}
	s.recycle()
	saxPool.Put(s)
	return err
}

// saxPool holds the parsers of WithSAX, with the memory of their last
// parse.
var saxPool = sync.Pool{New: func() any { return &saxParser{pooled: true} }}

// maxPooledSAX bounds the values, children per value and atom bytes a
// pooled parser keeps between parses: a mailboxes.db entry with a long
// ACL is larger, and is parsed in fresh memory.
const (
	maxPooledSAXValues   = 256
	maxPooledSAXChildren = 64
	maxPooledSAXAtoms    = 16 << 10
)

// recycle readies a pooled parser for the next parse: its first chunk
// of values is reused (grown to what this parse needed), and so are its
// atom bytes; nothing refers to b any more. The kept values are emptied
// here, not when they are next used: a kept value that still pointed to
// this parse's other values or atom bytes (a Children array the garbage
// collector scans to its capacity, a Data slice) would keep all of them
// alive for as long as the parser stays in the pool, the largest value
// ever parsed included.
func (s *saxParser) recycle() {
	s.b = nil
	kept := s.first[:min(s.used, cap(s.first))]
	for i := range kept {
		c := kept[i].Children
		if cap(c) > maxPooledSAXChildren {
			c = nil
		} else {
			clear(c[:cap(c)])
		}
		kept[i] = Value{Children: c[:0]}
	}
	if s.used > cap(s.first) && s.used <= maxPooledSAXValues {
		s.first = make([]Value, 0, s.used)
	}
	s.vals, s.used = s.first[:0], 0
	if cap(s.atoms) > maxPooledSAXAtoms {
		s.atoms = nil
	}
	s.atoms = s.atoms[:0]
}

type saxParser struct {
	b []byte
	p int
	// The values and atom bytes of a parse are carved out of a few
	// larger allocations instead of one each: mailboxes.db entries and
	// cyrus.header lines are parsed once per mailbox, and their dozen
	// small values were most of a dump's allocations per mailbox.
	vals  []Value // appended to up to its capacity, then a new one
	atoms []byte  // len(b) bytes: atoms are disjoint pieces of b

	// A pooled parser (WithSAX) keeps its first chunk of values, first,
	// between parses, each value with its Children's array, and counts
	// the values a parse takes in used.
	pooled bool
	first  []Value
	used   int
}

// saxChunk bounds the values allocated at once.
const saxChunk = 32

// value returns a new zero Value from s.vals. The first allocation is
// sized for the values b likely holds, the later ones saxChunk: a kvlist
// takes two SPs per value (after the key and after the value), and the
// lists of the files parsed here are short.
func (s *saxParser) value() *Value {
	s.used++
	if len(s.vals) == cap(s.vals) {
		n := saxChunk
		if s.vals == nil {
			n = min(n, bytes.Count(s.b, []byte{' '})/2+3)
		}
		s.vals = make([]Value, 0, n)
		if s.pooled && s.first == nil {
			s.first = s.vals
		}
	}
	s.vals = s.vals[:len(s.vals)+1]
	v := &s.vals[len(s.vals)-1]
	// A reused value keeps the array of its children (empty), so that a
	// pooled parser's lists grow without allocating.
	*v = Value{Children: v.Children[:0]}
	return v
}

// atom returns a copy of the atom a, a piece of s.b, from s.atoms.
func (s *saxParser) atom(a []byte) []byte {
	if s.atoms == nil || cap(s.atoms) < len(s.b) && len(s.atoms) == 0 {
		s.atoms = make([]byte, 0, len(s.b))
	}
	if cap(s.atoms)-len(s.atoms) < len(a) {
		return append([]byte{}, a...) // not reached: atoms do not overlap
	}
	n := len(s.atoms)
	s.atoms = append(s.atoms, a...)
	return s.atoms[n:len(s.atoms):len(s.atoms)]
}

func (s *saxParser) err(sentinel error, off int, what, format string, args ...any) error {
	return &ParseError{Offset: int64(off), Expected: what, Err: newReason(sentinel, format, args...)}
}

func (s *saxParser) short(what string) error {
	return s.err(ErrTruncated, s.p, what, "unexpected end of input")
}

func (s *saxParser) parse() (*Value, error) {
	var root *Value
	var stack []*Value
	for {
		// At the start of an element (or of the root value).
		var parent *Value
		if n := len(stack); n > 0 {
			parent = stack[n-1]
		}
		var key []byte
		if parent != nil && parent.Kind == KVList {
			koff := s.p
			k, kind, err := s.item("key")
			if err != nil {
				return nil, err
			}
			if kind == Nil {
				return nil, s.err(ErrSyntax, koff, "key", "NIL is not a key")
			}
			if indexNUL(k) >= 0 {
				return nil, s.err(ErrSyntax, koff, "key", "contains NUL")
			}
			key = k
			if s.p >= len(s.b) {
				return nil, s.short("value")
			}
			if s.b[s.p] != ' ' {
				return nil, s.err(ErrSyntax, s.p, "value", "want SP after key, got %s", describe(s.b[s.p]))
			}
			s.p++
		}
		if s.p >= len(s.b) {
			return nil, s.short("value")
		}
		v := s.value()
		v.Offset, v.Key = int64(s.p), string(key)
		switch s.b[s.p] {
		case '(':
			v.Kind = List
			s.p++
		case '%':
			s.p++
			if s.p >= len(s.b) {
				return nil, s.short("value")
			}
			if s.b[s.p] != '(' {
				return nil, s.err(ErrSyntax, s.p-1, "value", "'%%' followed by %s, want '('", describe(s.b[s.p]))
			}
			v.Kind = KVList
			s.p++
		default:
			data, kind, err := s.item("value")
			if err != nil {
				return nil, err
			}
			v.Kind, v.Data = kind, data
		}
		if parent == nil {
			root = v
		} else {
			parent.Children = append(parent.Children, v)
		}
		container := v.Kind == List || v.Kind == KVList
		if container {
			if len(stack) >= DefaultMaxDepth {
				return nil, s.err(ErrLimit, int(v.Offset), v.Kind.String(), "nesting deeper than %d", DefaultMaxDepth)
			}
			stack = append(stack, v)
		}
		// Close what ends here; stop at the start of the next element.
		for len(stack) > 0 {
			if !container {
				// After an element: ')' closes, SP separates.
				if s.p >= len(s.b) {
					return nil, s.short("list")
				}
				if s.b[s.p] == ' ' {
					s.p++
				} else if s.b[s.p] != ')' {
					return nil, s.err(ErrSyntax, s.p, "list", "want SP or ')', got %s", describe(s.b[s.p]))
				}
			}
			// At the start of an element: ')' closes (so "(a )" is
			// the list "a", as in Cyrus).
			if s.p >= len(s.b) {
				return nil, s.short("list")
			}
			if s.b[s.p] != ')' {
				break
			}
			s.p++
			stack = stack[:len(stack)-1]
			container = false
		}
		if len(stack) == 0 {
			break
		}
	}
	if s.p < len(s.b) {
		return nil, s.err(ErrSyntax, s.p, "end of value", "%d bytes after the value", len(s.b)-s.p)
	}
	return root, nil
}

// item reads a quoted string, a literal or an atom (_parseitem).
func (s *saxParser) item(what string) ([]byte, Kind, error) {
	start := s.p
	switch s.b[s.p] {
	case '"':
		var out []byte
		s.p++
		for s.p < len(s.b) {
			c := s.b[s.p]
			if c == '"' {
				s.p++
				if out == nil {
					out = []byte{}
				}
				return out, Atom, nil
			}
			if c == '\\' {
				s.p++
				if s.p == len(s.b) {
					break
				}
				c = s.b[s.p]
			}
			if c == 0 {
				return nil, 0, s.err(ErrSyntax, start, what, "NUL byte at offset %d", s.p)
			}
			out = append(out, c)
			s.p++
		}
		return nil, 0, s.err(ErrTruncated, start, what, "unterminated quoted string")
	case '{':
		s.p++
		n := 0
		for s.p < len(s.b) && s.b[s.p] >= '0' && s.b[s.p] <= '9' {
			if n > len(s.b) {
				return nil, 0, s.err(ErrSyntax, start, what, "literal longer than the input")
			}
			n = n*10 + int(s.b[s.p]-'0')
			s.p++
		}
		if s.p+1 < len(s.b) && s.b[s.p] == '+' {
			s.p++
		}
		// Cyrus wants a byte after the data: p + 3 + len < end.
		if s.p >= len(s.b) || s.b[s.p] != '}' || s.p+3+n >= len(s.b) ||
			s.b[s.p+1] != '\r' || s.b[s.p+2] != '\n' {
			return nil, 0, s.err(ErrSyntax, start, what, "bad literal")
		}
		s.p += 3
		data := append([]byte{}, s.b[s.p:s.p+n]...)
		s.p += n
		return data, Literal, nil
	}
	end := len(s.b)
	if i := bytes.IndexByte(s.b[s.p:], ' '); i >= 0 {
		end = s.p + i
	}
	for end > s.p && s.b[end-1] == ')' {
		end--
	}
	atom := s.b[s.p:end]
	if i := indexNUL(atom); i >= 0 {
		return nil, 0, s.err(ErrSyntax, start, what, "NUL byte at offset %d", s.p+i)
	}
	s.p = end
	if string(atom) == "NIL" {
		return nil, Nil, nil
	}
	return s.atom(atom), Atom, nil
}
