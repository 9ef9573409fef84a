package dumpfile

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/zeebo/blake3"
)

// sample writes a dump with n file literals of the given sizes in one
// APPLY MESSAGE line, then an APPLY SUB line, and returns it with the
// offsets where each command line starts.
func sample(t testing.TB, compress bool, sizes ...int) ([]byte, []int64) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Created: time.Unix(1795877546, 0), Host: "mail1.example.org", Version: "v1.0.0"},
		Options{Compress: compress})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, uint64(len(sizes))))
	var offsets []int64
	dl := w.DL()
	var total int64
	if len(sizes) > 0 {
		offsets = append(offsets, dl.Written())
		dl.BeginLine("APPLY", "MESSAGE")
		dl.BeginList()
		for _, n := range sizes {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			g, _, _ := guid.Of(bytes.NewReader(b))
			if err := dl.File("default", g, int64(n), bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			total += int64(n)
		}
		dl.EndList()
		if err := dl.EndLine(); err != nil {
			t.Fatal(err)
		}
	}
	offsets = append(offsets, dl.Written())
	writeSub(t, dl)
	offsets = append(offsets, dl.Written())
	if err := w.Close(Counts{Mailboxes: 0, Messages: int64(len(sizes)), Bytes: total}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), offsets
}

// writeSub writes an APPLY SUB line.
func writeSub(t testing.TB, dl *dlist.Writer) {
	t.Helper()
	dl.BeginLine("APPLY", "SUB")
	dl.BeginKVList()
	dl.Key("USERID")
	dl.Atom("alice")
	dl.Key("MBOXNAME")
	dl.Atom("user.alice.Sent")
	dl.EndList()
	if err := dl.EndLine(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every command of a dump, reading file literal bodies
// fully when readBodies is set, and returns the commands as "VERB NAME@offset".
func readAll(r io.Reader, readBodies bool) ([]string, *Reader, error) {
	d, err := NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	var cmds []string
	for {
		verb, name, off, err := d.Next()
		if err == io.EOF {
			return cmds, d, nil
		}
		if err != nil {
			return cmds, d, err
		}
		cmds = append(cmds, fmt.Sprintf("%s %s@%d", verb, name, off))
		if readBodies && name == "MESSAGE" {
			for {
				t, err := d.DL().Next()
				if err != nil {
					return cmds, d, err
				}
				if t.Kind == dlist.File {
					if _, err := io.Copy(io.Discard, guid.NewReader(d.DL().Body(), t.File.GUID, t.File.Size)); err != nil {
						return cmds, d, err
					}
				}
				if t.Kind == dlist.End {
					break
				}
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		compress bool
		sizes    []int
	}{
		{"empty", false, nil},
		{"small", false, []int{0, 1, 100, 5000}},
		{"large literal", false, []int{3 << 20, 10, 700 << 10}},
		{"zstd", true, []int{1000, 2 << 20}},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"onebyte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"dataerr", iotest.DataErrReader},
	}
	for _, tt := range tests {
		b, offs := sample(t, tt.compress, tt.sizes...)
		if tt.compress != bytes.HasPrefix(b, zstdMagic) {
			t.Fatalf("%s: compressed %v but magic %x", tt.name, tt.compress, b[:4])
		}
		for _, rd := range readers {
			if rd.name == "onebyte" && len(b) > 1<<20 {
				continue // slow and adds nothing over half
			}
			for _, bodies := range []bool{false, true} {
				cmds, d, err := readAll(rd.wrap(bytes.NewReader(b)), bodies)
				if err != nil {
					t.Fatalf("%s/%s: %v", tt.name, rd.name, err)
				}
				want := []string{fmt.Sprintf("APPLY SUB@%d", offs[len(offs)-2])}
				if len(tt.sizes) > 0 {
					want = append([]string{fmt.Sprintf("APPLY MESSAGE@%d", offs[0])}, want...)
				}
				if fmt.Sprint(cmds) != fmt.Sprint(want) {
					t.Errorf("%s/%s: commands %v, want %v", tt.name, rd.name, cmds, want)
				}
				tr := d.Trailer()
				if tr == nil {
					t.Fatalf("%s/%s: no trailer", tt.name, rd.name)
				}
				var total int64
				for _, n := range tt.sizes {
					total += int64(n)
				}
				if tr.Messages != int64(len(tt.sizes)) || tr.Bytes != total || tr.Offset != offs[len(offs)-1] {
					t.Errorf("%s/%s: trailer %+v, want %d messages, %d bytes at %d", tt.name, rd.name, tr.Counts, len(tt.sizes), total, offs[len(offs)-1])
				}
				if tr.Sum != tr.BLAKE3 {
					t.Errorf("%s/%s: sum %x != trailer %x", tt.name, rd.name, tr.Sum, tr.BLAKE3)
				}
				if hdr := d.Header(); hdr.Host != "mail1.example.org" || hdr.Version != "v1.0.0" || hdr.Format != 1 || hdr.Created.Unix() != 1795877546 {
					t.Errorf("%s/%s: header %+v", tt.name, rd.name, hdr)
				}
			}
		}
	}
}

// TestDigestIsOverPlainText checks the digest against an independent
// BLAKE3 of the bytes before the trailer line.
func TestDigestIsOverPlainText(t *testing.T) {
	b, offs := sample(t, false, 10, 20)
	tr := offs[len(offs)-1]
	want := blake3.Sum256(b[:tr])
	line := string(b[tr:])
	if !strings.HasSuffix(line, fmt.Sprintf("BLAKE3 %x)\r\n", want)) {
		t.Fatalf("trailer %q does not carry %x", line, want)
	}
}

func TestDamage(t *testing.T) {
	b, offs := sample(t, false, 100, 300<<10, 5)
	trailer := offs[len(offs)-1]
	flip := func(off int) []byte {
		c := bytes.Clone(b)
		c[off] ^= 0x01
		return c
	}
	tests := []struct {
		name    string
		input   []byte
		want    []error // all must match
		trailer bool    // Trailer() is set
	}{
		{"flip in body", flip(int(offs[0]) + 2000), []error{ErrDigest}, true},
		{"flip in header value", flip(30), []error{ErrDigest}, true},
		{"flip in digest", func() []byte { c := bytes.Clone(b); c[len(c)-5] = 'x'; return c }(), []error{ErrFormat}, false},
		{"other digest", func() []byte {
			c := bytes.Clone(b)
			i := bytes.LastIndex(c, []byte("BLAKE3 ")) + 7
			if c[i] == '0' {
				c[i] = '1'
			} else {
				c[i] = '0'
			}
			return c
		}(), []error{ErrDigest}, true},
		{"trailing byte", append(bytes.Clone(b), 'x'), []error{ErrTrailing}, true},
		{"trailing line", append(bytes.Clone(b), "APPLY SUB %(USERID a MBOXNAME b)\r\n"...), []error{ErrTrailing}, true},
		{"trailing and digest", append(flip(int(offs[0])+50), '\n'), []error{ErrTrailing, ErrDigest}, true},
		{"truncated at line end", b[:trailer], []error{ErrNoTrailer}, false},
		{"truncated in trailer", b[:len(b)-3], []error{dlist.ErrTruncated}, false},
		{"truncated in body", b[:offs[0]+1000], []error{dlist.ErrTruncated}, false},
		{"trailer count not a number", bytes.Replace(b, []byte("MESSAGES 3"), []byte("MESSAGES x"), 1), []error{ErrFormat}, false},
	}
	for _, tt := range tests {
		_, d, err := readAll(bytes.NewReader(tt.input), false)
		for _, w := range tt.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: error %v, want %v", tt.name, err, w)
			}
		}
		if d != nil && (d.Trailer() != nil) != tt.trailer {
			t.Errorf("%s: trailer %+v, want set=%v", tt.name, d.Trailer(), tt.trailer)
		}
	}
}

func TestNotDump(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"empty", "", ErrNotDump},
		{"text", "hello world\n", ErrNotDump},
		{"binary", "\x00\x01\x02\x03garbage", ErrNotDump},
		{"other dlist", "APPLY SUB %(USERID a MBOXNAME b)\r\n", ErrNotDump},
		{"header not kvlist", "MBTOOL HEADER (1 2)\r\n", ErrNotDump},
		{"no format", "MBTOOL HEADER %(CREATED 1)\r\n", ErrNotDump},
		{"format 0", "MBTOOL HEADER %(FORMAT 0)\r\n", ErrVersion},
		{"format 2", "MBTOOL HEADER %(FORMAT 2 CREATED 1 HOST h MBTOOL v9)\r\n", ErrVersion},
		{"bad zstd", "\x28\xb5\x2f\xfdnot really zstd", ErrNotDump},
	}
	for _, tt := range tests {
		_, err := NewReader(strings.NewReader(tt.input))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestReadError(t *testing.T) {
	b, _ := sample(t, false, 100<<10)
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(b[:50<<10]), iotest.ErrReader(boom))
	_, _, err := readAll(r, true)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
}

func TestWriterClosedTwice(t *testing.T) {
	w, err := NewWriter(io.Discard, Header{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(Counts{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(Counts{}); err == nil {
		t.Fatal("second Close succeeded")
	}
}

// TestTailHasher feeds reads of every size around the hold window through
// the tail hasher and checks the digest of every prefix it can still give.
func TestTailHasher(t *testing.T) {
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	sources := map[string]func(io.Reader) io.Reader{
		"whole": func(r io.Reader) io.Reader { return r },
		"half":  iotest.HalfReader, // chunks filled by several reads of the source
		"odd":   func(r io.Reader) io.Reader { return &oddReader{r: r} },
	}
	for name, src := range sources {
		for _, chunk := range []int{1, 1000, 64 << 10, 256 << 10, 256<<10 + 1, 1 << 20, 3 << 20} {
			testTailHasher(t, data, src(bytes.NewReader(data)), fmt.Sprintf("%s, chunk %d", name, chunk), chunk)
		}
	}
}

// oddReader reads at most 7777 bytes at a time: no read ends on a chunk
// boundary of the tail hasher.
type oddReader struct{ r io.Reader }

func (o *oddReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 7777)]) }

func testTailHasher(t *testing.T, data []byte, src io.Reader, what string, chunk int) {
	t.Helper()
	th := newTailHasher(src)
	p := make([]byte, chunk)
	var got []byte
	for {
		k, err := th.Read(p)
		got = append(got, p[:k]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s: read %d bytes, not the %d of the source", what, len(got), len(data))
	}
	n := int64(len(got))
	for _, off := range []int64{n, n - 1, n - 64<<10} {
		sum, err := th.sumBefore(off)
		if err != nil {
			t.Fatalf("%s, offset %d: %v", what, off, err)
		}
		if want := blake3.Sum256(data[:off]); sum != want {
			t.Errorf("%s, offset %d: digest %x, want %x", what, off, sum, want)
		}
	}
}

// An unsealed stream (restore --repo's pipe within the process) carries
// no digest: a Reader opened unsealed reads it through, with its counts,
// and still wants its trailer; an ordinary Reader refuses it, so that
// one never passes for a dump.
func TestUnsealed(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Created: time.Unix(1795877546, 0), Host: "h", Version: "v"}, Options{Unsealed: true})
	if err != nil {
		t.Fatal(err)
	}
	dl := w.DL()
	writeSub(t, dl)
	trailer := dl.Written()
	if err := w.Close(Counts{Messages: 7}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if !bytes.Contains(b, []byte("BLAKE3 "+strings.Repeat("0", 64))) {
		t.Fatalf("the trailer of an unsealed stream: %q", b[trailer:])
	}
	read := func(in []byte, opts ReaderOptions) (*Reader, error) {
		d, err := NewReaderWith(bytes.NewReader(in), opts)
		if err != nil {
			return nil, err
		}
		for {
			if _, _, _, err := d.Next(); err != nil {
				if err == io.EOF {
					err = nil
				}
				return d, err
			}
		}
	}
	d, err := read(b, ReaderOptions{Unsealed: true})
	if err != nil || d.Trailer() == nil || d.Trailer().Messages != 7 {
		t.Fatalf("read unsealed: %v, trailer %+v", err, d.Trailer())
	}
	if _, err := read(b, ReaderOptions{}); !errors.Is(err, ErrDigest) {
		t.Errorf("an unsealed stream read as a dump: %v, want %v", err, ErrDigest)
	}
	if _, err := read(b[:trailer], ReaderOptions{Unsealed: true}); !errors.Is(err, ErrNoTrailer) {
		t.Errorf("an unsealed stream cut before its trailer: %v, want %v", err, ErrNoTrailer)
	}
	sealed, _ := sample(t, false, 100, 5)
	if _, err := read(sealed, ReaderOptions{Unsealed: true}); err != nil {
		t.Errorf("a sealed dump read unsealed: %v", err)
	}
}

// TestReaderGoroutineEnds checks that the hashing goroutine of a Reader
// ends whichever way the Reader is left: read to its trailer, closed half
// way, or dropped half way without Close.
func TestReaderGoroutineEnds(t *testing.T) {
	b, _ := sample(t, false, 3<<20)
	before := runtime.NumGoroutine()
	for range 20 {
		if _, _, err := readAll(bytes.NewReader(b), true); err != nil {
			t.Fatal(err)
		}
		d, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		d.Close()
		// Reading on after Close must not panic; an error is fine.
		for range 3 {
			if _, _, _, err := d.Next(); err != nil {
				break
			}
		}
		d, err = NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		for {
			tok, err := d.DL().Next()
			if err != nil {
				t.Fatal(err)
			}
			if tok.Kind == dlist.File {
				break
			}
		}
		if _, err := io.CopyN(io.Discard, d.DL().Body(), 1<<20); err != nil {
			t.Fatal(err)
		}
		runtime.KeepAlive(d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before, %d after reading 60 dumps", before, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkReader reads a dump of 64 MiB of file literals through Reader,
// bodies read and discarded, as verify and list do: the cost of the
// BLAKE3 check and its copy on top of the dlist reader.
func BenchmarkReader(b *testing.B) {
	sizes := make([]int, 64)
	for i := range sizes {
		sizes[i] = 1 << 20
	}
	data, _ := sample(b, false, sizes...)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		d, err := NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, name, _, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if name == "MESSAGE" {
				for {
					tok, err := d.DL().Next()
					if err != nil {
						b.Fatal(err)
					}
					if tok.Kind == dlist.End {
						break
					}
					if tok.Kind == dlist.File {
						if _, err := io.Copy(io.Discard, d.DL().Body()); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		}
		d.Close()
	}
}

// TestDigestFileBytes: the trailer's digest is BLAKE3 of the bytes before
// it for dumps of many mixes of file sizes written from memory, files
// larger than a write (writeSize) among them, which go out without the
// buffer, and every third file streamed (dlist's File); and the reader
// agrees. Written in the background (Options.Background: each full
// buffer written a buffer behind), with zstd or not, the dump is the
// same bytes.
func TestDigestFileBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mixes := [][]int{
		{1},
		{writeSize - 200, 500, 3},
		{writeSize + 1},
		{10, 2*writeSize + 3, 7, writeSize},
	}
	for range 6 {
		var mix []int
		for range 1 + rng.IntN(40) {
			n := rng.IntN(64 << 10)
			if rng.IntN(8) == 0 {
				n = rng.IntN(3 * writeSize)
			}
			mix = append(mix, n)
		}
		mixes = append(mixes, mix)
	}
	for _, mix := range mixes {
		bodies := make([][]byte, len(mix))
		var total int64
		for i, n := range mix {
			bodies[i] = make([]byte, n)
			for j := range bodies[i] {
				bodies[i][j] = byte(rng.Uint32())
			}
			total += int64(n)
		}
		write := func(opts Options) []byte {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, Header{Created: time.Unix(1795877546, 0), Host: "h", Version: "v"}, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			dl := w.DL()
			dl.BeginLine("APPLY", "MESSAGE")
			dl.BeginList()
			for i, body := range bodies {
				g := guid.GUID(sha1.Sum(body))
				if i%3 == 2 {
					err = dl.File("default", g, int64(len(body)), bytes.NewReader(body))
				} else {
					err = dl.FileBytes("default", g, body)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			dl.EndList()
			if err := dl.EndLine(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(Counts{Messages: int64(len(mix)), Bytes: total}); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
		b := write(Options{})
		if bg := write(Options{Background: true}); !bytes.Equal(bg, b) {
			t.Fatalf("%d files: written in the background, %d bytes differ from the %d written in turn", len(mix), len(bg), len(b))
		}
		z, bgz := write(Options{Compress: true}), write(Options{Compress: true, Background: true})
		if !bytes.Equal(z, bgz) {
			t.Fatalf("%d files: zstd written in the background differs", len(mix))
		}
		tr := bytes.LastIndex(b, []byte("MBTOOL TRAILER"))
		want := blake3.Sum256(b[:tr])
		if !strings.HasSuffix(string(b[tr:]), fmt.Sprintf("BLAKE3 %x)\r\n", want)) {
			t.Fatalf("%d files: trailer %q does not carry %x", len(mix), b[tr:], want)
		}
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, _, _, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%d files: %v", len(mix), err)
			}
			if err := r.SkipLine(); err != nil {
				t.Fatalf("%d files: %v", len(mix), err)
			}
		}
	}
}

// failAfter accepts limit bytes and fails every write after them; closed
// marks it as the caller's again (Abort has returned): a write then is a
// write from a goroutine left running.
type failAfter struct {
	limit, n int
	closed   bool
	late     int
}

var errFull = errors.New("no space left")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.closed {
		f.late++
	}
	if f.n+len(p) > f.limit {
		return 0, errFull
	}
	f.n += len(p)
	return len(p), nil
}

// TestBackgroundWriteError: a write that fails in the background
// (Options.Background) fails a later call or Close with its error, never
// returns success for a dump not written, and nothing writes to dst once
// Abort has returned (the race detector watches closed and late too).
func TestBackgroundWriteError(t *testing.T) {
	const n, size = 40, 320 << 10
	all := make([]byte, n*size) // random, none twice: zstd keeps its size
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range all {
		all[i] = byte(rng.Uint32())
	}
	for _, limit := range []int{100, writeSize / 2, 3*writeSize + 5} {
		for _, compress := range []bool{false, true} {
			dst := &failAfter{limit: limit}
			w, err := NewWriter(dst, Header{Created: time.Unix(1795877546, 0), Host: "h", Version: "v"},
				Options{Background: true, Compress: compress})
			if err != nil {
				t.Fatal(err)
			}
			dl := w.DL()
			dl.BeginLine("APPLY", "MESSAGE")
			dl.BeginList()
			var werr error
			for i := range n {
				body := all[i*size : (i+1)*size]
				if werr = dl.FileBytes("default", guid.GUID(sha1.Sum(body)), body); werr != nil {
					break
				}
			}
			if werr == nil {
				dl.EndList()
				dl.EndLine()
				werr = w.Close(Counts{Messages: n, Bytes: n * size})
			}
			w.Abort()
			dst.closed = true
			if !errors.Is(werr, errFull) {
				t.Errorf("limit %d, zstd %v: error %v, want %v", limit, compress, werr, errFull)
			}
			if dst.late > 0 {
				t.Errorf("limit %d, zstd %v: %d writes after Abort returned", limit, compress, dst.late)
			}
		}
	}
}
