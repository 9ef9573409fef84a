package dlist

import (
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// hostileTests are inputs the Reader must refuse, with the exact error.
var hostileTests = []struct {
	name string
	in   string
	lim  Limits
	err  string
	is   error
}{
	{"truncated literal", "GET X {10+}\r\nabc", Limits{},
		`dlist: line 1, offset 6: literal: unexpected end of input after 3 of 10 bytes`, ErrTruncated},
	{"literal size over limit", "GET X {99999999999}\r\n", Limits{},
		`dlist: line 1, offset 6: literal size: 99999999999 exceeds limit 67108864`, ErrLimit},
	{"literal size overflows", "GET X {999999999999999999999999999999}\r\n", Limits{},
		`dlist: line 1, offset 6: literal size: 999999999999999999999999... exceeds limit 67108864`, ErrLimit},
	{"negative literal size", "GET X {-1}\r\n", Limits{},
		`dlist: line 1, offset 6: literal size: want digit, got '-'`, ErrSyntax},
	{"literal size not a number", "GET X {x1}\r\n", Limits{},
		`dlist: line 1, offset 6: literal size: want digit, got 'x'`, ErrSyntax},
	{"literal without CR", "GET X {1}\nx\r\n", Limits{},
		`dlist: line 1, offset 6: literal: want CRLF after '}', got LF`, ErrSyntax},
	{"literal key with NUL", "GET X %({2+}\r\na\x00 v)\r\n", Limits{},
		`dlist: line 1, offset 8: key: literal contains NUL`, ErrSyntax},
	{"nesting 100000 deep", "GET X " + strings.Repeat("(", 100000), Limits{},
		`dlist: line 1, offset 70: list: nesting deeper than 64`, ErrLimit},
	{"kvlist nesting", "GET X " + strings.Repeat("%(A ", 5) + "1)))))\r\n", Limits{MaxDepth: 4},
		`dlist: line 1, offset 22: kvlist: nesting deeper than 4`, ErrLimit},
	{"unterminated quoted string", "GET X \"abc", Limits{},
		`dlist: line 1, offset 6: quoted string: unexpected end of input at offset 10`, ErrTruncated},
	{"quoted string with CR", "GET X \"abc\r\n\"\r\n", Limits{},
		`dlist: line 1, offset 6: quoted string: unescaped CR at offset 10`, ErrSyntax},
	{"quoted string with LF", "GET X \"a\nb\"\r\n", Limits{},
		`dlist: line 1, offset 6: quoted string: unescaped LF at offset 8`, ErrSyntax},
	{"NUL in an atom", "GET X ab\x00c\r\n", Limits{},
		`dlist: line 1, offset 6: atom: NUL byte at offset 8`, ErrSyntax},
	{"NUL in a quoted string", "GET X \"ab\x00c\"\r\n", Limits{},
		`dlist: line 1, offset 6: quoted string: NUL byte at offset 9`, ErrSyntax},
	{"NUL escaped in a quoted string", "GET X \"ab\\\x00c\"\r\n", Limits{},
		`dlist: line 1, offset 6: quoted string: NUL byte at offset 10`, ErrSyntax},
	{"NUL in a verb", "G\x00T X y\r\n", Limits{},
		`dlist: line 1, offset 0: verb: NUL byte at offset 1`, ErrSyntax},
	{"percent then other", "GET X %x\r\n", Limits{},
		`dlist: line 1, offset 6: value: '%' followed by 'x', want '(' or '{'`, ErrSyntax},
	{"percent then space", "GET X % (a)\r\n", Limits{},
		`dlist: line 1, offset 6: value: '%' followed by SP, want '(' or '{'`, ErrSyntax},
	{"file guid not hex", "GET X %{default 0a0a9f2a6772942557ab5355d76af442f8f65e0x 1}\r\nx\r\n", Limits{},
		`dlist: line 1, offset 16: file literal guid: "0a0a9f2a6772942557ab5355d76af442f8f65e0x": not 40 hex digits`, ErrSyntax},
	{"file guid short", "GET X %{default abc 1}\r\nx\r\n", Limits{},
		`dlist: line 1, offset 16: file literal guid: "abc": not 40 hex digits`, ErrSyntax},
	{"file size over MaxFile", "GET X %{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 4294967296}\r\n", Limits{},
		`dlist: line 1, offset 57: file literal size: 4294967296 exceeds limit 4294967295`, ErrLimit},
	{"file size over a lower MaxFile", "GET X %{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 1001}\r\n", Limits{MaxFile: 1000},
		`dlist: line 1, offset 57: file literal size: 1001 exceeds limit 1000`, ErrLimit},
	{"file header with two spaces", "GET X %{default  0a0a9f2a6772942557ab5355d76af442f8f65e01 1}\r\nx\r\n", Limits{},
		`dlist: line 1, offset 16: file literal guid: want atom, quoted string or literal, got SP`, ErrSyntax},
	{"file header without LF", "GET X %{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 1}x\r\n", Limits{},
		`dlist: line 1, offset 59: file literal: want LF, got 'x'`, ErrSyntax},
	{"file body truncated", "GET X %{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 10}\r\nabc", Limits{},
		`dlist: line 1, offset 65: file literal: unexpected end of input, 7 bytes of the body missing`, ErrTruncated},
	{"atom over MaxAtom", "GET X " + strings.Repeat("a", 131073) + "\r\n", Limits{},
		`dlist: line 1, offset 6: atom: longer than 131072 bytes`, ErrLimit},
	{"quoted over MaxAtom", "GET X \"" + strings.Repeat("a", 101) + "\"\r\n", Limits{MaxAtom: 100},
		`dlist: line 1, offset 6: quoted string: longer than 100 bytes`, ErrLimit},
	{"verb over MaxAtom", strings.Repeat("A", 200000) + " X y\r\n", Limits{},
		`dlist: line 1, offset 0: verb: longer than 131072 bytes`, ErrLimit},
	{"line over MaxLine", "GET X (" + strings.Repeat("a ", 100000) + ")\r\n", Limits{MaxLine: 100000},
		`dlist: line 1, offset 0: line: longer than 100000 bytes`, ErrLimit},
	{"literal over MaxLiteral", "GET X {101+}\r\n" + strings.Repeat("a", 101) + "\r\n", Limits{MaxLiteral: 100},
		`dlist: line 1, offset 6: literal size: 101 exceeds limit 100`, ErrLimit},
	{"space after the value", "GET USER erin \r\n", Limits{},
		`dlist: line 1, offset 13: end of line: want CRLF, got SP`, ErrSyntax},
	{"two values", "GET USER erin bob\r\n", Limits{},
		`dlist: line 1, offset 13: end of line: want CRLF, got SP`, ErrSyntax},
	{"CR without LF", "EXIT\rX\n", Limits{},
		`dlist: line 1, offset 5: end of line: want CRLF, got 'X'`, ErrSyntax},
	{"no line end", "EXIT", Limits{},
		`dlist: line 1, offset 4: end of line: unexpected end of input at offset 4`, ErrTruncated},
	{"name without value", "GET USER\r\n", Limits{},
		`dlist: line 2, offset 10: value: unexpected end of input at offset 10`, ErrTruncated},
	{"key without value", "GET X %(A)\r\n", Limits{},
		`dlist: line 1, offset 9: value: want a value, got ')'`, ErrSyntax},
	{"paren as key", "GET X %((a) b)\r\n", Limits{},
		`dlist: line 1, offset 8: key: want atom, quoted string or literal, got '('`, ErrSyntax},
	{"unclosed list", "GET X (a b\r\n", Limits{},
		`dlist: line 2, offset 12: list item: unexpected end of input at offset 12`, ErrTruncated},
	{"extra close", "GET X (a))\r\n", Limits{},
		`dlist: line 1, offset 9: end of line: want CRLF, got ')'`, ErrSyntax},
	{"empty line", "\r\n", Limits{},
		`dlist: line 1, offset 0: verb: want a command word, got CR`, ErrSyntax},
	{"leading space", " GET X y\r\n", Limits{},
		`dlist: line 1, offset 0: verb: want a command word, got SP`, ErrSyntax},
	{"tab after verb", "GET\tX y\r\n", Limits{},
		`dlist: line 1, offset 3: end of line: want CRLF, got HT`, ErrSyntax},
	{"two spaces after verb", "GET  X y\r\n", Limits{},
		`dlist: line 1, offset 4: name: want atom, quoted string or literal, got SP`, ErrSyntax},
	{"close paren as value", "GET X )\r\n", Limits{},
		`dlist: line 1, offset 6: value: want a value, got ')'`, ErrSyntax},
	{"status text with NUL", "OK a\x00b\r\n", Limits{},
		`dlist: line 1, offset 4: status text: NUL byte`, ErrSyntax},
	{"error on the second line", "EXIT\r\nGET X {x}\r\n", Limits{},
		`dlist: line 2, offset 12: literal size: want digit, got 'x'`, ErrSyntax},
}

func TestHostile(t *testing.T) {
	for _, tt := range hostileTests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			r.SetLimits(tt.lim)
			var err error
			for err == nil {
				_, err = r.ReadLine()
			}
			if err == io.EOF {
				t.Fatalf("accepted %.80q", tt.in)
			}
			if err.Error() != tt.err {
				t.Errorf("error\n got %s\nwant %s", err, tt.err)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParseError", err)
			}
			if tt.is == ErrTruncated && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("truncation %v is not io.ErrUnexpectedEOF", err)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("error not sticky: %v", err2)
			}
		})
	}
}

// TestNoAllocBeforeBytes checks that a declared size does not allocate:
// a 60 MiB literal cut off after 10 bytes, and a huge file literal read
// with ReadValue.
func TestNoAllocBeforeBytes(t *testing.T) {
	for _, in := range []string{
		"GET X {62914560+}\r\n0123456789",
		"GET X %{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 62914560}\r\n0123456789",
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := NewReader(strings.NewReader(in))
		r.Next()
		r.Next()
		_, err := r.ReadValue()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%.20q: %v", in, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%.20q: allocated %d bytes", in, n)
		}
	}
}

func TestMaxLineShort(t *testing.T) {
	r := NewReader(strings.NewReader("GET X (a b c d e f)\r\nEXIT\r\n"))
	r.SetLimits(Limits{MaxLine: 10})
	_, err := r.ReadLine()
	if err == nil || err.Error() != "dlist: line 1, offset 0: line: longer than 10 bytes" || !errors.Is(err, ErrLimit) {
		t.Errorf("err = %v", err)
	}
}
