package dlist

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"io"
	"strings"
	"testing"
)

// scribbleLender lends data in pieces of 1 to step bytes, each in a buffer
// of its own, which it overwrites as soon as the Lender contract lets it:
// at the next Lend or Read unless held, else when the last hold ends. A
// Reader that used lent bytes for longer than the contract says would
// read the scribbles.
type scribbleLender struct {
	data []byte
	off  int
	step int
	last *lentPiece // the piece of the last Lend
	live int        // pieces held
}

type lentPiece struct {
	l    *scribbleLender
	b    []byte
	pins int
	gone bool // the Lender has moved on
}

func (p *lentPiece) Release() {
	if p.pins <= 0 {
		panic("Release without Hold")
	}
	p.pins--
	if p.pins == 0 {
		p.l.live--
		if p.gone {
			scribble(p.b)
		}
	}
}

func scribble(b []byte) {
	for i := range b {
		b[i] = "#(\"{%"[i%5]
	}
}

// next returns the size of the next piece, moving on from the last.
func (l *scribbleLender) next() int {
	if p := l.last; p != nil {
		p.gone = true
		if p.pins == 0 {
			scribble(p.b)
		}
		l.last = nil
	}
	n := 1 + (l.off*7919)%l.step
	return min(n, len(l.data)-l.off)
}

func (l *scribbleLender) Read(b []byte) (int, error) {
	n := min(l.next(), len(b))
	if n == 0 {
		return 0, io.EOF
	}
	copy(b, l.data[l.off:l.off+n])
	l.off += n
	return n, nil
}

func (l *scribbleLender) Lend() ([]byte, error) {
	n := l.next()
	if n == 0 {
		return nil, io.EOF
	}
	p := &lentPiece{l: l, b: bytes.Clone(l.data[l.off : l.off+n])}
	l.off += n
	l.last = p
	return p.b, nil
}

func (l *scribbleLender) Hold() Pin {
	if l.last == nil {
		return nil
	}
	if l.last.pins == 0 {
		l.live++
	}
	l.last.pins++
	return l.last
}

// tokens reads r to its end or first error: every token, with the bodies
// of file literals read through LendBody (holding each piece until the
// body is read, then checking it against the body's GUID) or Body.
func tokens(t *testing.T, r *Reader, lend bool) string {
	t.Helper()
	var sb strings.Builder
	for {
		tok, err := r.Next()
		if err != nil {
			fmt.Fprintf(&sb, "error %v\n", err)
			return sb.String()
		}
		fmt.Fprintf(&sb, "%v %q key=%v q=%v s=%v off=%d line=%d %+v\n", tok.Kind, tok.Bytes, tok.IsKey, tok.Quoted, tok.Sync, tok.Offset, tok.Line, tok.File)
		if tok.Kind != File {
			continue
		}
		var body []byte
		if lend {
			var held [][]byte
			var pins []Pin
			for {
				b, pin, err := r.LendBody(1 << 20)
				if err != nil {
					if err != io.EOF {
						fmt.Fprintf(&sb, "body error %v\n", err)
					}
					break
				}
				if pin == nil {
					b = bytes.Clone(b)
				} else {
					pins = append(pins, pin)
				}
				held = append(held, b)
			}
			body = bytes.Join(held, nil)
			for _, p := range pins {
				p.Release()
			}
		} else {
			var err error
			body, err = io.ReadAll(r.Body())
			if err != nil {
				fmt.Fprintf(&sb, "body error %v\n", err)
			}
		}
		fmt.Fprintf(&sb, "body %d bytes, sha1 %x\n", len(body), sha1.Sum(body))
	}
}

// TestLender: a Reader parsing lent bytes gives the same tokens, bodies,
// offsets and errors as one reading copies, whatever the pieces' sizes,
// and LendBody's held bytes stay what they were while the Reader reads on.
func TestLender(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	ins := append([]string{
		"APPLY MESSAGE (%{p " + fmt.Sprintf("%x", sha1.Sum(body)) + " 320000}\r\n" + string(body) + " %{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 3}\nxyz)\r\n" +
			"APPLY X %(K \"v\\\"w\" L {2+}\r\nab F (\\Seen NIL) " + strings.Repeat("A", 70000) + " \"" + strings.Repeat("q", 70000) + "\")\r\nEXIT\r\n",
		"APPLY MESSAGE (%{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 100}\r\nshort",
	}, specLines...)
	for _, wl := range transcriptLines(t) {
		ins = append(ins, string(wl.text))
	}
	for i, in := range ins {
		want := tokens(t, NewReader(strings.NewReader(in)), false)
		for _, step := range []int{1, 7, 4096, 300000} {
			l := &scribbleLender{data: []byte(in), step: step}
			got := tokens(t, NewReader(l), true)
			if got != want {
				t.Fatalf("input %d, pieces up to %d bytes: got\n%s\nwant\n%s", i, step, got, want)
			}
			if l.live != 0 {
				t.Fatalf("input %d: %d pieces still held", i, l.live)
			}
		}
	}
}

// TestLendBodyCopies: from a source that does not lend, LendBody gives the
// Reader's own bytes and no Pin.
func TestLendBodyCopies(t *testing.T) {
	r := NewReader(strings.NewReader("M F %{p 0a0a9f2a6772942557ab5355d76af442f8f65e01 3}\nxyz\r\n"))
	for range 3 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	b, pin, err := r.LendBody(2)
	if string(b) != "xy" || pin != nil || err != nil {
		t.Fatalf("LendBody = %q, %v, %v", b, pin, err)
	}
	b, pin, err = r.LendBody(5)
	if string(b) != "z" || pin != nil || err != nil {
		t.Fatalf("LendBody = %q, %v, %v", b, pin, err)
	}
	if _, _, err = r.LendBody(5); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}
