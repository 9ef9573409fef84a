package dlist

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

const tab = "\t"

// specLines are example lines of a verified Cyrus 3.6.1 replication trace, joined
// into the single physical lines they are on the wire.
var specLines = []string{
	"APPLY RESERVE %(PARTITION default MBOXNAME (user.fred user.fred.Sent) GUID (2e24e4853a5b5cc5c6bc18c22998694a6262b616))\r\n",
	"* MISSING (2e24e4853a5b5cc5c6bc18c22998694a6262b616)\r\n",
	"OK success\r\n",
	"APPLY MAILBOX %(UNIQUEID 6czsctw5vujqggbj06eud7mh MBOXNAME user.fred SYNC_CRC 3722447288 SYNC_CRC_ANNOT 3859283622 LAST_UID 3 HIGHESTMODSEQ 15 " +
		"RECENTUID 3 RECENTTIME 1795877546 LAST_APPENDDATE 1795877546 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 1795877547 PARTITION default " +
		"ACL \"fred" + tab + "lrswipkxtecdan" + tab + "cyrus" + tab + "lrswipkxtecda" + tab + "\" OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 11 " +
		"ANNOTATIONS (%(ENTRY /comment USERID \"\" MODSEQ 0 VALUE \"shared note\") %(ENTRY /comment USERID fred MODSEQ 0 VALUE \"my inbox\")) " +
		"RECORD (%(UID 1 MODSEQ 14 LAST_UPDATED 1795877555 FLAGS (\\Answered \\Seen $Label1) INTERNALDATE 1704103200 SIZE 154 GUID a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d " +
		"ANNOTATIONS (%(ENTRY /vendor/cmu/cyrus-imapd/savedate USERID \"\" MODSEQ 0 VALUE 1795877546) %(ENTRY /vendor/cmu/cyrus-imapd/createdmodseq USERID \"\" MODSEQ 0 VALUE 3))) " +
		"%(UID 3 MODSEQ 9 LAST_UPDATED 1795877546 FLAGS (\\Deleted \\Expunged) INTERNALDATE 1704276000 SIZE 154 GUID 0da9947ce59ec81a8230fc2662dbcdb119e31935 ANNOTATIONS ())))\r\n",
	"APPLY SEEN %(USERID fred UNIQUEID 80lpo3nmmtsr4e14edqvqz2f LASTREAD 1795877655 LASTUID 3 LASTCHANGE 1795877655 SEENUIDS 1,3)\r\n",
	"APPLY QUOTA %(ROOT user.fred LIMIT 10000 STORAGE 10000 MESSAGE 500 MODSEQ 4)\r\n",
	"APPLY SUB %(USERID fred MBOXNAME user.fred.Sent)\r\n",
	"GET USER fred\r\n",
	"* LSUB (user.fred.Sent)\r\n",
	"APPLY MESSAGE (%{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 13}\r\nHello, World! %{default da39a3ee5e6b4b0d3255bfef95601890afd80709 0}\r\n)\r\n",
	"EXIT\r\n",
}

func TestSpecLines(t *testing.T) {
	for _, s := range specLines {
		r := NewReader(strings.NewReader(s))
		l, err := r.ReadLine()
		if err != nil {
			t.Errorf("%.60q: %v", s, err)
			continue
		}
		got, err := printLine(l, false)
		if err != nil || string(got) != s {
			t.Errorf("round trip %.60q: %v\n got %q\nwant %q", s, err, got, s)
		}
	}
	// Spot checks of the tree through the accessors.
	l, err := NewReader(strings.NewReader(specLines[3])).ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	mb := l.Value
	if l.Verb != "APPLY" || mb.Key != "MAILBOX" || mb.Kind != KVList {
		t.Fatalf("line = %q %q %v", l.Verb, mb.Key, mb.Kind)
	}
	if got := mb.Get("ACL").String(); got != "fred\tlrswipkxtecdan\tcyrus\tlrswipkxtecda\t" {
		t.Errorf("ACL = %q", got)
	}
	if n, err := mb.Get("SYNC_CRC").Num32(); err != nil || n != 3722447288 {
		t.Errorf("SYNC_CRC = %d, %v", n, err)
	}
	rec := mb.Get("RECORD")
	if rec.Kind != List || len(rec.Children) != 2 {
		t.Fatalf("RECORD = %v with %d children", rec.Kind, len(rec.Children))
	}
	r1 := rec.Children[0]
	if g, err := r1.Get("GUID").GUID(); err != nil || g.String() != "a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d" {
		t.Errorf("GUID = %v, %v", g, err)
	}
	flags := r1.Get("FLAGS").Children
	if len(flags) != 3 || flags[0].Kind != Flag || flags[0].String() != `\Answered` || flags[2].Kind != Atom {
		t.Errorf("FLAGS = %+v", flags)
	}
	ann := r1.Get("ANNOTATIONS").Children[0]
	if ann.Get("USERID").String() != "" || ann.Get("USERID").Kind != Atom || ann.Get("VALUE").String() != "1795877546" {
		t.Errorf("annotation = %+v", ann)
	}
}

// TestAccept feeds input the stream parser accepts in forms Cyrus never
// prints, and checks the canonical form printed back.
func TestAccept(t *testing.T) {
	g := "0a0a9f2a6772942557ab5355d76af442f8f65e01"
	tests := []struct{ in, out string }{
		{"APPLY X (a(b))\r\n", "APPLY X (a (b))\r\n"},
		{"APPLY X %(  A  1\r\n B\t2\v\f)\n", "APPLY X %(A 1 B 2)\r\n"},
		{"GET X (\"a\"b)\r\n", "GET X (a b)\r\n"},
		{"GET X (a\"b\")\r\n", "GET X (a b)\r\n"},
		{"GET X %(A(1)B\"2\")\r\n", "GET X %(A (1) B 2)\r\n"},
		{"GET X \"a\\\"b\\\\c\\x\"\r\n", "GET X {6+}\r\na\"b\\cx\r\n"},
		{"GET X \"a\\\nb\"\r\n", "GET X {3+}\r\na\nb\r\n"},
		{"GET X {3+}\r\nabc\r\n", "GET X abc\r\n"},
		{"GET X {3}\r\nabc\r\n", "GET X abc\r\n"},
		{"GET X {007}\r\nabcdefg\r\n", "GET X abcdefg\r\n"},
		{"GET X {0}\r\n\r\n", "GET X \"\"\r\n"},
		{"GET X {3+}\r\na\x00b\r\n", "GET X {3+}\r\na\x00b\r\n"},
		{"GET X (NIL \"NIL\" NILS nil)\r\n", "GET X (NIL \"NIL\" NILS nil)\r\n"},
		{"GET X (\\Seen \\ \\\\x)\r\n", "GET X (\\Seen \\ \\\\x)\r\n"},
		{"GET X (a%b a*b a{b a\\b a]b \x1f \x01)\r\n", "GET X ({3+}\r\na%b \"a*b\" \"a{b\" {3+}\r\na\\b a]b \x1f \"\x01\")\r\n"},
		{"GET X (\xc3\xa9)\r\n", "GET X ({2+}\r\n\xc3\xa9)\r\n"},
		{"GET X (() %() ( ) %( ))\r\n", "GET X (() %() () %())\r\n"},
		{"GET \"USER\" x\r\n", "GET USER x\r\n"},
		{"GET {4+}\r\nUSER x\r\n", "GET USER x\r\n"},
		{"GET \"\" x\n", "GET \"\" x\r\n"},
		{"GET USER\r\n  erin\r\n", "GET USER erin\r\n"},
		{"GET USER(a)\r\n", "GET USER (a)\r\n"},
		{"GET X %(\\Key v %Key v)\r\n", "GET X %({4+}\r\n\\Key v {4+}\r\n%Key v)\r\n"},
		{"EXIT\n", "EXIT\r\n"},
		{"OK success\r\n", "OK success\r\n"},
		{"NO IMAP_SYNC_CHECKSUM Checksum Failure\r\n", "NO IMAP_SYNC_CHECKSUM Checksum Failure\r\n"},
		{"BAD\r\n", "BAD\r\n"},
		{"M F (%{default " + g + " 13}\nHello, World!)\n", "M F (%{default " + g + " 13}\r\nHello, World!)\r\n"},
		{"M F %{\"default\" {40+}\r\n" + strings.ToUpper(g) + " 13}\r\nHello, World!\r\n", "M F %{default " + g + " 13}\r\nHello, World!\r\n"},
		{"M F (%{p " + g + " 0}\r\n%{p " + g + " 1}\r\n))\r\n", "M F (%{p " + g + " 0}\r\n %{p " + g + " 1}\r\n))\r\n"},
	}
	for _, tt := range tests {
		l, err := NewReader(strings.NewReader(tt.in)).ReadLine()
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		got, err := printLine(l, false)
		if err != nil || string(got) != tt.out {
			t.Errorf("%q: %v\n got %q\nwant %q", tt.in, err, got, tt.out)
		}
	}
}

// TestTokens checks the token stream of one line, with offsets and line
// numbers.
func TestTokens(t *testing.T) {
	in := "APPLY X %(K \"v\" L {2+}\r\nab F (\\Seen NIL)\n G %{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 3}\nxyz)\r\nEXIT\r\n"
	type tk struct {
		kind  Kind
		text  string
		key   bool
		off   int64
		line  int
		extra string // "q" quoted, "s" sync
	}
	want := []tk{
		{Atom, "APPLY", false, 0, 1, ""},
		{Atom, "X", true, 6, 1, ""},
		{KVList, "", false, 8, 1, ""},
		{Atom, "K", true, 10, 1, ""},
		{Atom, "v", false, 12, 1, "q"},
		{Atom, "L", true, 16, 1, ""},
		{Literal, "ab", false, 18, 1, ""},
		{Atom, "F", true, 27, 1, ""},
		{List, "", false, 29, 1, ""},
		{Flag, `\Seen`, false, 30, 1, ""},
		{Nil, "", false, 36, 1, ""},
		{End, "", false, 39, 1, ""},
		{Atom, "G", true, 42, 2, ""},
		{File, "", false, 44, 2, ""},
		{End, "", false, 95, 2, ""},
		{EOL, "", false, 96, 2, ""},
		{Atom, "EXIT", false, 98, 3, ""},
		{EOL, "", false, 102, 3, ""},
	}
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)))
	for i, w := range want {
		tok, err := r.Next()
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		got := tk{tok.Kind, string(tok.Bytes), tok.IsKey, tok.Offset, tok.Line, ""}
		if tok.Quoted {
			got.extra = "q"
		}
		if tok.Sync {
			got.extra = "s"
		}
		if got != w {
			t.Errorf("token %d = %+v, want %+v", i, got, w)
		}
		if tok.Kind == File {
			if tok.File.Partition != "p" || tok.File.Size != 3 {
				t.Errorf("file = %+v", tok.File)
			}
			b, err := io.ReadAll(r.Body())
			if err != nil || string(b) != "xyz" {
				t.Errorf("body = %q, %v", b, err)
			}
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("at end: %v, want io.EOF", err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("again at end: %v, want io.EOF", err)
	}
}

// TestReadValueItems reads RECORDs one by one with ReadValue, and skips
// an unread file body.
func TestReadValueItems(t *testing.T) {
	in := "APPLY MAILBOX %(MBOXNAME a RECORD (%(UID 1) %(UID 2) %(UID 3)) X (%{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 13}\r\nHello, World! y))\r\nEXIT\r\n"
	r := NewReader(strings.NewReader(in))
	for i, want := range []Kind{Atom, Atom, KVList} {
		if tok, err := r.Next(); err != nil || tok.Kind != want {
			t.Fatalf("token %d: %v %v", i, tok.Kind, err)
		}
	}
	v, err := r.ReadValue()
	if err != nil || v.Key != "MBOXNAME" || v.String() != "a" {
		t.Fatalf("ReadValue = %+v, %v", v, err)
	}
	if tok, err := r.Next(); err != nil || string(tok.Bytes) != "RECORD" || !tok.IsKey {
		t.Fatalf("Next = %+v, %v", tok, err)
	}
	if tok, err := r.Next(); err != nil || tok.Kind != List {
		t.Fatalf("Next = %+v, %v", tok, err)
	}
	var uids []uint32
	for {
		v, err := r.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		if v.Kind == End {
			break
		}
		uid, err := v.Get("UID").Num32()
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, uid)
	}
	if len(uids) != 3 || uids[2] != 3 {
		t.Errorf("uids = %v", uids)
	}
	// X: open the list, see the file, don't read it.
	for i, want := range []Kind{Atom, List, File, Atom, End, End, EOL} {
		tok, err := r.Next()
		if err != nil || tok.Kind != want {
			t.Fatalf("token %d after RECORD: %v %v, want %v", i, tok.Kind, err, want)
		}
		if want == File {
			b := make([]byte, 5)
			if _, err := io.ReadFull(r.Body(), b); err != nil || string(b) != "Hello" {
				t.Fatalf("body = %q, %v", b, err)
			}
		}
	}
	l, err := r.ReadLine()
	if err != nil || l.Verb != "EXIT" || l.Value != nil {
		t.Fatalf("ReadLine = %+v, %v", l, err)
	}
	if _, err := r.ReadValue(); err != io.EOF {
		t.Errorf("ReadValue at the end: %v, want io.EOF", err)
	}
}

func TestReadLineFileData(t *testing.T) {
	in := "APPLY MESSAGE (%{default 0a0a9f2a6772942557ab5355d76af442f8f65e01 13}\r\nHello, World!)\r\n"
	l, err := NewReader(strings.NewReader(in)).ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	f := l.Value.Children[0]
	if f.Kind != File || string(f.Data) != "Hello, World!" || sha1GUID(f.Data) != f.File.GUID {
		t.Errorf("file = %+v", f)
	}
	r := NewReader(strings.NewReader(in))
	r.SetLimits(Limits{MaxLiteral: 12})
	if _, err := r.ReadLine(); !errors.Is(err, ErrLimit) {
		t.Errorf("13-byte file with MaxLiteral 12: %v", err)
	}
}

func TestReadLineMidLine(t *testing.T) {
	r := NewReader(strings.NewReader("GET USER x\r\n"))
	r.Next()
	if _, err := r.ReadLine(); err != errMidLine {
		t.Errorf("ReadLine mid-line: %v", err)
	}
}

// TestReadErrors passes I/O errors through with the position.
func TestReadErrors(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("GET USER x"), iotest.ErrReader(boom)))
	_, err := r.ReadLine()
	if !errors.Is(err, boom) || err.Error() != "dlist: reading atom at offset 10: boom" {
		t.Errorf("err = %v", err)
	}
	if _, err2 := r.Next(); err2 != err {
		t.Errorf("not sticky: %v", err2)
	}
	r = NewReader(io.MultiReader(strings.NewReader("M F %{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 100000}\r\n"), bytes.NewReader(make([]byte, 99999))))
	for i := 0; i < 3; i++ {
		r.Next()
	}
	n, err := io.Copy(io.Discard, r.Body())
	if n != 99999 || !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %d, %v", n, err)
	}
}
