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
	// hot keeps the values of the keys last found or put (at most
	// hotMax, then emptied: a fraction of the memory of the recent
	// entries), so that a key asked for again and again is
	// not read back from a run's file each time: a restore's commit
	// looks up each mailbox's parents several times (the user's INBOX
	// for every folder of the user), which at 20,001 mailboxes were
	// 77,000 reads of the runs.
	hot    map[guid.GUID]uint32
	hotMax int // NamesMemLimit / 1 KiB (about 60 bytes each): 1,024
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
	return &Names{t: guidtable.New(guidtable.Options{ValueSize: 4, MemLimit: NamesMemLimit}),
		hot: map[guid.GUID]uint32{}, hotMax: int(max(16, min(NamesMemLimit, 1<<30)>>10))}
}

// remember puts k's value v in hot, emptied first when full (hotMax).
func (n *Names) remember(k guid.GUID, v uint32) {
	if len(n.hot) >= n.hotMax {
		clear(n.hot)
	}
	n.hot[k] = v
}

func namesKey(kind, s string) guid.GUID {
	var buf [128]byte
	b := append(append(append(buf[:0], kind...), 0), s...)
	return guid.GUID(sha1.Sum(b))
}

// Put maps kind s to v, replacing what it mapped to.
func (n *Names) Put(kind, s string, v uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	k := namesKey(kind, s)
	if err := n.t.Put(k, b[:]); err != nil {
		delete(n.hot, k)
		return fmt.Errorf("remembering %s %s: %w", kind, s, err)
	}
	n.remember(k, v)
	return nil
}

// Get returns what kind s maps to, and whether it is there.
func (n *Names) Get(kind, s string) (uint32, bool, error) {
	k := namesKey(kind, s)
	if v, ok := n.hot[k]; ok {
		return v, true, nil
	}
	var b [4]byte
	ok, err := n.t.Get(k, b[:])
	if err != nil {
		return 0, false, fmt.Errorf("looking up %s %s: %w", kind, s, err)
	}
	v := binary.LittleEndian.Uint32(b[:])
	if ok {
		n.remember(k, v)
	}
	return v, ok, nil
}

// Close removes the files.
func (n *Names) Close() {
	if n != nil {
		n.t.Close()
	}
}
