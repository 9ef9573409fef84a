package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/syncrec"
)

// layout is where things are in a dump, from parsing it.
type layout struct {
	size     int64
	lines    []span // command lines, the header first and the trailer last
	literals []lit
	meta     []span // everything outside literal bodies
	records  []recRef
}

type span struct{ start, end int64 } // [start, end)

type lit struct {
	header, body, size int64 // offsets of %{ and of the first body byte
}

type recRef struct {
	mailbox string
	uid     uint32
}

func (l *layout) line(off int64) span {
	i := sort.Search(len(l.lines), func(i int) bool { return l.lines[i].end > off })
	if i == len(l.lines) {
		return l.lines[len(l.lines)-1] // at the very end: the trailer's
	}
	return l.lines[i]
}

func (l *layout) literalAt(off int64) *lit {
	for i := range l.literals {
		x := &l.literals[i]
		if off >= x.body && off < x.body+x.size {
			return x
		}
	}
	return nil
}

// randomMeta returns a uniformly chosen offset outside literal bodies.
func (l *layout) randomMeta(rnd *rand.Rand) int64 {
	var total int64
	for _, s := range l.meta {
		total += s.end - s.start
	}
	n := rnd.Int64N(total)
	for _, s := range l.meta {
		if n < s.end-s.start {
			return s.start + n
		}
		n -= s.end - s.start
	}
	panic("unreachable")
}

func parseLayout(t testing.TB, b []byte) *layout {
	t.Helper()
	l := &layout{size: int64(len(b))}
	d, err := dumpfile.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	prev := int64(0)
	for {
		_, name, off, err := d.Next()
		l.lines = append(l.lines, span{prev, off})
		prev = off
		if err == io.EOF {
			tr := d.Trailer()
			l.lines = append(l.lines, span{tr.Offset, tr.End})
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dl := d.DL()
		switch name {
		case "MESSAGE":
			for {
				tok, err := dl.Next()
				if err != nil {
					t.Fatal(err)
				}
				if tok.Kind == dlist.End {
					break
				}
				if tok.Kind == dlist.File {
					l.literals = append(l.literals, lit{header: tok.Offset, body: dl.Offset(), size: tok.File.Size})
				}
			}
		case "MAILBOX":
			mb, err := syncrec.ReadMailbox(dl, func(r *syncrec.Record) error {
				if !r.Expunged() {
					l.records = append(l.records, recRef{uid: r.UID})
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := len(l.records) - 1; i >= 0 && l.records[i].mailbox == ""; i-- {
				l.records[i].mailbox = mb.Name
			}
		}
	}
	at := int64(0)
	for _, x := range l.literals {
		l.meta = append(l.meta, span{at, x.body})
		at = x.body + x.size
	}
	l.meta = append(l.meta, span{at, l.size})
	return l
}

// mutation is one damaged copy of the dump and where a finding must point.
type mutation struct {
	name string
	// data builds the damaged dump, reusing buf's memory.
	data func(buf []byte) []byte
	// ok reports whether a finding points at the damage.
	ok func(f Finding) bool
}

func inSpan(s span, off int64, slack int64) bool {
	return off >= s.start && off <= s.end+slack
}

// TestCorruption damages the fixture's dump in well over a thousand ways
// and checks that every one is detected, with a finding that points at the
// damage: for bytes of a file literal, that literal; elsewhere, the command
// line that holds the damage (a mailbox's CRC finding points at its APPLY
// MAILBOX line); or, for damage that leaves the dump meaning the same
// (a hex digit's case, say), the trailer's digest.
func TestCorruption(t *testing.T) {
	plain, _ := fixture(t)
	lay := parseLayout(t, plain)
	rnd := rand.New(rand.NewPCG(20251128, 6))
	var muts []mutation

	// where accepts a finding in the line holding off (or its literal,
	// for body bytes); slack allows for a shift of one byte.
	where := func(off int64) func(Finding) bool {
		if x := lay.literalAt(off); x != nil {
			return func(f Finding) bool { return f.Offset == x.header }
		}
		s := lay.line(off)
		// Damage that removes a line's end (a closing parenthesis, the
		// CR LF) can only show when the parser reaches the next line: a
		// parse finding there still points at it.
		next := lay.line(s.end)
		return func(f Finding) bool {
			return inSpan(s, f.Offset, 1) || (f.Kind == KindParse && f.Offset >= s.start && f.Offset <= next.end)
		}
	}
	offset := func(i int) int64 {
		if i%2 == 0 {
			return rnd.Int64N(lay.size)
		}
		return lay.randomMeta(rnd)
	}
	for i := 0; i < 500; i++ {
		off := offset(i)
		bit := byte(1) << rnd.IntN(8)
		muts = append(muts, mutation{name: fmt.Sprintf("flip bit %#x at %d", bit, off), ok: where(off),
			data: func(b []byte) []byte {
				b = append(b[:0], plain...)
				b[off] ^= bit
				return b
			}})
	}
	for i := 0; i < 150; i++ {
		off := offset(i)
		muts = append(muts, mutation{name: fmt.Sprintf("delete byte at %d", off), ok: where(off),
			data: func(b []byte) []byte { return append(append(b[:0], plain[:off]...), plain[off+1:]...) }})
	}
	for i := 0; i < 150; i++ {
		off := offset(i)
		c := byte(rnd.IntN(256))
		data := func(b []byte) []byte { return append(append(append(b[:0], plain[:off]...), c), plain[off:]...) }
		ok := where(off)
		if off > 0 {
			// Inserted between two items: either side is the place.
			prev := where(off - 1)
			ok = func(f Finding) bool { return prev(f) || where(off)(f) }
		}
		muts = append(muts, mutation{name: fmt.Sprintf("insert %#x at %d", c, off), data: data, ok: ok})
	}
	for i := 0; i < 150; i++ {
		off := 1 + rnd.Int64N(lay.size-1)
		if i%2 == 1 {
			off = lay.randomMeta(rnd)
		}
		ok := where(off)
		if x := lay.literalAt(off); x != nil {
			s := lay.line(off)
			ok = func(f Finding) bool { return inSpan(s, f.Offset, 0) && f.Offset >= x.header }
		}
		muts = append(muts, mutation{name: fmt.Sprintf("truncate at %d", off), ok: ok,
			data: func(b []byte) []byte { return append(b[:0], plain[:off]...) }})
	}
	muts = append(muts, flagEdits(t, plain, lay, rnd, 60)...)
	muts = append(muts, literalSwaps(plain, lay, rnd, 60)...)
	if len(muts) < 1000 {
		t.Fatalf("only %d mutations", len(muts))
	}

	var specific, digestOnly, header int
	kinds := map[Kind]int{}
	var buf []byte
	for _, m := range muts {
		buf = m.data(buf)
		res := run(t, bytes.NewReader(buf), Options{Workers: 2})
		if res.err != nil {
			// Only a damaged header line makes the input "not a dump".
			if (errors.Is(res.err, dumpfile.ErrNotDump) || errors.Is(res.err, dumpfile.ErrVersion)) && m.ok(Finding{Offset: 0}) {
				header++
				continue
			}
			t.Errorf("%s: %v", m.name, res)
			continue
		}
		if res.sum.OK() {
			t.Errorf("%s: not detected", m.name)
			continue
		}
		found, digest := false, false
		for _, f := range res.findings {
			if m.ok(f) && f.Kind != KindDigest {
				found = true
				kinds[f.Kind]++
				break
			}
			digest = digest || f.Kind == KindDigest
		}
		switch {
		case found:
			specific++
		case digest:
			digestOnly++
		default:
			t.Errorf("%s: no finding points at the damage:\n%v", m.name, res)
		}
	}
	t.Logf("%d mutations: %d caught at the damage, %d by the digest only, %d as a broken header; kinds %v",
		len(muts), specific, digestOnly, header, kinds)
	if specific < len(muts)*9/10 {
		t.Errorf("only %d of %d mutations caught at the damage", specific, len(muts))
	}
}

// flagEdits changes one flag of a random live record with the dump's
// SYNC_CRC and digest left alone, and with a recomputed digest: either
// way the mailbox's CRC finding must name the mailbox.
func flagEdits(t *testing.T, plain []byte, lay *layout, rnd *rand.Rand, n int) []mutation {
	flags := []string{`\Answered`, `\Flagged`, `\Draft`, `\Deleted`, `\Seen`, "$Label1", "Junk", "NewFlag"}
	var muts []mutation
	for i := 0; i < n; i++ {
		ref := lay.records[rnd.IntN(len(lay.records))]
		flag := flags[rnd.IntN(len(flags))]
		var edited []byte // made once, for both mutations
		edit := func() []byte {
			if edited != nil {
				return edited
			}
			edited = rewrite(t, plain, func(l *dlist.Line) *dlist.Line {
				if l.Value.Key != "MAILBOX" || l.Value.Get("MBOXNAME").String() != ref.mailbox {
					return l
				}
				records(l, func(r *dlist.Value) {
					if r.Get("UID").String() != fmt.Sprint(ref.uid) {
						return
					}
					fl := r.Get("FLAGS")
					kept := fl.Children[:0]
					removed := false
					for _, c := range fl.Children {
						if strings.EqualFold(string(c.Data), flag) {
							removed = true
							continue
						}
						kept = append(kept, c)
					}
					fl.Children = kept
					if !removed {
						fl.Append(dlist.NewFlag(flag))
					}
				})
				return l
			})
			return edited
		}
		mb := ref.mailbox
		ok := func(f Finding) bool { return f.Kind == KindCRC && f.Mailbox == mb }
		name := fmt.Sprintf("%s UID %d flag %s", mb, ref.uid, flag)
		muts = append(muts, mutation{name: name + " (digest recomputed)", ok: ok, data: func(b []byte) []byte {
			return append(b[:0], edit()...)
		}})
		// The same edit with the old trailer.
		muts = append(muts, mutation{name: name, ok: ok, data: func(b []byte) []byte {
			e := edit()
			edited = nil
			tr := bytes.LastIndex(plain, []byte("MBTOOL TRAILER"))
			return append(append(b[:0], e[:bytes.LastIndex(e, []byte("MBTOOL TRAILER"))]...), plain[tr:]...)
		}})
	}
	return muts
}

// literalSwaps exchanges the bodies of two file literals: of the same
// size (the framing survives; both hashes fail) or of different sizes
// (the first one read fails, the framing breaks after it); and whole
// literals, header and body, between two APPLY MESSAGE lines, so that a
// mailbox's message arrives only after the mailbox (no-message).
func literalSwaps(plain []byte, lay *layout, rnd *rand.Rand, n int) []mutation {
	bySize := map[int64][]int{}
	for i, x := range lay.literals {
		bySize[x.size] = append(bySize[x.size], i)
	}
	var same [][2]int
	for _, idx := range bySize {
		for a := 0; a < len(idx); a++ {
			for b := a + 1; b < len(idx); b++ {
				same = append(same, [2]int{idx[a], idx[b]})
			}
		}
	}
	sort.Slice(same, func(i, j int) bool {
		return same[i][0] < same[j][0] || same[i][0] == same[j][0] && same[i][1] < same[j][1]
	})
	var muts []mutation
	for i := 0; i < n; i++ {
		var a, b int
		kind := i % 3
		switch {
		case kind == 0 && len(same) > 0:
			p := same[rnd.IntN(len(same))]
			a, b = p[0], p[1]
		default:
			a, b = rnd.IntN(len(lay.literals)), rnd.IntN(len(lay.literals))
			for lay.line(lay.literals[a].header) == lay.line(lay.literals[b].header) || lay.literals[a].size == lay.literals[b].size {
				a, b = rnd.IntN(len(lay.literals)), rnd.IntN(len(lay.literals))
			}
			if a > b {
				a, b = b, a
			}
		}
		x, y := lay.literals[a], lay.literals[b]
		switch kind {
		case 0, 1: // bodies
			data := func(b []byte) []byte {
				return swap(b, plain, span{x.body, x.body + x.size}, span{y.body, y.body + y.size})
			}
			hx := x.header
			muts = append(muts, mutation{name: fmt.Sprintf("swap bodies of literals %d and %d (%d, %d bytes)", a, b, x.size, y.size), data: data,
				ok: func(f Finding) bool { return f.Kind == KindLiteral && f.Offset == hx }})
		case 2: // whole literals across lines
			data := func(b []byte) []byte {
				return swap(b, plain, span{x.header, x.body + x.size}, span{y.header, y.body + y.size})
			}
			// The literal moved later arrives after the mailbox that
			// needs it: that mailbox's record misses it.
			muts = append(muts, mutation{name: fmt.Sprintf("swap literals %d and %d across lines", a, b), data: data,
				ok: func(f Finding) bool { return f.Kind == KindNoMessage }})
		}
	}
	return muts
}

// swap returns b with the bytes of the spans x and y (x before y,
// disjoint) exchanged, in out's memory.
func swap(out, b []byte, x, y span) []byte {
	out = append(out[:0], b[:x.start]...)
	out = append(out, b[y.start:y.end]...)
	out = append(out, b[x.end:y.start]...)
	out = append(out, b[x.start:x.end]...)
	out = append(out, b[y.end:]...)
	return out
}
