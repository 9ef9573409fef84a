package cyrusdb

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestFlatLess checks the order observed from Cyrus (docs/cyrus/files.md §6)
// and the escapes' place in it; TestCyrusFlat checks it against Cyrus.
func TestFlatLess(t *testing.T) {
	keys := []string{"", "\x01", "\x08", "\x0b", " ", "a", "a.a", "a.b", "a\x01", "a b", "a-b", "ab", "a\xfe", "a\x00", "a\t", "a\n", "a\r", "a\xff", "b"}
	for i, a := range keys {
		for j, b := range keys {
			if got := FlatLess([]byte(a), []byte(b)); got != (i < j) {
				t.Errorf("FlatLess(%q, %q) = %v, want %v", a, b, got, i < j)
			}
		}
	}
}

func TestFlatEscapes(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	enc := appendFlatEnc(nil, all)
	for _, c := range []byte{0, '\t', '\n', '\r'} {
		if bytes.IndexByte(enc, c) >= 0 {
			t.Fatalf("encoding holds raw %#x", c)
		}
	}
	if got, i := flatDecode(bytes.Clone(enc)); i >= 0 || !bytes.Equal(got, all) {
		t.Fatalf("decode(encode(all bytes)) = %q", got)
	}
	for _, bad := range []string{"\xffA", "a\xff", "\xff\xc1", "\xff\xff\xff", "a\rb", "a\tb", "\x00"} {
		if _, i := flatDecode([]byte(bad)); i < 0 {
			t.Errorf("flatDecode(%q) accepted", bad)
		}
	}
}

func TestFlatRoundTrip(t *testing.T) {
	recs := [][2][]byte{
		{[]byte("b"), []byte("2")},
		{[]byte("a.b"), []byte("tab\there")},
		{[]byte("a"), nil},
		{[]byte(""), []byte("empty key")},
		{bytes.Repeat([]byte("long\x00"), 40000), bytes.Repeat([]byte("\xff\n"), 50000)},
	}
	orig := bytes.Clone(recs[0][0])
	var buf bytes.Buffer
	if err := WriteFlat(&buf, recs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(recs[0][0], orig) {
		t.Fatal("WriteFlat reordered its argument")
	}
	got, err := readFlatAll(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := [][2][]byte{recs[3], recs[2], recs[1], recs[0], recs[4]}
	if !equalRecords(got, want) {
		t.Fatalf("round trip:\n got %.60q\nwant %.60q", got, want)
	}
	if err := WriteFlat(&buf, [][2][]byte{{[]byte("x"), nil}, {[]byte("x"), nil}}); !errors.Is(err, ErrKeyOrder) {
		t.Fatalf("duplicate keys: %v", err)
	}
}

func TestReadFlatErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int64
		reason string
	}{
		{"a\t1\nb\t2", 4, "newline"},
		{"a\t1\nb2\n", 4, "no tab"},
		{"a\t1\nb\t2\x00x\n", 7, "escape"},
		{"a\t1\nb\t2\tx\n", 7, "escape"},
		{"a\t1\nb\r\t2\n", 5, "escape"},
		{"a\t1\nb\t2\xff\n", 7, "escape"},
		{"a\t1\nb\xff\x41\t2\n", 6, "escape"},
		{"b\t1\na\t2\n", 4, "order"},
		{"a\t1\na\t2\n", 4, "order"},
		{"a b\t1\na.b\t2\n", 6, "order"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			err := ReadFlat("sub.db", strings.NewReader(tc.in), func(k, v []byte) error { return nil })
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Offset != tc.offset || !strings.Contains(ce.Reason, tc.reason) || ce.Path != "sub.db" {
				t.Fatalf("ReadFlat = %v, want a CorruptError at %d about %q", err, tc.offset, tc.reason)
			}
		})
	}
	stop := errors.New("stop")
	if err := ReadFlat("x", strings.NewReader("a\t1\nb\t2\n"), func(k, v []byte) error { return stop }); err != stop {
		t.Fatalf("fn error came back as %v", err)
	}
}

// TestFlatFlipEveryByte: flat files carry no checksums, so damage may go
// unseen, but it must never panic, and errors must be *CorruptError.
func TestFlatFlipEveryByte(t *testing.T) {
	orig := readFile(t, "testdata/flat-basic.db")
	b := bytes.Clone(orig)
	for i := range b {
		for _, x := range []byte{0xFF, 0x01, '\t' ^ b[i], '\n' ^ b[i]} {
			b[i] ^= x
			if _, err := readFlatAll(b); err != nil {
				mustCorrupt(t, fmt.Sprintf("byte %d ^ %#x", i, x), err, len(b))
			}
			b[i] ^= x
		}
	}
}

// TestReadFlatSmallAllocates checks that reading a small flat file does not
// allocate a 64 KiB buffer each time: a dump reads one per user, and those
// buffers were a fifth of what a dump of 2,000 small mailboxes allocated.
// Before, 100 reads of a one-line file allocated 6.4 MiB.
func TestReadFlatSmallAllocates(t *testing.T) {
	data := []byte("\x1fVER\x1f\t2\nNINBOX\t\n")
	read := func() {
		if err := ReadFlat("sub", bytes.NewReader(data), func(k, v []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	read()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		read()
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("100 reads of a %d-byte flat file allocated %d bytes", len(data), n)
	}
}
