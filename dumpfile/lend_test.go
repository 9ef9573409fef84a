package dumpfile

import (
	"bytes"
	"crypto/sha1"
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
)

// heldLiteral is a file literal's bytes as lent, still held.
type heldLiteral struct {
	g      guid.GUID
	pieces [][]byte
	pins   []dlist.Pin
}

// check releases h after checking that its bytes are still the literal's.
func (h *heldLiteral) check(t *testing.T, what string) {
	t.Helper()
	s := sha1.New()
	for _, p := range h.pieces {
		s.Write(p)
	}
	if g := guid.GUID(s.Sum(nil)); g != h.g {
		t.Fatalf("%s: held bytes of %s changed while held: they hash to %s", what, h.g, g)
	}
	for _, p := range h.pins {
		p.Release()
	}
}

// TestHeldLiterals reads a dump's file literals through LendBody and
// keeps up to the last `keep` of them held while reading on: held bytes
// must not change (no chunk is reused while held), the dump's digest must
// still check, and the chunks must stay within their bound: maxChunks
// when nothing is held, maxChunks+maxHeld when something is.
func TestHeldLiterals(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var sizes []int
	for range 150 {
		switch rnd.IntN(4) {
		case 0:
			sizes = append(sizes, rnd.IntN(300<<10)) // often over a chunk, in at most 3
		default:
			sizes = append(sizes, rnd.IntN(20<<10))
		}
	}
	sizes = append(sizes, 0, 1)
	b, _ := sample(t, false, sizes...)
	sources := map[string]func(io.Reader) io.Reader{
		"whole": func(r io.Reader) io.Reader { return r },
		"half":  iotest.HalfReader,
		"odd":   func(r io.Reader) io.Reader { return &oddReader{r: r} },
	}
	for name, src := range sources {
		// Each literal held holds at most 3 chunks, the one being read 3
		// more, and the window 3: the reading must not wait for a chunk
		// only the test would release.
		for _, keep := range []int{0, 1, (maxChunks+maxHeld-3)/3 - 1} {
			what := fmt.Sprintf("%s, keeping %d", name, keep)
			d, err := NewReader(src(bytes.NewReader(b)))
			if err != nil {
				t.Fatal(err)
			}
			var held []*heldLiteral
			literals := 0
			for {
				verb, cmd, _, err := d.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if verb != "APPLY" || cmd != "MESSAGE" {
					continue
				}
				for {
					tok, err := d.DL().Next()
					if err != nil {
						t.Fatal(err)
					}
					if tok.Kind == dlist.End {
						break
					}
					if tok.Kind != dlist.File {
						continue
					}
					h := &heldLiteral{g: tok.File.GUID}
					for {
						p, pin, err := d.DL().LendBody(1 << 20)
						if err == io.EOF {
							break
						}
						if err != nil {
							t.Fatal(err)
						}
						if pin == nil {
							t.Fatalf("%s: a dump's bytes not lent", what)
						}
						h.pieces, h.pins = append(h.pieces, p), append(h.pins, pin)
					}
					literals++
					held = append(held, h)
					if len(held) > keep {
						held[0].check(t, what)
						held = held[1:]
					}
				}
			}
			if literals != len(sizes) {
				t.Fatalf("%s: %d literals read, want %d", what, literals, len(sizes))
			}
			for _, h := range held {
				h.check(t, what)
			}
			limit := maxChunks + maxHeld
			if d.th.chunks > limit {
				t.Errorf("%s: %d chunks made, more than %d", what, d.th.chunks, limit)
			}
			d.Close()
		}
	}
	// Nothing held: the chunks of before.
	_, d, err := readAll(bytes.NewReader(b), true)
	if err != nil {
		t.Fatal(err)
	}
	if d.th.chunks > maxChunks {
		t.Errorf("reading with no hold made %d chunks, more than %d", d.th.chunks, maxChunks)
	}
}

// TestLendBodyCapped: bytes LendBody returns end where they end: a caller
// appending to them gets memory of its own, and the dump's bytes after
// them, in the same chunk, stay what they are.
func TestLendBodyCapped(t *testing.T) {
	b, _ := sample(t, false, 100, 100, 100)
	d, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	literals := 0
	for {
		verb, cmd, _, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after appending to lent bytes: %v", err)
		}
		if verb != "APPLY" || cmd != "MESSAGE" {
			continue
		}
		for {
			tok, err := d.DL().Next()
			if err != nil {
				t.Fatalf("after appending to lent bytes: %v", err)
			}
			if tok.Kind == dlist.End {
				break
			}
			if tok.Kind != dlist.File {
				continue
			}
			s := sha1.New()
			for {
				p, pin, err := d.DL().LendBody(10)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				s.Write(p)
				_ = append(p, bytes.Repeat([]byte("X"), 300)...)
				if pin != nil {
					pin.Release()
				}
			}
			if g := guid.GUID(s.Sum(nil)); g != tok.File.GUID {
				t.Fatalf("literal %d: bytes hash to %s, want %s", literals, g, tok.File.GUID)
			}
			literals++
		}
	}
	if literals != 3 {
		t.Fatalf("%d literals", literals)
	}
}

// TestNewReaderErrorStopsHashing: a stream that is not a dump leaves no
// hashing goroutine behind (it used to wait for the garbage collector).
func TestNewReaderErrorStopsHashing(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 50 {
		for _, in := range []string{"garbage\r\n", "MBTOOL HEADER %(FORMAT 99)\r\n", "MBTOOL HEADER %(FORMAT x)\r\n", ""} {
			if d, err := NewReader(strings.NewReader(in)); err == nil {
				d.Close()
				t.Fatalf("%q read as a dump", in)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before, %d after 200 failed NewReader", before, runtime.NumGoroutine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
