package dlist

import (
	"errors"
	"io"
)

// Line is one command line as a tree: the verb, and the value with its
// name in Value.Key. "APPLY MAILBOX %(...)" is Verb "APPLY" and a KVList
// Value with Key "MAILBOX"; "GET USER erin" is Verb "GET" and an Atom
// Value "erin" with Key "USER"; "* LSUB (a b)" is Verb "*" and a List
// with Key "LSUB". A verb-only line ("EXIT") has a nil Value. A status
// line (verb OK, NO or BAD, as a sync server answers) has a nil Value and
// the rest of the line in Text.
type Line struct {
	Verb  string
	Value *Value
	Text  string // status lines only: "success" in "OK success"
}

// errMidLine is returned by ReadLine when called inside a line.
var errMidLine = errors.New("dlist: ReadLine called in the middle of a line")

// ReadLine reads a whole command line as a tree. It returns io.EOF only at
// a clean end of input. File literals' bytes are read into Value.Data,
// each bounded by MaxLiteral. It must be called at the start of a line.
func (r *Reader) ReadLine() (*Line, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.state != stLineStart || r.left > 0 {
		return nil, errMidLine
	}
	t, err := r.Next()
	if err != nil {
		return nil, err
	}
	l := &Line{Verb: string(t.Bytes)}
	if t, err = r.Next(); err != nil {
		return nil, err
	}
	switch t.Kind {
	case EOL:
		return l, nil
	case Text:
		l.Text = string(t.Bytes)
	default:
		if l.Value, err = r.build(t); err != nil {
			return nil, err
		}
	}
	if t, err = r.Next(); err != nil {
		return nil, err
	}
	if t.Kind != EOL { // cannot happen: the value ends the line
		return nil, r.fail(r.syntaxErr(t.Offset, t.Line, "end of line", "unexpected %s", t.Kind))
	}
	return l, nil
}

// ReadValue reads the next whole item as a tree and returns it:
//   - at a value, that value;
//   - at a KVList key or the line's name, the key and its value, as a
//     Value whose Key is set;
//   - at a verb, the verb as an Atom; at a status line's text, a Text;
//   - at the ')' that closes a list, a Value of Kind End; at the end of a
//     line, a Value of Kind EOL. Both are consumed.
//
// So the items of a list are read with
//
//	for {
//		v, err := r.ReadValue()
//		if err != nil { ... }
//		if v.Kind == dlist.End { break }
//		...
//	}
//
// A File value's bytes are read into Data, bounded by MaxLiteral. At a
// clean end of input, between lines, ReadValue returns io.EOF.
func (r *Reader) ReadValue() (*Value, error) {
	t, err := r.Next()
	if err != nil {
		return nil, err
	}
	switch t.Kind {
	case End, EOL:
		return &Value{Kind: t.Kind, Offset: t.Offset}, nil
	}
	return r.build(t)
}

// fail makes err the Reader's sticky error and returns it.
func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// build builds the item that starts with t. It is iterative: depth is
// bounded by MaxDepth, and the containers being filled are on a stack.
// Children are gathered on a shared scratch stack and copied into a slice
// of the exact size when their container closes.
func (r *Reader) build(t Token) (*Value, error) {
	a := &r.arena
	a.start()
	defer a.finish()
	var key string
	if t.IsKey {
		key = r.intern(t.Bytes)
		var err error
		if t, err = r.Next(); err != nil {
			return nil, err
		}
	}
	root, err := r.leaf(&t)
	if err != nil {
		return nil, err
	}
	root.Key = key
	if root.Kind != List && root.Kind != KVList {
		return root, nil
	}
	open := append(r.openVals[:0], openFrame{root, len(r.kids)})
	defer func() {
		clear(open[:cap(open)]) // at most MaxDepth frames
		r.openVals = open[:0]
		clear(r.kids) // left over by an error
		r.kids = r.kids[:0]
		if cap(r.kids) > 1<<16 {
			r.kids = nil
		}
	}()
	for len(open) > 0 {
		t = Token{}
		if err = r.nextInto(&t); err != nil {
			return nil, err
		}
		key = ""
		switch {
		case t.Kind == End:
			f := open[len(open)-1]
			f.v.Children = a.children(r.kids[f.start:])
			clear(r.kids[f.start:])
			r.kids = r.kids[:f.start]
			open = open[:len(open)-1]
			continue
		case t.IsKey:
			key = r.intern(t.Bytes)
			t = Token{}
			if err = r.nextInto(&t); err != nil {
				return nil, err
			}
		}
		v, err := r.leaf(&t)
		if err != nil {
			return nil, err
		}
		v.Key = key
		r.kids = append(r.kids, v)
		if v.Kind == List || v.Kind == KVList {
			open = append(open, openFrame{v, len(r.kids)})
		}
	}
	return root, nil
}

type openFrame struct {
	v     *Value
	start int // index in Reader.kids of the container's first child
}

// intern returns b as a string, sharing the memory of short keys seen
// before: a stream repeats the same few dozen keys millions of times.
func (r *Reader) intern(b []byte) string {
	if len(b) > 32 {
		return string(b)
	}
	if s, ok := r.keys[string(b)]; ok {
		return s
	}
	s := string(b)
	if r.keys == nil {
		r.keys = make(map[string]string)
	}
	if len(r.keys) < 1024 {
		r.keys[s] = s
	}
	return s
}

// leaf makes the Value for a token other than a key or End; for a File
// it reads the body.
func (r *Reader) leaf(t *Token) (*Value, error) {
	a := &r.arena
	v := a.value()
	v.Kind, v.Offset = t.Kind, t.Offset
	switch t.Kind {
	case Atom, Flag, Literal, Text:
		v.Data = a.bytes(t.Bytes)
	case File:
		v.File = t.File
		if t.File.Size > r.lim.MaxLiteral {
			return nil, r.fail(r.limitErr(t.Offset, t.Line, "file literal", "size %d exceeds limit %d for a value held in memory", t.File.Size, r.lim.MaxLiteral))
		}
		data, err := readBounded(r.Body(), t.File.Size)
		if err != nil {
			return nil, err
		}
		v.Data = data
	}
	return v, nil
}

// readBounded reads exactly n bytes from rd into memory that grows as they
// arrive.
func readBounded(rd io.Reader, n int64) ([]byte, error) {
	initial := n
	if initial > 64<<10 {
		initial = 64 << 10
	}
	b := make([]byte, 0, initial)
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		k := cap(b) - len(b)
		if int64(k) > n-int64(len(b)) {
			k = int(n - int64(len(b)))
		}
		m, err := rd.Read(b[len(b) : len(b)+k])
		b = b[:len(b)+m]
		if err != nil && int64(len(b)) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}

// arena hands out Values, byte slices and child slices from blocks, so a
// tree costs a few allocations instead of two or three per node. Blocks
// are never shared between two trees (a block shared by a live tree and
// a dead one would keep the dead one alive, and so on down a chain); their
// sizes follow the previous trees', so a stream of similar records costs
// about three allocations per record.
type arena struct {
	vals       []Value
	data       []byte
	ptrs       []*Value
	nv, nd, np int // used by the current tree
	hv, hd, hp int // used by the previous tree
}

// start begins a tree.
func (a *arena) start() {
	a.vals, a.data, a.ptrs = nil, nil, nil
	a.nv, a.nd, a.np = 0, 0, 0
}

// finish ends a tree, remembering its sizes: the larger of this tree's
// and a decaying maximum of the previous ones, so that records of varying
// size still fit one block.
func (a *arena) finish() {
	a.hv = max(a.nv, a.hv-a.hv/32)
	a.hd = max(a.nd, a.hd-a.hd/32)
	a.hp = max(a.np, a.hp-a.hp/32)
	a.vals, a.data, a.ptrs = nil, nil, nil
}

// blockSize is the size of a new block: what the previous trees used
// (and an eighth more) beyond what this one has used so far, within bounds.
func blockSize(hint, used, min, max int) int {
	n := hint + hint/8 + 1 - used
	if n < min {
		n = min
	}
	if n > max {
		n = max
	}
	return n
}

func (a *arena) value() *Value {
	if len(a.vals) == 0 {
		a.vals = make([]Value, blockSize(a.hv, a.nv, 1, 1024))
	}
	a.nv++
	v := &a.vals[0]
	a.vals = a.vals[1:]
	return v
}

func (a *arena) bytes(b []byte) []byte {
	if len(b) > 1024 {
		return append([]byte(nil), b...)
	}
	if cap(a.data)-len(a.data) < len(b) {
		a.data = make([]byte, 0, blockSize(a.hd, a.nd, len(b), 64<<10))
	}
	a.nd += len(b)
	n := len(a.data)
	a.data = append(a.data, b...)
	return a.data[n:len(a.data):len(a.data)]
}

func (a *arena) children(kids []*Value) []*Value {
	if len(kids) == 0 {
		return nil
	}
	if len(kids) > 1024 {
		return append([]*Value(nil), kids...)
	}
	if cap(a.ptrs)-len(a.ptrs) < len(kids) {
		a.ptrs = make([]*Value, 0, blockSize(a.hp, a.np, len(kids), 8192))
	}
	a.np += len(kids)
	n := len(a.ptrs)
	a.ptrs = append(a.ptrs, kids...)
	return a.ptrs[n:len(a.ptrs):len(a.ptrs)]
}

// ParseValue parses b as exactly one value with the stream parser, as
// Cyrus's dlist_parsemap does for values kept in files (quota roots, for
// one): no leading whitespace, and nothing may follow the value, not even
// a line break. File literals' bytes are read into Data. Limits are the
// defaults.
func ParseValue(b []byte) (*Value, error) {
	r := NewReader(&sliceReader{b: b})
	r.state = stTopValue
	if len(b) > 0 && isSpace[b[0]] {
		return nil, r.syntaxErr(0, 1, "value", "want a value, got %s", describe(b[0]))
	}
	v, err := r.ReadValue()
	if err != nil {
		return nil, err
	}
	if _, err := r.peek(); err != io.EOF {
		if err != nil {
			return nil, r.readErr(r.Offset(), r.line, "end of value", err)
		}
		return nil, r.syntaxErr(r.Offset(), r.line, "end of value", "%d bytes after the value", int64(len(b))-r.Offset())
	}
	return v, nil
}
