package restore

import (
	"encoding/binary"
	"fmt"
	"iter"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/spill"
)

// A restore reads the whole dump before it commits anything, so every
// mailbox's state lives from its APPLY MAILBOX line to the end of the
// run. To keep the run's memory flat however many mailboxes the dump
// has, that state (boxData: names, ACL, annotations, index header, the
// report line) is parked in a spill file (package spill) whenever the
// mailbox is not in use, and what stays in memory is the box's handle:
// its place in the file and the few fields the passes over all boxes
// test first (24 bytes, in a slab of boxList). The names the run looks
// mailboxes up by are in a spill.Names (rs.keys), which spills too but
// for a Bloom filter of about 2 bytes per name it holds (three per
// mailbox: its target name, its uniqueid in the dump, the uniqueid it
// is given).
//
// The passes load a box (rs.parked.Load), use it and park it again
// (rs.parked.Park); a lookup that only reads another box's state peeks
// at it (spill.Peek, a copy). Parking writes the state again only if it
// changed (spill.Store).

// Slot and Item make a box the Holder of its data in rs.parked.
func (b *box) Slot() (*int64, **boxData) { return &b.ref, &b.boxData }

func (b *box) Item() string {
	if b.boxData != nil {
		return "mailbox " + b.name
	}
	return fmt.Sprintf("mailbox %d of the dump", b.id)
}

// setKey maps kind s to box b (nil: marks s).
func (rs *restorer) setKey(kind, s string, b *box) error {
	var id uint32
	if b != nil {
		id = b.id
	}
	return rs.keys.Put(kind, s, id)
}

// getKey returns the box kind s maps to (nil if none, or if s is only
// marked) and whether s is there.
func (rs *restorer) getKey(kind, s string) (*box, bool, error) {
	id, ok, err := rs.keys.Get(kind, s)
	if err != nil || !ok {
		return nil, false, err
	}
	if id > 0 && int(id) <= rs.boxes.len() {
		return rs.boxes.at(id), true, nil
	}
	return nil, true, nil
}

// named returns the box restored as name, if any.
func (rs *restorer) named(name string) (*box, error) {
	b, _, err := rs.getKey(spill.KeyName, name)
	return b, err
}

// encode writes d (but for what stays with the box's handle) to e.
func (d *boxData) encode(e *spill.Enc, rs *restorer) {
	d.res.Encode(e)

	s := &d.src
	e.String(s.UniqueID)
	e.String(s.Name)
	e.Uint(uint64(s.UIDValidity))
	e.Uint(s.CreatedModseq)
	e.Uint(s.FolderModseq)

	for _, v := range []string{d.name, d.owner, d.uniqueid, d.partition, d.typ, d.quotaRoot, d.dir} {
		e.String(v)
	}
	encodeACL(e, d.acl)
	e.Annotations(d.annots)
	e.Bool(d.replaced != nil)
	if r := d.replaced; r != nil {
		for _, v := range []string{r.Name, r.UniqueID, r.Partition, r.Type, r.Server} {
			e.String(v)
		}
		e.Uint(uint64(r.UIDValidity))
		e.Uint(r.CreatedModseq)
		e.Uint(r.FolderModseq)
		e.Int(r.MTime)
		encodeACL(e, r.ACL)
	}
	e.Bool(d.fresh)
	e.Uint(uint64(len(d.children)))
	for _, c := range d.children {
		e.Uint(uint64(c))
	}
	e.Uint(uint64(stageID(d.st)))
	e.Uint(uint64(len(d.sides)))
	for _, s := range d.sides {
		e.Uint(uint64(stageID(s.st)))
		e.String(s.dir)
		e.String(s.final)
	}
	e.Fixed(&d.hdr)
	e.Uint(uint64(len(d.flags)))
	for _, f := range d.flags {
		e.String(f)
	}
	t := &d.tgt
	e.Uint(uint64(t.UIDValidity))
	e.Uint(uint64(t.LastUID))
	e.Uint(t.HighestModseq)
	e.Uint(uint64(t.SyncCRC))
	e.Uint(uint64(t.SyncCRCAnnot))
	e.Uint(d.counter)
	e.Uint(d.reserve)
	e.Bool(d.metaWritten)
}

func stageID(st *stage) int {
	if st == nil {
		return 0
	}
	return st.id
}

func encodeACL(e *spill.Enc, acl []partition.ACLEntry) {
	e.Uint(uint64(len(acl)))
	for _, a := range acl {
		e.String(a.ID)
		e.String(a.Rights)
	}
}

func decodeACL(dec *spill.Dec) []partition.ACLEntry {
	var acl []partition.ACLEntry
	for range dec.Count() {
		acl = append(acl, partition.ACLEntry{ID: dec.String(), Rights: dec.String()})
	}
	return acl
}

// decode reads what encode wrote.
func (d *boxData) decode(dec *spill.Dec, rs *restorer) {
	d.res.Decode(dec)

	s := &d.src
	s.UniqueID = dec.String()
	s.Name = dec.String()
	s.UIDValidity = uint32(dec.Uint())
	s.CreatedModseq = dec.Uint()
	s.FolderModseq = dec.Uint()

	for _, v := range []*string{&d.name, &d.owner, &d.uniqueid, &d.partition, &d.typ, &d.quotaRoot, &d.dir} {
		*v = dec.String()
	}
	d.acl = decodeACL(dec)
	d.annots = dec.Annotations()
	if dec.Bool() {
		r := &partition.Entry{}
		for _, v := range []*string{&r.Name, &r.UniqueID, &r.Partition, &r.Type, &r.Server} {
			*v = dec.String()
		}
		r.UIDValidity = uint32(dec.Uint())
		r.CreatedModseq = dec.Uint()
		r.FolderModseq = dec.Uint()
		r.MTime = dec.Int()
		r.ACL = decodeACL(dec)
		d.replaced = r
	}
	d.fresh = dec.Bool()
	for range dec.Count() {
		d.children = append(d.children, uint32(dec.Uint()))
	}
	d.st = rs.stageByID(dec.Uint(), dec)
	for range dec.Count() {
		d.sides = append(d.sides, side{st: rs.stageByID(dec.Uint(), dec), dir: dec.String(), final: dec.String()})
	}
	if dec.Err == nil {
		n, err := binary.Decode(dec.B, binary.LittleEndian, &d.hdr)
		if err != nil {
			dec.Err = spill.ErrDamaged
		} else {
			dec.B = dec.B[n:]
		}
	}
	for range dec.Count() {
		d.flags = append(d.flags, dec.String())
	}
	t := &d.tgt
	t.UIDValidity = uint32(dec.Uint())
	t.LastUID = uint32(dec.Uint())
	t.HighestModseq = dec.Uint()
	t.SyncCRC = uint32(dec.Uint())
	t.SyncCRCAnnot = uint32(dec.Uint())
	d.counter = dec.Uint()
	d.reserve = dec.Uint()
	d.metaWritten = dec.Bool()
}

func (rs *restorer) stageByID(id uint64, dec *spill.Dec) *stage {
	if id == 0 {
		return nil
	}
	if id > uint64(len(rs.stageList)) {
		dec.Err = spill.ErrDamaged
		return nil
	}
	return rs.stageList[id-1]
}

// boxSlab is how many box handles one slab of a boxList holds.
const boxSlab = 256

// boxList holds the run's box handles, by id, in slabs of boxSlab: one
// allocation per slab rather than one per mailbox (whose size class
// rounded a handle up), and no array of pointers to them that grows by
// copying. A handle never moves, so a *box stays valid for the run.
// What stays in memory per mailbox is then the handle's 24 bytes.
type boxList struct {
	slabs []*[boxSlab]box
	n     int
}

// len returns the number of boxes.
func (l *boxList) len() int { return l.n }

// at returns the box of id (from 1).
func (l *boxList) at(id uint32) *box {
	i := id - 1
	return &l.slabs[i/boxSlab][i%boxSlab]
}

// add returns a new box, its id the next, holding d, not yet parked.
func (l *boxList) add(d *boxData) *box {
	if l.n == len(l.slabs)*boxSlab {
		l.slabs = append(l.slabs, new([boxSlab]box))
	}
	l.n++
	b := l.at(uint32(l.n))
	*b = box{boxData: d, ref: -1, id: uint32(l.n)}
	return b
}

// all yields the boxes in order: those there when it is called, not
// those added while it runs (intermediates adds the missing parents).
func (l *boxList) all() iter.Seq[*box] {
	n := l.n
	return func(yield func(*box) bool) {
		for id := 1; id <= n; id++ {
			if !yield(l.at(uint32(id))) {
				return
			}
		}
	}
}
