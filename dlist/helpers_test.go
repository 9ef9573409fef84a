package dlist

import (
	"bytes"
	"crypto/sha1"

	"github.com/mbtool/mbtool/guid"
)

func sha1GUID(b []byte) guid.GUID { return guid.GUID(sha1.Sum(b)) }

// equalTrees compares two trees, ignoring Offsets. With loose set, an
// Atom and a Literal of the same bytes are equal: printing turns a Literal
// without NUL into an atom or quoted string, which parses as an Atom.
func equalTrees(a, b *Value, loose bool) bool {
	type pair struct{ a, b *Value }
	stack := []pair{{a, b}}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if (p.a == nil) != (p.b == nil) {
			return false
		}
		if p.a == nil {
			continue
		}
		ka, kb := p.a.Kind, p.b.Kind
		if loose {
			if ka == Literal {
				ka = Atom
			}
			if kb == Literal {
				kb = Atom
			}
		}
		if ka != kb || p.a.Key != p.b.Key || !bytes.Equal(p.a.Data, p.b.Data) ||
			p.a.File != p.b.File || len(p.a.Children) != len(p.b.Children) {
			return false
		}
		for i := range p.a.Children {
			stack = append(stack, pair{p.a.Children[i], p.b.Children[i]})
		}
	}
	return true
}

// printLine prints l with a fresh Writer.
func printLine(l *Line, sync bool) ([]byte, error) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetSyncLiterals(sync)
	if err := w.WriteLine(l); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
