package dlist

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mbtool/mbtool/guid"
)

// TestAString checks the astring rules of Cyrus 3.6 (prot_printastring,
// imparse_isatom, prot_printstring), including the cases of Cyrus's own
// cunit/dlist.testc.
func TestAString(t *testing.T) {
	long1023 := strings.Repeat("a", 1023)
	long1024 := strings.Repeat("a", 1024)
	sp1023 := strings.Repeat("a ", 511) + "a"
	sp1024 := strings.Repeat("a ", 512)
	tests := []struct{ in, out, sync string }{
		{"", `""`, ""},
		{"NIL", `"NIL"`, ""},
		{"nil", `nil`, ""},
		{"NILS", `NILS`, ""},
		{`"NIL"`, "{5+}\r\n\"NIL\"", "{5}\r\n\"NIL\""},
		{"user.fred", "user.fred", ""},
		{"user\x1ffred", "user\x1ffred", ""}, // 0x1f is an atom byte in 3.6
		{"a\x1eb", "\"a\x1eb\"", ""},
		{"a\x7fb", "\"a\x7fb\"", ""},
		{"fred\tlrs\t", "\"fred\tlrs\t\"", ""},
		{"a b", `"a b"`, ""},
		{"a*b", `"a*b"`, ""},
		{"a{b", `"a{b"`, ""},
		{"a(b", `"a(b"`, ""},
		{"a)b", `"a)b"`, ""},
		{"a]b", `a]b`, ""},
		{"$Label1", "$Label1", ""},
		{"/vendor/cmu/cyrus-imapd/savedate", "/vendor/cmu/cyrus-imapd/savedate", ""},
		{"a%b", "{3+}\r\na%b", "{3}\r\na%b"},
		{`a\b`, "{3+}\r\na\\b", ""},
		{`a"b`, "{3+}\r\na\"b", ""},
		{"a\rb", "{3+}\r\na\rb", ""},
		{"a\nb", "{3+}\r\na\nb", ""},
		{"\xc3\xa9", "{2+}\r\n\xc3\xa9", ""},
		{"a\x00b", "{3+}\r\na\x00b", ""},
		{long1023, long1023, ""},
		{long1024, "{1024+}\r\n" + long1024, ""},
		{sp1023, `"` + sp1023 + `"`, ""},
		{sp1024, "{1024+}\r\n" + sp1024, ""},
	}
	for _, tt := range tests {
		for _, sync := range []bool{false, true} {
			want := tt.out
			if sync && tt.sync != "" {
				want = tt.sync
			} else if sync {
				want = strings.Replace(want, "+}", "}", 1)
			}
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.SetSyncLiterals(sync)
			w.BeginLine("X", "Y")
			w.Atom(tt.in)
			w.EndLine()
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != "X Y "+want+"\r\n" {
				t.Errorf("Atom(%.40q) sync=%v = %.60q, want %.60q", tt.in, sync, got, want)
			}
			// And it parses back to the same bytes.
			l, err := NewReader(&buf).ReadLine()
			if err != nil || l.Value.String() != tt.in {
				t.Errorf("Atom(%.40q) parses back as %v, %v", tt.in, l, err)
			}
		}
	}
}

// TestStreamingWriter builds the spec's APPLY MAILBOX line with the
// streaming API and compares it with the verified text.
func TestStreamingWriter(t *testing.T) {
	g1, _ := guid.Parse("a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d")
	g3, _ := guid.Parse("0da9947ce59ec81a8230fc2662dbcdb119e31935")
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.BeginLine("APPLY", "MAILBOX")
	w.BeginKVList()
	for _, kv := range [][2]string{{"UNIQUEID", "6czsctw5vujqggbj06eud7mh"}, {"MBOXNAME", "user.fred"}} {
		w.Key(kv[0])
		w.Atom(kv[1])
	}
	for _, kv := range []struct {
		k string
		n uint64
	}{{"SYNC_CRC", 3722447288}, {"SYNC_CRC_ANNOT", 3859283622}, {"LAST_UID", 3}, {"HIGHESTMODSEQ", 15},
		{"RECENTUID", 3}, {"RECENTTIME", 1795877546}, {"LAST_APPENDDATE", 1795877546}, {"POP3_LAST_LOGIN", 0},
		{"POP3_SHOW_AFTER", 0}, {"UIDVALIDITY", 1795877547}} {
		w.Key(kv.k)
		w.Num(kv.n)
	}
	w.Key("PARTITION")
	w.Atom("default")
	w.Key("ACL")
	w.Atom("fred\tlrswipkxtecdan\tcyrus\tlrswipkxtecda\t")
	w.Key("OPTIONS")
	w.Atom("P")
	w.Key("CREATEDMODSEQ")
	w.Num(1)
	w.Key("FOLDERMODSEQ")
	w.Num(11)
	w.Key("ANNOTATIONS")
	w.BeginList()
	for _, a := range [][3]string{{"", "shared note"}, {"fred", "my inbox"}} {
		w.BeginKVList()
		w.Key("ENTRY")
		w.Atom("/comment")
		w.Key("USERID")
		w.Atom(a[0])
		w.Key("MODSEQ")
		w.Num(0)
		w.Key("VALUE")
		w.Bytes([]byte(a[1]))
		w.EndList()
	}
	w.EndList()
	w.Key("RECORD")
	w.BeginList()
	rec := func(uid, modseq, lu uint64, flags []string, idate, size uint64, g guid.GUID, ann func()) {
		w.BeginKVList()
		w.Key("UID")
		w.Num(uid)
		w.Key("MODSEQ")
		w.Num(modseq)
		w.Key("LAST_UPDATED")
		w.Num(lu)
		w.Key("FLAGS")
		w.BeginList()
		for _, f := range flags {
			w.Flag(f)
		}
		w.EndList()
		w.Key("INTERNALDATE")
		w.Num(idate)
		w.Key("SIZE")
		w.Num(size)
		w.Key("GUID")
		w.GUID(g)
		w.Key("ANNOTATIONS")
		w.BeginList()
		ann()
		w.EndList()
		w.EndList()
	}
	rec(1, 14, 1795877555, []string{`\Answered`, `\Seen`, "$Label1"}, 1704103200, 154, g1, func() {
		for _, a := range []struct {
			e string
			v uint64
		}{{"savedate", 1795877546}, {"createdmodseq", 3}} {
			w.WriteValue(NewKVList().Add("ENTRY", NewAtom("/vendor/cmu/cyrus-imapd/"+a.e)).
				Add("USERID", NewAtom("")).Add("MODSEQ", NewNum(0)).Add("VALUE", NewNum(a.v)))
		}
	})
	rec(3, 9, 1795877546, []string{`\Deleted`, `\Expunged`}, 1704276000, 154, g3, func() {})
	w.EndList()
	w.EndList()
	if err := w.EndLine(); err != nil {
		t.Fatal(err)
	}
	n := w.Written()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != specLines[3] {
		t.Errorf("streamed\n got %q\nwant %q", got, specLines[3])
	}
	if n != int64(buf.Len()) || w.Written() != n {
		t.Errorf("Written = %d, %d; output %d bytes", n, w.Written(), buf.Len())
	}
}

func TestWriterValues(t *testing.T) {
	g, _ := guid.Parse("0a0a9f2a6772942557ab5355d76af442f8f65e01")
	tests := []struct {
		v    *Value
		want string
	}{
		{NewNum(0), "0"},
		{NewNum(1<<64 - 1), "18446744073709551615"},
		{NewHex(0x1f88ca2f0f26257), "01f88ca2f0f26257"},
		{NewHex(0), "0000000000000000"},
		{NewGUID(g), "0a0a9f2a6772942557ab5355d76af442f8f65e01"},
		{NewNil(), "NIL"},
		{NewFlag(`\Seen`), `\Seen`},
		{NewFlag("Junk"), "Junk"},
		{NewFlag("$Forwarded"), "$Forwarded"},
		{NewBytes([]byte("abc")), "abc"},
		{NewBytes([]byte("a\x00")), "{2+}\r\na\x00"},
		{NewBytes(nil), `""`},
		{NewList(), "()"},
		{NewKVList(), "%()"},
		{NewList(NewAtom("a"), NewList(NewNil(), NewList()), NewKVList().Add("K", NewAtom("v"))), "(a (NIL ()) %(K v))"},
		{NewList(NewAtom("named").setKey("ignored")), "(named)"},
		{NewFile("default", g, []byte("Hello, World!")), "%{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 13}\r\nHello, World!"},
		{NewFile("my part", g, nil), "%{\"my part\" 0a0a9f2a6772942557ab5355d76af442f8f65e01 0}\r\n"},
	}
	for _, tt := range tests {
		got, err := Marshal(tt.v)
		if err != nil || string(got) != tt.want {
			t.Errorf("Marshal = %q, %v; want %q", got, err, tt.want)
		}
	}
}

func (v *Value) setKey(k string) *Value { v.Key = k; return v }

func TestWriterInvalid(t *testing.T) {
	tests := []struct {
		name string
		f    func(w *Writer)
		err  string
	}{
		{"unclosed list", func(w *Writer) { w.BeginLine("A", "B"); w.BeginList() }, "dlist: EndLine with 1 lists open: dlist: invalid output"},
		{"no value", func(w *Writer) { w.BeginLine("A", "B") }, "dlist: EndLine: the line's name has no value: dlist: invalid output"},
		{"two values", func(w *Writer) { w.BeginLine("A", "B"); w.Num(1); w.Num(2) }, "dlist: second value for the line: dlist: invalid output"},
		{"value on a verb-only line", func(w *Writer) { w.BeginLine("EXIT", ""); w.Num(1) }, "dlist: second value for the line: dlist: invalid output"},
		{"value without key", func(w *Writer) { w.BeginLine("A", "B"); w.BeginKVList(); w.Num(1) }, "dlist: value in a kvlist without a key: dlist: invalid output"},
		{"key in a list", func(w *Writer) { w.BeginLine("A", "B"); w.BeginList(); w.Key("K") }, `dlist: key "K" outside a kvlist: dlist: invalid output`},
		{"key after key", func(w *Writer) { w.BeginLine("A", "B"); w.BeginKVList(); w.Key("K"); w.Key("L") }, `dlist: key "L" after a key: dlist: invalid output`},
		{"close after key", func(w *Writer) { w.BeginLine("A", "B"); w.BeginKVList(); w.Key("K"); w.EndList() }, "dlist: EndList: the last key has no value: dlist: invalid output"},
		{"close too many", func(w *Writer) { w.BeginLine("A", "B"); w.BeginList(); w.EndList(); w.EndList() }, "dlist: EndList without an open list: dlist: invalid output"},
		{"line in line", func(w *Writer) { w.BeginLine("A", "B"); w.BeginLine("C", "D") }, "dlist: BeginLine C: previous line not ended: dlist: invalid output"},
		{"value outside a line", func(w *Writer) { w.Num(1) }, "dlist: value outside a line: dlist: invalid output"},
		{"bad verb", func(w *Writer) { w.BeginLine("A B", "C") }, `dlist: verb "A B" is not an atom: dlist: invalid output`},
		{"NUL in a key", func(w *Writer) { w.BeginLine("A", "B"); w.BeginKVList(); w.Key("a\x00") }, `dlist: key "a\x00" contains NUL: dlist: invalid output`},
		{"flag with space", func(w *Writer) { w.BeginLine("A", "B"); w.Flag(`\A B`) }, `dlist: flag "\\A B" cannot be printed verbatim: dlist: invalid output`},
		{"flag NIL", func(w *Writer) { w.BeginLine("A", "B"); w.Flag("NIL") }, `dlist: flag "NIL" cannot be printed verbatim: dlist: invalid output`},
		{"flag with percent", func(w *Writer) { w.BeginLine("A", "B"); w.Flag("%x") }, `dlist: flag "%x" cannot be printed verbatim: dlist: invalid output`},
		{"empty flag", func(w *Writer) { w.BeginLine("A", "B"); w.Flag("") }, `dlist: flag "" cannot be printed verbatim: dlist: invalid output`},
		{"end kind", func(w *Writer) { w.BeginLine("A", "B"); w.WriteValue(&Value{Kind: End}) }, "dlist: cannot write a value of kind end: dlist: invalid output"},
		{"file without data", func(w *Writer) {
			w.BeginLine("A", "B")
			w.WriteValue(&Value{Kind: File, File: FileInfo{Partition: "p", Size: 3}})
		}, "dlist: file value holds 0 bytes, header says 3: dlist: invalid output"},
		{"short file body", func(w *Writer) {
			w.BeginLine("A", "B")
			w.File("p", guid.Null, 10, strings.NewReader("abc"))
		}, "dlist: file literal body: 3 of 10 bytes: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriter(io.Discard)
			tt.f(w)
			err := w.EndLine()
			if err == nil || err.Error() != tt.err {
				t.Fatalf("err = %v, want %s", err, tt.err)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err %v is neither ErrInvalid nor io.ErrUnexpectedEOF", err)
			}
			if w.Err() != err || w.Flush() != err || w.WriteLine(&Line{Verb: "EXIT"}) != err {
				t.Error("error not sticky")
			}
		})
	}
}

// TestWriterFileCopy copies bodies larger than the buffer through each
// path: the underlying writer's ReadFrom, and the Writer's own loop.
func TestWriterFileCopy(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes
	g := sha1GUID(body)
	for _, dst := range []string{"ReaderFrom", "plain"} {
		var buf bytes.Buffer
		var out io.Writer = &buf
		if dst == "plain" {
			out = struct{ io.Writer }{&buf}
		}
		w := NewWriter(out)
		w.BeginLine("APPLY", "MESSAGE")
		w.BeginList()
		w.File("default", g, int64(len(body)), iotest.HalfReader(bytes.NewReader(body)))
		w.File("default", g, int64(len(body)), bytes.NewReader(body))
		w.EndList()
		if err := w.EndLine(); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if w.Written() != int64(buf.Len()) {
			t.Errorf("%s: Written %d, output %d", dst, w.Written(), buf.Len())
		}
		l, err := NewReader(&buf).ReadLine()
		if err != nil {
			t.Fatalf("%s: %v", dst, err)
		}
		for _, f := range l.Value.Children {
			if !bytes.Equal(f.Data, body) {
				t.Errorf("%s: body differs", dst)
			}
		}
	}
	// A failing underlying writer is reported and sticky.
	boom := errors.New("boom")
	w := NewWriter(errWriter{boom})
	w.BeginLine("APPLY", "MESSAGE")
	err := w.File("default", g, int64(len(body)), bytes.NewReader(body))
	if !errors.Is(err, boom) || w.EndLine() != err {
		t.Errorf("err = %v", err)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write(p []byte) (int, error) { return 0, e.err }

func TestWriteValueKVList(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.BeginLine("APPLY", "SUB")
	w.BeginKVList()
	w.WriteValue(NewAtom("fred").setKey("USERID"))
	w.Key("MBOXNAME")
	w.WriteValue(NewAtom("user.fred").setKey("ignored"))
	w.EndList()
	w.EndLine()
	w.WriteLine(&Line{Verb: "OK", Text: "success"})
	w.WriteLine(&Line{Verb: "EXIT"})
	w.Flush()
	if want := "APPLY SUB %(USERID fred MBOXNAME user.fred)\r\nOK success\r\nEXIT\r\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

// TestWriterFileMismatch checks that an error a body returns with its last
// bytes (guid.Reader reports a GUID mismatch that way) fails File, on
// every copy path: through the buffer, by ReaderFrom and by the plain
// copy loop, and whatever the size.
func TestWriterFileMismatch(t *testing.T) {
	for _, size := range []int{63, 4096, 70000, 320000, 5 << 20} {
		body := bytes.Repeat([]byte("x"), size)
		good := sha1GUID(body)
		bad := append([]byte(nil), body...)
		bad[size-1] = 'y'
		for _, dst := range []string{"ReaderFrom", "plain"} {
			for _, half := range []bool{false, true} {
				var buf bytes.Buffer
				var out io.Writer = &buf
				if dst == "plain" {
					out = struct{ io.Writer }{&buf}
				}
				var src io.Reader = bytes.NewReader(bad)
				if half {
					src = iotest.HalfReader(src)
				}
				w := NewWriter(out)
				w.BeginLine("APPLY", "MESSAGE")
				w.BeginList()
				err := w.File("default", good, int64(size), guid.NewReader(src, good, int64(size)))
				if !errors.Is(err, guid.ErrMismatch) {
					t.Errorf("%d bytes, %s, half %v: err = %v, want a GUID mismatch", size, dst, half, err)
				}
				// The good body still passes.
				w = NewWriter(out)
				w.BeginLine("APPLY", "MESSAGE")
				w.BeginList()
				if err := w.File("default", good, int64(size), guid.NewReader(bytes.NewReader(body), good, int64(size))); err != nil {
					t.Errorf("%d bytes, %s: good body: %v", size, dst, err)
				}
			}
		}
	}
}

// CopyLines puts lines built aside where they are due, byte for byte,
// through the buffer and past it; inside a line it is refused.
func TestWriterCopyLines(t *testing.T) {
	var aside, out, want bytes.Buffer
	a, wa := NewWriter(&aside), NewWriter(&want)
	for _, w := range []*Writer{a, wa} {
		w.BeginLine("APPLY", "MAILBOX")
		w.BeginKVList()
		w.Key("RECORD")
		w.BeginList()
		for i := 0; i < 20000; i++ { // past the buffer
			w.Num(uint64(i))
		}
		w.EndList()
		w.EndList()
		w.EndLine()
	}
	a.Flush()
	w := NewWriter(&out)
	w.BeginLine("APPLY", "MESSAGE")
	w.BeginList()
	w.EndList()
	w.EndLine()
	if err := w.CopyLines(bytes.NewReader(aside.Bytes())); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	wa.Flush()
	if got, want := out.String(), "APPLY MESSAGE ()\r\n"+want.String(); got != want {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	w.BeginLine("APPLY", "MAILBOX")
	if err := w.CopyLines(strings.NewReader("x\r\n")); !errors.Is(err, ErrInvalid) {
		t.Errorf("CopyLines inside a line: %v", err)
	}
}

// TestWriterFileBytes: FileBytes prints what File prints, for bodies that
// fit in what is left of the buffer, that do not, and that are larger than
// the buffer (written without a copy), after buffered bytes of any length.
func TestWriterFileBytes(t *testing.T) {
	const size = 64 << 10 // NewWriterSize's least buffer
	mixes := [][]int{
		{0, 1, 100},
		{size - 50, 100, 10},
		{size + 1, 3},
		{10, 3*size + 7, size, 1},
		{size / 2, size / 2, size / 2, 5 * size},
	}
	for _, mix := range mixes {
		var want, got bytes.Buffer
		ww := NewWriterSize(&want, size)
		gw := NewWriterSize(struct{ io.Writer }{&got}, size)
		for i, w := range []*Writer{ww, gw} {
			w.BeginLine("APPLY", "MESSAGE")
			w.BeginList()
			for j, n := range mix {
				body := bytes.Repeat([]byte{byte('a' + j)}, n)
				g := sha1GUID(body)
				var err error
				if i == 0 {
					err = w.File("default", g, int64(n), bytes.NewReader(body))
				} else {
					err = w.FileBytes("default", g, body)
				}
				if err != nil {
					t.Fatalf("%v: %v", mix, err)
				}
			}
			w.EndList()
			if err := w.EndLine(); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%v: FileBytes printed %d bytes, File %d, and they differ", mix, got.Len(), want.Len())
		}
		if gw.Written() != int64(got.Len()) {
			t.Errorf("%v: Written %d, output %d", mix, gw.Written(), got.Len())
		}
	}
	// A failing underlying writer is reported and sticky.
	boom := errors.New("boom")
	w := NewWriterSize(errWriter{boom}, size)
	w.BeginLine("APPLY", "MESSAGE")
	body := make([]byte, 2*size)
	err := w.FileBytes("default", sha1GUID(body), body)
	if !errors.Is(err, boom) || w.EndLine() != err {
		t.Errorf("err = %v", err)
	}
}

// swapper is a BufferWriter that keeps what it is given, and hands back
// a buffer of its own each time (the one it was given before), as a
// writer in the background does.
type swapper struct {
	out   bytes.Buffer
	spare []byte
	swaps int
}

func (s *swapper) Write(p []byte) (int, error) { return s.out.Write(p) }

func (s *swapper) WriteBuffer(b []byte) ([]byte, error) {
	s.out.Write(b)
	s.swaps++
	next := s.spare
	if next == nil {
		next = make([]byte, 0, cap(b))
	}
	s.spare = b[:0]
	clear(b[:cap(b)]) // a Writer that went on using a buffer it handed over writes zeros
	return next, nil
}

// TestBufferWriter: over a BufferWriter, file literals larger than the
// buffer, streamed (File) or from memory (FileBytes), go through buffers
// handed over whole, and the output is the same bytes as over a plain
// writer; a streamed body that ends early still fails with
// io.ErrUnexpectedEOF.
func TestBufferWriter(t *testing.T) {
	sizes := []int{10, 200 << 10, 70 << 10, 3<<20 + 5, 1 << 20, 5}
	write := func(w io.Writer) {
		dw := NewWriterSize(w, 256<<10)
		dw.BeginLine("APPLY", "MESSAGE")
		dw.BeginList()
		for i, n := range sizes {
			body := bytes.Repeat([]byte{byte('a' + i)}, n)
			var err error
			if i%2 == 0 {
				err = dw.File("default", guid.GUID{byte(i)}, int64(n), bytes.NewReader(body))
			} else {
				err = dw.FileBytes("default", guid.GUID{byte(i)}, body)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		dw.EndList()
		if err := dw.EndLine(); err != nil {
			t.Fatal(err)
		}
		if err := dw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	var plain bytes.Buffer
	write(&plain)
	sw := &swapper{}
	write(sw)
	if !bytes.Equal(sw.out.Bytes(), plain.Bytes()) {
		t.Fatalf("over a BufferWriter: %d bytes, not the %d over a plain writer", sw.out.Len(), plain.Len())
	}
	if sw.swaps < 4*1024/256 {
		t.Errorf("%d buffers handed over for %d bytes of 256 KiB buffers", sw.swaps, sw.out.Len())
	}
	dw := NewWriterSize(&swapper{}, 64<<10)
	dw.BeginLine("APPLY", "MESSAGE")
	dw.BeginList()
	err := dw.File("default", guid.GUID{}, 300<<10, bytes.NewReader(make([]byte, 200<<10)))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %v, want io.ErrUnexpectedEOF", err)
	}
}
