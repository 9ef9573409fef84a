package spill

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
)

// Names maps strings of a few kinds (mailbox names, uniqueids) to small
// values, with memory that stays flat however many it holds: a
// guidtable keyed by the SHA-1 of the kind and the string, which keeps
// the recent entries in memory and spills the rest to files (about 2
// bytes per entry stay in memory). A collision of two keys would take
// 2^80 strings. The zero Names is not usable: NewNames.
type Names struct {
	t *guidtable.Table
}

// The kinds of key the runs keep in a Names, one list for all of them.
const (
	KeyName  = "name"  // a mailbox by its name in the target (restored as, sent as)
	KeySrcID = "srcid" // a mailbox by its uniqueid in the dump
	KeyUsed  = "used"  // a uniqueid given out in this run (offline restore)
)

// NamesMemLimit bounds the memory of the recent entries of a Names.
var NamesMemLimit int64 = 1 << 20

// NewNames returns an empty Names.
func NewNames() *Names {
	return &Names{t: guidtable.New(guidtable.Options{ValueSize: 4, MemLimit: NamesMemLimit})}
}

func namesKey(kind, s string) guid.GUID {
	h := sha1.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(s))
	var g guid.GUID
	copy(g[:], h.Sum(nil))
	return g
}

// Put maps kind s to v, replacing what it mapped to.
func (n *Names) Put(kind, s string, v uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if err := n.t.Put(namesKey(kind, s), b[:]); err != nil {
		return fmt.Errorf("remembering %s %s: %w", kind, s, err)
	}
	return nil
}

// Get returns what kind s maps to, and whether it is there.
func (n *Names) Get(kind, s string) (uint32, bool, error) {
	var b [4]byte
	ok, err := n.t.Get(namesKey(kind, s), b[:])
	if err != nil {
		return 0, false, fmt.Errorf("looking up %s %s: %w", kind, s, err)
	}
	return binary.LittleEndian.Uint32(b[:]), ok, nil
}

// Close removes the files.
func (n *Names) Close() {
	if n != nil {
		n.t.Close()
	}
}
