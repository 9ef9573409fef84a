package dlist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/guid"
)

// The seed corpora under testdata/fuzz/ hold real lines: every dlist
// line of testdata/transcript.txt (FuzzReader), the sample values of
// testdata/sax-values.txt (FuzzSAX). Crashers found are kept there too.

// FuzzReader parses input, prints what it read, and parses that again:
// the trees must be equal, and printing the second tree must give the
// same bytes as the first print (what Cyrus prints parses and prints back
// byte for byte). Read from a Lender, it must give the same tokens.
func FuzzReader(f *testing.F) {
	for _, s := range specLines {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Lent bytes parse as copied ones do (see TestLender).
		lent := tokens(t, NewReader(&scribbleLender{data: in, step: 1 + len(in)%97}), true)
		if want := tokens(t, NewReader(bytes.NewReader(in)), false); lent != want {
			t.Fatalf("lent bytes read as\n%s\ncopied ones as\n%s", lent, want)
		}
		r := NewReader(bytes.NewReader(in))
		r.SetLimits(Limits{MaxLiteral: 1 << 20, MaxDepth: 32})
		for {
			l, err := r.ReadLine()
			if err == io.EOF {
				return
			}
			if err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v is not a *ParseError", err)
				}
				if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrLimit) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("error %v wraps no sentinel", err)
				}
				return
			}
			for _, sync := range []bool{false, true} {
				p1, err := printLine(l, sync)
				if err != nil {
					t.Fatalf("printing %+v: %v", l, err)
				}
				l2, err := NewReader(bytes.NewReader(p1)).ReadLine()
				if err != nil {
					t.Fatalf("reparsing %q: %v", p1, err)
				}
				if l2.Verb != l.Verb || l2.Text != l.Text || !equalTrees(l.Value, l2.Value, true) {
					t.Fatalf("tree changed through %q", p1)
				}
				p2, err := printLine(l2, sync)
				if err != nil || !bytes.Equal(p1, p2) {
					t.Fatalf("printed differently:\n%q\n%q (%v)", p1, p2, err)
				}
			}
		}
	})
}

// FuzzSAX parses input with ParseSAX; what parses prints (as Cyrus's
// dlist_printbuf) to text that both parsers read back as the same tree.
func FuzzSAX(f *testing.F) {
	f.Add([]byte("%(T e N user\x1falice P default A %(alice lrswipkxtecdan) H ())"))
	// Values Marshal prints as literals inside a list (a CR or LF in a
	// quoted string, in a literal): ParseSAX must read them back.
	f.Add([]byte("%(A \"a\r\n\" B (x \"\n\"))"))
	f.Add([]byte("%(A {3}\r\na\r\n B (x {1}\r\n) y))"))
	// A bare value Marshal prints as a literal: the quirk the exception
	// is for.
	f.Add([]byte("\"a\r\n\""))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := ParseSAX(in)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		m1, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		v2, err := ParseValue(m1)
		if err != nil || !equalTrees(v, v2, true) {
			t.Fatalf("stream parser reads %q back differently: %v", m1, err)
		}
		v3, err := ParseSAX(m1)
		if err != nil {
			// Only Cyrus's quirk may refuse Cyrus's own output: a
			// literal whose data ends the buffer (dlist_parsesax wants a
			// byte after it). Marshal's output ends in a literal's data
			// only when the whole value is that one literal.
			if !bareLiteral(m1) {
				t.Fatalf("ParseSAX refuses %q: %v", m1, err)
			}
			return
		}
		if !equalTrees(v, v3, true) {
			t.Fatalf("ParseSAX reads %q back differently", m1)
		}
		if m2, err := Marshal(v3); err != nil || !bytes.Equal(m1, m2) {
			t.Fatalf("printed differently: %q, %q", m1, m2)
		}
	})
}

// bareLiteral reports whether b is one literal and nothing else:
// "{n}" or "{n+}", CRLF, then exactly n bytes.
func bareLiteral(b []byte) bool {
	m := regexp.MustCompile(`^\{([0-9]+)\+?\}\r\n`).FindSubmatch(b)
	if m == nil {
		return false
	}
	n, err := strconv.Atoi(string(m[1]))
	return err == nil && len(b) == len(m[0])+n
}

// FuzzWriterRoundTrip builds a line from the fuzz bytes, prints it with
// WriteLine and with the streaming calls (the bytes must agree), and
// parses it back: the tree must be what was built.
func FuzzWriterRoundTrip(f *testing.F) {
	f.Add([]byte("\x07\x02UID\x02\x05\x01\x00\x06\x03\x05\x05\x04ab\x00c"))
	f.Add([]byte("\x06\x04\x00\x01NIL\x01\x03NIL\x05\x04Seen\x03\x08\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := &builder{data: in}
		name := b.str(true)
		v := b.value(0)
		l := &Line{Verb: "APPLY", Value: v.setKey(name)}
		p1, err := printLine(l, false)
		if err != nil {
			t.Fatalf("WriteLine: %v", err)
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.BeginLine("APPLY", name)
		if name == "" {
			// BeginLine takes "" as no name; write `""` as the line's name.
			w = NewWriter(&buf)
			w.beginLine("APPLY", "", true)
		}
		stream(w, v)
		if err := w.EndLine(); err != nil {
			t.Fatalf("streaming: %v", err)
		}
		w.Flush()
		if !bytes.Equal(buf.Bytes(), p1) {
			t.Fatalf("streaming printed\n%q\nWriteLine printed\n%q", buf.Bytes(), p1)
		}
		l2, err := NewReader(bytes.NewReader(p1)).ReadLine()
		if err != nil {
			t.Fatalf("parsing %q: %v", p1, err)
		}
		if l2.Verb != "APPLY" || !equalTrees(normalize(v), l2.Value, true) {
			t.Fatalf("tree changed through %q", p1)
		}
	})
}

// builder makes a Value from fuzz bytes.
type builder struct {
	data  []byte
	nodes int
}

func (b *builder) byte() byte {
	if len(b.data) == 0 {
		return 0
	}
	c := b.data[0]
	b.data = b.data[1:]
	return c
}

// str takes a length byte and that many bytes; keys lose their NULs.
func (b *builder) str(key bool) string {
	n := int(b.byte())
	if n > len(b.data) {
		n = len(b.data)
	}
	s := string(b.data[:n])
	b.data = b.data[n:]
	if key {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}

func (b *builder) value(depth int) *Value {
	b.nodes++
	op := b.byte() % 9
	if depth >= 8 || b.nodes > 200 {
		op %= 6
	}
	switch op {
	case 0:
		return NewAtom(b.str(false))
	case 1:
		return NewBytes([]byte(b.str(false)))
	case 2, 3:
		var x [8]byte
		copy(x[:], b.data)
		b.data = b.data[min(8, len(b.data)):]
		n := binary.LittleEndian.Uint64(x[:])
		if op == 2 {
			return NewNum(n)
		}
		return NewHex(n)
	case 4:
		return NewNil()
	case 5:
		// A flag as Cyrus keeps them: \ and atom bytes.
		s := []byte(b.str(false))
		for i, c := range s {
			if !bareAtom[c] {
				s[i] = 'x'
			}
		}
		return NewFlag(`\` + string(s))
	case 6:
		var g guid.GUID
		copy(g[:], b.data)
		return NewFile(b.str(true), g, []byte(b.str(false)))
	case 7:
		l := NewList()
		for n := b.byte() % 5; n > 0; n-- {
			l.Append(b.value(depth + 1))
		}
		return l
	default:
		kv := NewKVList()
		for n := b.byte() % 5; n > 0; n-- {
			key := b.str(true)
			kv.Add(key, b.value(depth+1))
		}
		return kv
	}
}

// normalize returns the tree the parser reads back for v: no Keys on list
// items.
func normalize(v *Value) *Value {
	c := *v
	c.Children = nil
	for _, ch := range v.Children {
		n := normalize(ch)
		if v.Kind == List {
			n.Key = ""
		}
		c.Children = append(c.Children, n)
	}
	return &c
}

// stream writes v with the streaming calls.
func stream(w *Writer, v *Value) {
	switch v.Kind {
	case Atom:
		w.Atom(string(v.Data))
	case Literal:
		w.Bytes(v.Data)
	case Nil:
		w.Nil()
	case Flag:
		w.Flag(string(v.Data))
	case File:
		w.File(v.File.Partition, v.File.GUID, v.File.Size, bytes.NewReader(v.Data))
	case List, KVList:
		if v.Kind == List {
			w.BeginList()
		} else {
			w.BeginKVList()
		}
		for _, c := range v.Children {
			if v.Kind == KVList {
				w.Key(c.Key)
			}
			stream(w, c)
		}
		w.EndList()
	}
}
