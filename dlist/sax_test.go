package dlist

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestSAXSamples parses the dlist values of a real Cyrus 3.6 lab
// (mailboxes.db values, cyrus.header dlist lines, a quota file) and prints
// them back: the bytes must be identical.
func TestSAXSamples(t *testing.T) {
	f, err := os.Open("testdata/sax-values.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		n++
		v, err := ParseSAX(line)
		if err != nil {
			t.Errorf("line %d: %v", n, err)
			continue
		}
		got, err := Marshal(v)
		if err != nil || string(got) != string(line) {
			t.Errorf("line %d: %v\n got %q\nwant %q", n, err, got, line)
		}
		// The stream parser reads the same tree.
		v2, err := ParseValue(line)
		if err != nil || !equalTrees(v, v2, false) {
			t.Errorf("line %d: ParseValue: %v", n, err)
		}
	}
	if n < 40 {
		t.Errorf("only %d sample values", n)
	}
	// Spot check: the hierarchy separator 0x1f prints bare; a name with a
	// space is quoted.
	v, err := ParseSAX([]byte("%(T e N \"user\x1falice\x1fOld Stuff\" P default A %(alice lrswipkxtecdan) H ())"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("N").String() != "user\x1falice\x1fOld Stuff" || v.Get("A").Get("alice").String() != "lrswipkxtecdan" ||
		v.Get("H").Kind != List || len(v.Get("H").Children) != 0 {
		t.Errorf("tree = %+v", v)
	}
}

// TestSAXQuirks checks dlist_parsesax's behaviour where it differs from the
// stream parser. Trees are shown in the stream parser's canonical print.
func TestSAXQuirks(t *testing.T) {
	tests := []struct {
		in, out string
	}{
		{"abc", "abc"},
		{"NIL", "NIL"},
		{"\"NIL\"", "\"NIL\""},
		{"(a b)", "(a b)"},
		{"(a))", ""}, // bytes after the value
		{"(a )", "(a)"},
		{"( )", "(\"\")"},
		{"(a  b)", "(a \"\" b)"},
		{"()", "()"},
		{"%()", "%()"},
		{"(x(y) z)", ""}, // the atom is "x(y"; its ")" closes the list
		{"(a\"b c)", "({3+}\r\na\"b c)"},
		{"%(A 1 B (x y))", "%(A 1 B (x y))"},
		{"%(A  1)", ""},
		{"%(NIL 1)", ""},
		{"%(\"NIL\" 1)", "%(\"NIL\" 1)"},
		{"(\\Seen)", "({5+}\r\n\\Seen)"},
		{"(\"a\\\"b\\\r\nc\")", "({6+}\r\na\"b\r\nc)"},
		{"({3+}\r\nabc )", "(abc)"},
		{"({3}\r\nabc)", "(abc)"},
		{"({}\r\n )", "(\"\")"},
		{"{3+}\r\nabc", ""}, // data must not end the buffer
		{"%{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 1}\r\nx", ""},
		{"%x", ""},
		{"(a", ""},
		{"", ""},
		{" a", ""}, // an empty atom, then bytes after the value
		{"(a)\n", ""},
		{"\"abc", ""},
	}
	for _, tt := range tests {
		v, err := ParseSAX([]byte(tt.in))
		if tt.out == "" {
			if err == nil {
				got, _ := Marshal(v)
				t.Errorf("ParseSAX(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSAX(%q): %v", tt.in, err)
			continue
		}
		got, err := Marshal(v)
		if err != nil || string(got) != tt.out {
			t.Errorf("ParseSAX(%q) printed %q, %v; want %q", tt.in, got, err, tt.out)
		}
	}
}

func TestSAXErrors(t *testing.T) {
	tests := []struct {
		in, err string
		is      error
	}{
		{"(a))", `dlist: offset 3: end of value: 1 bytes after the value`, ErrSyntax},
		{"%(A  1)", `dlist: offset 6: value: want SP after key, got ')'`, ErrSyntax},
		{"%(NIL 1)", `dlist: offset 2: key: NIL is not a key`, ErrSyntax},
		{"%x", `dlist: offset 0: value: '%' followed by 'x', want '('`, ErrSyntax},
		{"(a", `dlist: offset 2: list: unexpected end of input`, ErrTruncated},
		{"", `dlist: offset 0: value: unexpected end of input`, ErrTruncated},
		{"\"abc", `dlist: offset 0: value: unterminated quoted string`, ErrTruncated},
		{"{3+}\r\nabc", `dlist: offset 0: value: bad literal`, ErrSyntax},
		{"(a\x00b)", `dlist: offset 1: value: NUL byte at offset 2`, ErrSyntax},
		{strings.Repeat("(", 65), `dlist: offset 64: list: nesting deeper than 64`, ErrLimit},
	}
	for _, tt := range tests {
		_, err := ParseSAX([]byte(tt.in))
		if err == nil || err.Error() != tt.err || !errors.Is(err, tt.is) {
			t.Errorf("ParseSAX(%q) = %v, want %s (%v)", tt.in, err, tt.err, tt.is)
		}
	}
}

// TestSAXValuesIndependent checks that the values of one parse, carved
// out of shared allocations, do not share bytes: appending to one atom's
// Data or to one list's Children leaves the others and the input as
// they were.
func TestSAXValuesIndependent(t *testing.T) {
	in := []byte("%(A a B (b c) C d)")
	orig := string(in)
	root, err := ParseSAX(in)
	if err != nil {
		t.Fatal(err)
	}
	a, list, d := root.Children[0], root.Children[1], root.Children[2]
	a.Data = append(a.Data, "xyz"...)
	list.Children = append(list.Children, NewAtom("e"))
	if got := string(list.Children[0].Data) + string(list.Children[1].Data) + string(d.Data); got != "bcd" {
		t.Errorf("after appending to the first atom: b, c, d = %q, want \"bcd\"", got)
	}
	if string(a.Data) != "axyz" || d.Key != "C" || len(list.Children) != 3 {
		t.Errorf("a = %q, d's key %q, list of %d", a.Data, d.Key, len(list.Children))
	}
	if string(in) != orig {
		t.Errorf("input changed to %q", in)
	}
}

// TestWithSAX parses the lab's samples, and the error cases, with
// WithSAX, big and small values in turn so that each parse reuses the
// memory of another: each must print as ParseSAX's tree does, and fail
// as ParseSAX fails.
func TestWithSAX(t *testing.T) {
	b, err := os.ReadFile("testdata/sax-values.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	lines = append(lines, "%(A a B (b c) C d)", "(a))", "%(A  1)", "\"abc", "%(T e I x)")
	for round := 0; round < 2; round++ {
		for i := range lines {
			in := lines[i]
			if round == 1 {
				in = lines[len(lines)-1-i]
			}
			want, werr := ParseSAX([]byte(in))
			var got []byte
			called := false
			gerr := WithSAX([]byte(in), func(v *Value) error {
				called = true
				var err error
				got, err = Marshal(v)
				return err
			})
			if werr != nil {
				if called || gerr == nil || gerr.Error() != werr.Error() {
					t.Errorf("WithSAX(%q) = %v (fn called: %v), want %v", in, gerr, called, werr)
				}
				continue
			}
			wantb, _ := Marshal(want)
			if gerr != nil || string(got) != string(wantb) {
				t.Errorf("WithSAX(%q) printed %q, %v; want %q", in, got, gerr, wantb)
			}
		}
	}
	sentinel := errors.New("from fn")
	if err := WithSAX([]byte("(a b)"), func(*Value) error { return sentinel }); err != sentinel {
		t.Errorf("error from fn = %v, want it as is", err)
	}
}

// A pooled parser keeps nothing of a parse but empty values: after a
// large value (a shared folder's ACL of thousands of entries), no kept
// value points to that parse's values or atom bytes, so they can be
// collected while the parser stays in the pool.
func TestSAXRecycleKeepsNothing(t *testing.T) {
	var b strings.Builder
	b.WriteString("%(A %(")
	for i := range 5000 {
		fmt.Fprintf(&b, "user%d lrswipkxtecdan ", i)
	}
	b.WriteString("x y) T r)")
	s := &saxParser{pooled: true}
	for _, in := range []string{"%(T r I abc)", b.String(), "%(T r)"} {
		s.b, s.p = []byte(in), 0
		if _, err := s.parse(); err != nil {
			t.Fatalf("%.40s: %v", in, err)
		}
		s.recycle()
		for i, v := range s.first[:cap(s.first)] {
			if v.Data != nil || v.Key != "" || len(v.Children) != 0 || cap(v.Children) > maxPooledSAXChildren {
				t.Fatalf("after %.40s: kept value %d holds data %q, key %q, %d children (room for %d)",
					in, i, v.Data, v.Key, len(v.Children), cap(v.Children))
			}
			for _, c := range v.Children[:cap(v.Children)] {
				if c != nil {
					t.Fatalf("after %.40s: kept value %d still points to a value of the parse", in, i)
				}
			}
		}
		if cap(s.atoms) > maxPooledSAXAtoms {
			t.Fatalf("after %.40s: %d atom bytes kept", in, cap(s.atoms))
		}
	}
}
