package guid

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// A message file from the Cyrus transcript (dlist/testdata/transcript.txt) would do as
// well; any bytes and their SHA-1 from the standard library are the oracle.
var sample = []byte("From: Bob <bob@example.org>\r\nSubject: test\r\n\r\nBody.\r\n")

func TestParseFormat(t *testing.T) {
	want := GUID(sha1.Sum(sample))
	s := want.String()
	if len(s) != 40 || s != strings.ToLower(s) {
		t.Fatalf("String() = %q", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		g, err := Parse(in)
		if err != nil || g != want {
			t.Errorf("Parse(%q) = %v, %v", in, g, err)
		}
	}
	if got := string(want.AppendHex([]byte("x"))); got != "x"+s {
		t.Errorf("AppendHex = %q", got)
	}
	var u GUID
	if err := u.UnmarshalText([]byte(s)); err != nil || u != want {
		t.Errorf("UnmarshalText = %v, %v", u, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "abc", strings.Repeat("0", 39), strings.Repeat("0", 41), strings.Repeat("g", 40), strings.Repeat("0", 38) + " 0"} {
		if _, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error = %v, want ErrSyntax", in, err)
		}
	}
}

func TestNull(t *testing.T) {
	g, err := Parse(strings.Repeat("0", 40))
	if err != nil || !g.IsNull() || g != Null {
		t.Fatalf("null GUID: %v %v", g, err)
	}
	if GUID(sha1.Sum(nil)).IsNull() {
		t.Fatal("SHA-1 of nothing is not null")
	}
}

func TestOfAndHasher(t *testing.T) {
	g, n, err := Of(bytes.NewReader(sample))
	if err != nil || n != int64(len(sample)) || g != GUID(sha1.Sum(sample)) {
		t.Fatalf("Of = %v %d %v", g, n, err)
	}
	h := NewHasher()
	h.Write(sample[:10])
	h.Write(sample[10:])
	if h.GUID() != g || h.Len() != int64(len(sample)) {
		t.Fatalf("Hasher = %v %d", h.GUID(), h.Len())
	}
}

// OfBuffer through reads that stop short: every byte, none more.
func TestOfShortReads(t *testing.T) {
	for _, r := range []io.Reader{iotest.OneByteReader(bytes.NewReader(sample)), iotest.HalfReader(bytes.NewReader(sample))} {
		g, n, err := OfBuffer(r, make([]byte, 7))
		if err != nil || n != int64(len(sample)) || g != GUID(sha1.Sum(sample)) {
			t.Errorf("OfBuffer = %v %d %v", g, n, err)
		}
	}
}

func TestReader(t *testing.T) {
	want := GUID(sha1.Sum(sample))
	size := int64(len(sample))
	tests := []struct {
		name    string
		src     io.Reader
		guid    GUID
		size    int64
		wantErr error
	}{
		{"ok", bytes.NewReader(sample), want, size, nil},
		{"ok one byte at a time", iotest.OneByteReader(bytes.NewReader(sample)), want, size, nil},
		{"ok stops at size", io.MultiReader(bytes.NewReader(sample), strings.NewReader("extra")), want, size, nil},
		{"mismatch", bytes.NewReader(append([]byte{'X'}, sample[1:]...)), want, size, ErrMismatch},
		{"short", bytes.NewReader(sample[:5]), want, size, io.ErrUnexpectedEOF},
		{"short one byte at a time", iotest.OneByteReader(bytes.NewReader(sample[:5])), want, size, io.ErrUnexpectedEOF},
		{"mismatch in halves", iotest.HalfReader(bytes.NewReader(append(sample[:size-1:size-1], 'X'))), want, size, ErrMismatch},
		{"read error", iotest.ErrReader(io.ErrClosedPipe), want, size, io.ErrClosedPipe},
	}
	for _, tt := range tests {
		r := NewReader(tt.src, tt.guid, tt.size)
		got, err := io.ReadAll(r)
		if tt.wantErr == nil {
			if err != nil || !bytes.Equal(got, sample) {
				t.Errorf("%s: ReadAll = %d bytes, %v", tt.name, len(got), err)
			}
			continue
		}
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
		var me *MismatchError
		if tt.wantErr == ErrMismatch && (!errors.As(err, &me) || me.Want != want) {
			t.Errorf("%s: error %v is not a MismatchError for %s", tt.name, err, want)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	g := GUID(sha1.Sum(data))
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 64<<10)
	for b.Loop() {
		if _, err := io.CopyBuffer(io.Discard, NewReader(bytes.NewReader(data), g, int64(len(data))), buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseEveryByte: ParseBytes takes the 22 hex digits in every place
// and refuses every other byte there, naming the pair it is in.
func TestParseEveryByte(t *testing.T) {
	const hexDigits = "0123456789abcdefABCDEF"
	for c := range 256 {
		for _, at := range []int{0, 1, 22, 39} {
			b := []byte(strings.Repeat("a", 40))
			b[at] = byte(c)
			g, err := ParseBytes(b)
			if strings.IndexByte(hexDigits, byte(c)) < 0 {
				want := fmt.Sprintf("bad character at %d", at&^1)
				if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), want) || g != Null {
					t.Fatalf("byte %#x at %d: %v, %v; want an error saying %q", c, at, g, err, want)
				}
				continue
			}
			if err != nil {
				t.Fatalf("byte %q at %d: %v", byte(c), at, err)
			}
			v, _ := strconv.ParseUint(string(b[at&^1:at&^1+2]), 16, 8)
			if g[at/2] != byte(v) || g[(at/2+1)%20] != 0xaa {
				t.Fatalf("byte %q at %d: parsed %v", byte(c), at, g)
			}
		}
	}
}

// BenchmarkParseBytes parses one GUID, as for every file literal's header
// and every record of a dump.
func BenchmarkParseBytes(b *testing.B) {
	s := []byte("7df441e28dbe1587bf20d951073a7b6aa78b06b4")
	for b.Loop() {
		if _, err := ParseBytes(s); err != nil {
			b.Fatal(err)
		}
	}
}
