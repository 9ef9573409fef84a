package dumpfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/zeebo/blake3"
)

// The seed corpus under testdata/fuzz/FuzzReader holds a real dump (the
// bundled sample spool's user bob, written by mbtool dump); the seeds
// added below are small dumps written by this package, plain and zstd, and
// hand-made damaged headers and trailers. Crashers found are kept there too.

// FuzzReader reads arbitrary input as a dump, header to trailer, reading
// some commands' values and file bodies and skipping others. It must never
// panic; every error must say what it is (a sentinel of this package or of
// dlist) for plain input; and a dump the reader accepts must end in a
// trailer whose digest is the BLAKE3 of the bytes before it, with nothing
// after it.
func FuzzReader(f *testing.F) {
	for _, sizes := range [][]int{nil, {0}, {1, 2, 3}, {70 << 10}} {
		for _, z := range []bool{false, true} {
			b, _ := sample(f, z, sizes...)
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",
		"MBTOOL HEADER %(FORMAT 2 CREATED 1 HOST h MBTOOL v)\r\n",
		"MBTOOL HEADER %(FORMAT 0)\r\n",
		"MBTOOL HEADER %(FORMAT 1)\r\nMBTOOL TRAILER %(MAILBOXES 0 MESSAGES 0 BYTES 0 BLAKE3 00)\r\n",
		"MBTOOL HEADER %(FORMAT 1)\r\nMBTOOL TRAILER %(MAILBOXES 18446744073709551615 MESSAGES 0 BYTES 0 BLAKE3 {3+}\r\nabc)\r\n",
		"MBTOOL HEADER %(FORMAT 1)\r\nAPPLY MESSAGE (%{default 0123456789abcdef0123456789abcdef01234567 4000000000}\r\nab)\r\n",
		"APPLY MAILBOX %(UNIQUEID x)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		plain := !bytes.HasPrefix(in, zstdMagic)
		d, err := NewReader(bytes.NewReader(in))
		if err != nil {
			if plain && !errors.Is(err, ErrNotDump) && !errors.Is(err, ErrVersion) {
				t.Fatalf("NewReader: %v wraps neither ErrNotDump nor ErrVersion", err)
			}
			return
		}
		defer d.Close()
		if h := d.Header(); h.Format < 1 || h.Format > FormatVersion {
			t.Fatalf("accepted header format %d", h.Format)
		}
		for i := 0; ; i++ {
			_, name, _, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if plain && !known(err) {
					t.Fatalf("Next: %v wraps no sentinel", err)
				}
				if _, _, _, err2 := d.Next(); err2 != err {
					t.Fatalf("error not sticky: %v, then %v", err, err2)
				}
				return
			}
			switch {
			case i%3 == 2:
				// Leave the line to Next.
			case name == "MESSAGE":
				if err := readFiles(d.DL(), i%2 == 0); err != nil {
					if err == errEOL {
						return
					}
					if plain && !known(err) {
						t.Fatalf("reading files: %v wraps no sentinel", err)
					}
					return
				}
			default:
				if _, err := d.DL().ReadValue(); err != nil {
					if plain && !known(err) {
						t.Fatalf("ReadValue: %v wraps no sentinel", err)
					}
					return
				}
			}
		}
		tr := d.Trailer()
		if tr == nil {
			t.Fatal("io.EOF without a trailer")
		}
		if tr.Sum != tr.BLAKE3 {
			t.Fatalf("accepted trailer digest %x, computed %x", tr.BLAKE3, tr.Sum)
		}
		if plain {
			if tr.End != int64(len(in)) {
				t.Fatalf("trailer ends at %d of %d bytes", tr.End, len(in))
			}
			if want := blake3.Sum256(in[:tr.Offset]); want != tr.BLAKE3 {
				t.Fatalf("accepted digest %x, BLAKE3 of the %d bytes before the trailer is %x", tr.BLAKE3, tr.Offset, want)
			}
		}
	})
}

// readFiles reads an APPLY MESSAGE line's tokens up to its end (EOL left
// for Next), reading every file body when full, else every other one in
// part.
func readFiles(r *dlist.Reader, full bool) (err error) {
	var held lentBody
	defer func() {
		if e := held.check(); err == nil {
			err = e
		}
	}()
	depth := 0
	for n := 0; ; n++ {
		t, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return dlist.ErrTruncated
			}
			return err
		}
		switch t.Kind {
		case dlist.EOL:
			// Not a list of files: Next would now skip the following line.
			return errEOL
		case dlist.List, dlist.KVList:
			depth++
		case dlist.File:
			switch {
			case full && n%4 == 3:
				// Lent and held while the reading goes on to the next
				// file: the held bytes must not change meanwhile.
				if err = held.check(); err == nil {
					err = held.lend(r)
				}
			case full:
				_, err = io.Copy(io.Discard, r.Body())
			case n%2 == 0:
				_, err = io.CopyN(io.Discard, r.Body(), 7)
				if err == io.EOF {
					err = nil
				}
			}
			if err != nil {
				return err
			}
		case dlist.End:
			if depth--; depth == 0 {
				return nil
			}
		}
	}
}

var errEOL = errors.New("line ended")

// lentBody is a file body read with LendBody, its Pins held, and a copy
// of its bytes.
type lentBody struct {
	pieces [][]byte
	copies [][]byte
	pins   []dlist.Pin
}

// lend reads the current file's body through LendBody, holding at most
// 512 KiB of it (the rest is released at once).
func (h *lentBody) lend(r *dlist.Reader) error {
	n := 0
	for {
		b, pin, err := r.LendBody(1 << 20)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if pin == nil {
			continue
		}
		if n += len(b); n > 512<<10 {
			pin.Release()
			continue
		}
		h.pieces = append(h.pieces, b)
		h.copies = append(h.copies, bytes.Clone(b))
		h.pins = append(h.pins, pin)
	}
}

// check releases what h holds, failing if a held byte changed.
func (h *lentBody) check() error {
	var err error
	for i, b := range h.pieces {
		if err == nil && !bytes.Equal(b, h.copies[i]) {
			err = fmt.Errorf("lent bytes changed while held: %q, were %q", b, h.copies[i])
		}
		h.pins[i].Release()
	}
	*h = lentBody{}
	return err
}

// known reports whether err wraps a sentinel a caller can act on.
func known(err error) bool {
	for _, s := range []error{ErrNotDump, ErrVersion, ErrDigest, ErrNoTrailer, ErrTrailing, ErrFormat,
		dlist.ErrSyntax, dlist.ErrLimit, dlist.ErrTruncated, dlist.ErrRange} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
