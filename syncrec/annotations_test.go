package syncrec

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dlist"
)

// annotationInputs are ANNOTATIONS values, well formed and not.
var annotationInputs = []string{
	`()`,
	`(%(ENTRY /vendor/cmu/cyrus-imapd/savedate USERID "" MODSEQ 0 VALUE 1767225600) %(ENTRY /vendor/cmu/cyrus-imapd/createdmodseq USERID "" MODSEQ 0 VALUE 2))`,
	`(%(ENTRY /comment USERID alice MODSEQ 18446744073709551615 VALUE {5+}` + "\r\n" + `a b c))`,
	`(%(VALUE NIL MODSEQ 7 USERID NIL ENTRY /x))`,
	`(%(ENTRY /x USERID "" MODSEQ 1 VALUE v ENTRY /y MODSEQ 2 EXTRA (1 2 %(A B))))`,
	`(%(ENTRY /x USERID "" MODSEQ 1))`,
	`(%(ENTRY /x MODSEQ 1 VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ 18446744073709551616 VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ 12x VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ "" VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ NIL VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ \Seen VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ (1) VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ {2+}` + "\r\n" + `42 VALUE v))`,
	`(%(ENTRY (a) USERID %(K V) MODSEQ 3 VALUE (b c)))`,
	`(x %(ENTRY /x USERID "" MODSEQ 1 VALUE v))`,
	`(%(ENTRY /x USERID "" MODSEQ 1 VALUE v) (y) %(ENTRY /z))`,
	`(%(ENTRY /x USERID "" MODSEQ x VALUE v) %(ENTRY /z))`,
	`(%((k) v))`,
	`(%(ENTRY))`,
	`(%(ENTRY /x USERID`,
	`(%(ENTRY /x`,
	`(`,
	`%(ENTRY /x)`,
	`x`,
	`NIL`,
}

// readAnnotations decodes as readTree followed by DecodeAnnotations does,
// with the same errors and the same budget.
func TestReadAnnotationsAsTree(t *testing.T) {
	for _, in := range annotationInputs {
		for _, max := range []int64{MaxHeld, 100, 200, 300, 500} {
			checkAnnotationsAsTree(t, []byte(in), max)
		}
	}
}

func FuzzReadAnnotations(f *testing.F) {
	for _, in := range annotationInputs {
		f.Add([]byte(in), int64(400))
	}
	f.Fuzz(func(t *testing.T, in []byte, max int64) {
		checkAnnotationsAsTree(t, in, max)
	})
}

func checkAnnotationsAsTree(t *testing.T, in []byte, max int64) {
	t.Helper()
	open := func() *dlist.Reader {
		r := dlist.NewReader(bytes.NewReader(append(append([]byte("APPLY X "), in...), " 9\r\n"...)))
		r.SetLimits(dlist.Limits{MaxLiteral: 1 << 16, MaxAtom: 1 << 12, MaxDepth: 16, MaxLine: 1 << 20})
		r.Next()
		r.Next()
		return r
	}
	r := open()
	b := &budget{max: max}
	got, gotErr := readAnnotations(r, b)
	gotNext, _ := r.Next()

	r = open()
	wb := &budget{max: max}
	var want []Annotation
	var wantErr error
	tk, err := r.Next()
	if err != nil {
		wantErr = err
	} else if v, err := readTree(r, tk, "ANNOTATIONS", wb); err != nil {
		wantErr = err
	} else {
		want, wantErr = DecodeAnnotations(v)
	}
	wantNext, _ := r.Next()

	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("%q (budget %d): error %v, readTree gives %v", in, max, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %+v, readTree gives %+v", in, got, want)
	}
	if b.held != wb.held {
		t.Fatalf("%q: budget %d, readTree takes %d", in, b.held, wb.held)
	}
	if gotNext.Kind != wantNext.Kind || gotNext.Offset != wantNext.Offset {
		t.Fatalf("%q: next token %v at %d, after readTree %v at %d", in, gotNext.Kind, gotNext.Offset, wantNext.Kind, wantNext.Offset)
	}
}

// What an annotation decodes to, or the error naming its key: the
// decoder readAnnotations and DecodeAnnotations share (the test above only
// says that they agree).
func TestAnnotationDecodes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Annotation
		err  string // in the error, when one is wanted
	}{
		{in: `(%(ENTRY /comment USERID alice MODSEQ 7 VALUE {3+}` + "\r\n" + `a b))`,
			want: []Annotation{{Entry: "/comment", UserID: "alice", Modseq: 7, Value: []byte("a b")}}},
		{in: `(%(VALUE NIL MODSEQ 0 USERID NIL ENTRY /x))`, want: []Annotation{{Entry: "/x"}}},
		{in: `(%(ENTRY /x USERID "" MODSEQ 1 VALUE v ENTRY /y MODSEQ 2 EXTRA 3))`,
			want: []Annotation{{Entry: "/x", Modseq: 1, Value: []byte("v")}}},
		{in: `(%(ENTRY (a) USERID u MODSEQ 3 VALUE (b c)))`, want: []Annotation{{UserID: "u", Modseq: 3}}},
		{in: `(%(USERID "" MODSEQ 1 VALUE v))`, err: "ENTRY: invalid sync record: missing from annotation"},
		{in: `(%(ENTRY /x MODSEQ 1 VALUE v))`, err: "USERID: invalid sync record: missing from annotation"},
		{in: `(%(ENTRY /x USERID "" VALUE v))`, err: "MODSEQ: invalid sync record: missing from annotation"},
		{in: `(%(ENTRY /x USERID "" MODSEQ 1))`, err: "VALUE: invalid sync record: missing from annotation"},
		{in: `(%(ENTRY /x USERID "" MODSEQ 12x VALUE v))`, err: `MODSEQ: invalid sync record: dlist: number MODSEQ "12x"`},
		{in: `(%(ENTRY /x USERID "" MODSEQ \Seen VALUE v))`, err: "MODSEQ: invalid sync record"},
		{in: `(%(ENTRY /x USERID "" MODSEQ 18446744073709551616 VALUE v))`, err: "value out of range"},
		{in: `(%(ENTRY /x USERID "" MODSEQ "42" VALUE v))`, // quoted, a number still (Cyrus's dlist_getnum64)
			want: []Annotation{{Entry: "/x", Modseq: 42, Value: []byte("v")}}},
	} {
		r := dlist.NewReader(strings.NewReader("APPLY X " + c.in + " 9\r\n"))
		r.Next()
		r.Next()
		got, err := readAnnotations(r, &budget{max: MaxHeld})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

// intern gives the string of its bytes, and for the words every record
// repeats allocates nothing.
func TestIntern(t *testing.T) {
	for _, s := range []string{"UID", "GUID", `\Seen`, `\Draft`, "/vendor/cmu/cyrus-imapd/savedate", "OTHER", `\seen`, ""} {
		b := []byte(s)
		if got := intern(b); got != s {
			t.Errorf("intern(%q) = %q", s, got)
		}
	}
	b := []byte(`\Answered`)
	if n := testing.AllocsPerRun(100, func() { _ = intern(b) }); n != 0 {
		t.Errorf("intern(%q): %v allocations", b, n)
	}
}
