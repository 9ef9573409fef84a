package remote

import (
	"fmt"

	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
)

// The inventory keeps a box per mailbox of the dump for the whole run:
// as for an offline restore (restore/park.go), what stays in memory is
// the box's handle, and its data (boxData: the keys as dumped, as sent
// and as the server has them, where its records are, its report line) is
// parked in a spill file (inventory.parked, a spill.Store) while no pass
// uses it. A pass loads each box, uses it and parks it again (each);
// parking writes the data again only if it changed.

// Slot and Item make a box the Holder of its data in inv.parked.
func (b *box) Slot() (*int64, **boxData) { return &b.ref, &b.boxData }

func (b *box) Item() string {
	if b.boxData != nil {
		return "mailbox " + b.src.Name
	}
	return fmt.Sprintf("mailbox %d of the dump", b.id)
}

// Pinned makes the box restored under RestoreOptions.Into stay loaded
// (spill.Pinned): the run consults it throughout.
func (b *box) Pinned() bool { return b.pinned }

// each calls fn with every box in order, loaded, parking each after.
func (inv *inventory) each(fn func(b *box) error) error {
	for _, b := range inv.boxes {
		if err := inv.parked.Use(b, func() error { return fn(b) }); err != nil {
			return err
		}
	}
	return nil
}

func (d *boxData) encode(e *spill.Enc) {
	encodeMailbox(e, d.src)
	encodeMailbox(e, d.mb)
	encodeMailbox(e, d.existing)
	e.Int(d.items.first)
	e.Int(d.items.n)
	d.res.Encode(e)
	e.Bool(d.probed)
}

// newParked returns the store of the boxes' data.
func newParked() *spill.Store[boxData] {
	return spill.NewStore((*boxData).encode, (*boxData).decode)
}

func (d *boxData) decode(dec *spill.Dec) {
	d.src = decodeMailbox(dec)
	d.mb = decodeMailbox(dec)
	d.existing = decodeMailbox(dec)
	d.items.first = dec.Int()
	d.items.n = dec.Int()
	d.res.Decode(dec)
	d.probed = dec.Bool()
	if d.src == nil || d.mb == nil {
		dec.Err = spill.ErrDamaged
	}
}

// encodeMailbox appends mb's keys (nil too) to e.
func encodeMailbox(e *spill.Enc, mb *syncrec.Mailbox) {
	e.Bool(mb != nil)
	if mb == nil {
		return
	}
	for _, s := range []string{mb.UniqueID, mb.Name, mb.MboxType, mb.Partition, mb.ACL, mb.Options, mb.QuotaRoot} {
		e.String(s)
	}
	for _, v := range []uint64{uint64(mb.SyncCRC), uint64(mb.SyncCRCAnnot), uint64(mb.LastUID), mb.HighestModseq,
		uint64(mb.RecentUID), mb.XConvModseq, mb.RaclModseq, uint64(mb.UIDValidity), mb.CreatedModseq,
		mb.FolderModseq, mb.DeletedModseq, uint64(mb.Generation), uint64(mb.IndexVersion)} {
		e.Uint(v)
	}
	for _, v := range []int64{mb.RecentTime, mb.LastAppendDate, mb.POP3LastLogin, mb.POP3ShowAfter} {
		e.Int(v)
	}
	e.Annotations(mb.Annotations)
	e.Bool(mb.UserFlags != nil)
	e.Uint(uint64(len(mb.UserFlags)))
	for _, f := range mb.UserFlags {
		e.String(f)
	}
}

// decodeMailbox reads what encodeMailbox wrote.
func decodeMailbox(d *spill.Dec) *syncrec.Mailbox {
	if !d.Bool() {
		return nil
	}
	mb := &syncrec.Mailbox{}
	for _, s := range []*string{&mb.UniqueID, &mb.Name, &mb.MboxType, &mb.Partition, &mb.ACL, &mb.Options, &mb.QuotaRoot} {
		*s = d.String()
	}
	u32 := func(p *uint32) { *p = uint32(d.Uint()) }
	u64 := func(p *uint64) { *p = d.Uint() }
	u32(&mb.SyncCRC)
	u32(&mb.SyncCRCAnnot)
	u32(&mb.LastUID)
	u64(&mb.HighestModseq)
	u32(&mb.RecentUID)
	u64(&mb.XConvModseq)
	u64(&mb.RaclModseq)
	u32(&mb.UIDValidity)
	u64(&mb.CreatedModseq)
	u64(&mb.FolderModseq)
	u64(&mb.DeletedModseq)
	u32(&mb.Generation)
	u32(&mb.IndexVersion)
	for _, v := range []*int64{&mb.RecentTime, &mb.LastAppendDate, &mb.POP3LastLogin, &mb.POP3ShowAfter} {
		*v = d.Int()
	}
	mb.Annotations = d.Annotations()
	carried := d.Bool()
	n := d.Count()
	if carried {
		mb.UserFlags = make([]string, 0, n)
	}
	for range n {
		mb.UserFlags = append(mb.UserFlags, d.String())
	}
	return mb
}
