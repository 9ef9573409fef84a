package remote

import (
	"encoding/binary"
	"fmt"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/syncrec"
)

// A record whose message file the dump lacks (item.lost) is restored by
// the rule of both restores, syncrec.LoseFile, only if the server holds no
// file of its GUID either: when APPLY RESERVE finds one, sync_server links
// it to the record, which is sent live, as dumped. Which it is is known
// only once the server has answered (reserveAll, reserveDry for a dry
// run, and for a mailbox compared with the server's, in differences);
// until then the record counts as expunged, and what its terms of the
// checksums would be as dumped is kept in inventory.lostCRC, by the
// item's place in the item log, to be put back for one the server holds.

// lostKey is the key of the item at place i of the item log in
// inventory.lostCRC.
func lostKey(i int64) guid.GUID {
	var g guid.GUID
	binary.LittleEndian.PutUint64(g[:], uint64(i))
	return g
}

// keepLostCRC keeps the checksum terms and the size of the lost item at
// place i.
func (inv *inventory) keepLostCRC(i int64, basic, annot, size uint32) error {
	if inv.lostCRC == nil {
		inv.lostCRC = guidtable.New(guidtable.Options{ValueSize: 12})
	}
	var v [12]byte
	binary.LittleEndian.PutUint32(v[:], basic)
	binary.LittleEndian.PutUint32(v[4:], annot)
	binary.LittleEndian.PutUint32(v[8:], size)
	if err := inv.lostCRC.Put(lostKey(i), v[:]); err != nil {
		return fmt.Errorf("remembering a record without its file: %w", err)
	}
	return nil
}

// lostTerms returns the checksum terms and the size of the lost item at
// place i.
func (inv *inventory) lostTerms(i int64) (basic, annot, size uint32, err error) {
	var v [12]byte
	ok := false
	if inv.lostCRC != nil {
		ok, err = inv.lostCRC.Get(lostKey(i), v[:])
	}
	if err == nil && !ok {
		err = fmt.Errorf("record %d of the dump without its file: its checksum terms are not kept", i)
	}
	le := binary.LittleEndian
	return le.Uint32(v[:]), le.Uint32(v[4:]), le.Uint32(v[8:]), err
}

// eachAt calls fn with each item of s and its place in the log.
func (l *itemLog) eachAt(s span, fn func(int64, item) error) error {
	i := s.first
	return l.each(s, func(it item) error {
		i++
		return fn(i-1, it)
	})
}

// lostNow reports whether the item it of b is restored expunged by
// syncrec.LoseFile: the dump lacks its file and the server holds none on
// b's partition (as the reservations found it).
func (rs *restorer) lostNow(b *box, it item) (bool, error) {
	if !it.lost {
		return false, nil
	}
	held, err := rs.guids.held(b.mb.Partition, it.guid)
	return !held, err
}

// lostState is what b's records are, as sent, once the server has said
// which of the files the dump lacks it holds.
type lostState struct {
	crc     syncrec.CRC // the mailbox's checksums
	highest uint64      // its HIGHESTMODSEQ
	// messages and bytes count the records the server holds the file
	// of: messages, not expunged as the first pass counted them.
	messages, bytes int64
	lost            int64 // the records that stay lost
}

// lostState works out b's lostState, held saying which files the server
// holds: the HIGHESTMODSEQ is the dump's, raised above it by
// syncrec.LoseFile when a record stays lost. It calls lost, if not nil,
// for each record that stays lost.
func (rs *restorer) lostState(b *box, held func(guid.GUID) (bool, error), lost func(item)) (lostState, error) {
	st := lostState{crc: syncrec.CRC{Basic: b.mb.SyncCRC, Annot: b.mb.SyncCRCAnnot}, highest: b.mb.HighestModseq}
	if b.lost == 0 {
		return st, nil
	}
	err := rs.inv.items.eachAt(b.items, func(i int64, it item) error {
		if !it.lost {
			return nil
		}
		h, err := held(it.guid)
		if err != nil {
			return err
		}
		if !h {
			st.highest = max(st.highest, syncrec.LostModseq(b.src.HighestModseq))
			st.lost++
			if lost != nil {
				lost(it)
			}
			return nil
		}
		basic, annot, size, err := rs.inv.lostTerms(i)
		if err != nil {
			return err
		}
		st.crc.Basic ^= basic
		st.crc.Annot ^= annot
		st.messages++
		st.bytes += int64(size)
		return nil
	})
	return st, err
}

// settleLost sets, once the server has answered the reservations, the
// checksums and HIGHESTMODSEQ of each mailbox to send that has records
// whose file the dump lacks, and reports those the server does not hold
// either (syncrec.LostFileError), in a dry run too, as offline restore
// reports them.
func (rs *restorer) settleLost() error {
	return rs.inv.each(func(b *box) error {
		if b.lost == 0 || !applies(b) {
			return nil
		}
		held := func(g guid.GUID) (bool, error) { return rs.guids.held(b.mb.Partition, g) }
		st, err := rs.lostState(b, held, func(it item) {
			rs.problem(b.mb.Name, &syncrec.LostFileError{UID: it.uid, GUID: it.guid})
		})
		if err != nil {
			return err
		}
		b.mb.SyncCRC, b.mb.SyncCRCAnnot, b.mb.HighestModseq = st.crc.Basic, st.crc.Annot, st.highest
		b.res.Messages += st.messages
		b.res.Bytes += st.bytes
		return nil
	})
}
