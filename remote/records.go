package remote

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/spill"
)

// item is one record of a mailbox as the first pass saw it: what the
// second pass must find again, and what the server must have.
type item struct {
	guid     guid.GUID
	uid      uint32
	modseq   uint64
	expunged bool
	inDump   bool // the dump holds the file, before this mailbox
	// lost: not expunged in the dump, which holds no file for it; sent
	// expunged (syncrec.LoseFile) unless the server holds the file
	// (lost.go), left out by a merge unless the server holds the file.
	lost bool
	// unselected: the message selectors leave the record out.
	unselected bool
}

// itemSize is the bytes of an item in an itemLog: GUID, UID, MODSEQ,
// flags.
const itemSize = guid.Size + 4 + 8 + 1

const (
	flagExpunged = 1 << iota
	flagInDump
	flagUnselected
	flagLost
)

// itemLog keeps the items of every mailbox of the dump in a spill file
// (package spill), in the dump's order, so that restore --server holds
// none of them in memory: a box notes where its items are (span), and
// each use reads them again in sequence.
type itemLog struct {
	log spill.Log
	n   int64 // items written
	buf [itemSize]byte
}

// span is where a box's items are in the itemLog.
type span struct {
	first, n int64
}

// add appends it to the log.
func (l *itemLog) add(it item) error {
	b := l.buf[:]
	copy(b, it.guid[:])
	binary.LittleEndian.PutUint32(b[guid.Size:], it.uid)
	binary.LittleEndian.PutUint64(b[guid.Size+4:], it.modseq)
	var fl byte
	if it.expunged {
		fl |= flagExpunged
	}
	if it.inDump {
		fl |= flagInDump
	}
	if it.unselected {
		fl |= flagUnselected
	}
	if it.lost {
		fl |= flagLost
	}
	b[itemSize-1] = fl
	if _, err := l.log.Write(b); err != nil {
		return fmt.Errorf("spilling records: %w", err)
	}
	l.n++
	return nil
}

// finish makes what was added readable.
func (l *itemLog) finish() error {
	if err := l.log.Flush(); err != nil {
		return fmt.Errorf("spilling records: %w", err)
	}
	return nil
}

// close removes the file.
func (l *itemLog) close() {
	if l != nil {
		l.log.Close()
	}
}

// itemReader reads the items of one span in order.
type itemReader struct {
	r    *bufio.Reader
	err  error
	left int64
	buf  [itemSize]byte
}

// read returns a reader of the items of s.
func (l *itemLog) read(s span) *itemReader {
	if s.n == 0 {
		return &itemReader{}
	}
	r, err := l.log.Section(s.first*itemSize, s.n*itemSize)
	return &itemReader{r: r, err: err, left: s.n}
}

// next returns the next item; ok is false at the end.
func (r *itemReader) next() (it item, ok bool, err error) {
	if r.err != nil {
		return item{}, false, fmt.Errorf("reading spilled records: %w", r.err)
	}
	if r.left == 0 {
		return item{}, false, nil
	}
	if _, err := io.ReadFull(r.r, r.buf[:]); err != nil {
		return item{}, false, fmt.Errorf("reading spilled records: %w", err)
	}
	r.left--
	b := r.buf[:]
	copy(it.guid[:], b)
	it.uid = binary.LittleEndian.Uint32(b[guid.Size:])
	it.modseq = binary.LittleEndian.Uint64(b[guid.Size+4:])
	fl := b[itemSize-1]
	it.expunged, it.inDump, it.unselected = fl&flagExpunged != 0, fl&flagInDump != 0, fl&flagUnselected != 0
	it.lost = fl&flagLost != 0
	return it, true, nil
}

// each calls fn with every item of s in order.
func (l *itemLog) each(s span, fn func(item) error) error {
	r := l.read(s)
	for {
		it, ok, err := r.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
	}
}

// What the run knows of a GUID on a target partition (partGUIDs).
const (
	guidUnknown byte = iota // neither held by the server nor needed
	guidHeld                // the server holds it, or it was sent
	guidNeeded              // to be sent from the dump
	guidQueued              // in an APPLY MESSAGE being written
)

// partGUIDs is, per target partition, what the run knows of each GUID
// (guidHeld ...), in spilling tables so that memory stays flat however
// many messages the dump has.
type partGUIDs map[string]*guidtable.Table

func (pg partGUIDs) get(p string, g guid.GUID) (byte, error) {
	t := pg[p]
	if t == nil {
		return guidUnknown, nil
	}
	var v [1]byte
	if _, err := t.Get(g, v[:]); err != nil {
		return 0, fmt.Errorf("looking up message file %s: %w", g, err)
	}
	return v[0], nil
}

func (pg partGUIDs) held(p string, g guid.GUID) (bool, error) {
	s, err := pg.get(p, g)
	return s == guidHeld, err
}

func (pg partGUIDs) set(p string, g guid.GUID, s byte) error {
	t := pg[p]
	if t == nil {
		t = guidtable.New(guidtable.Options{ValueSize: 1})
		pg[p] = t
	}
	if err := t.Put(g, []byte{s}); err != nil {
		return fmt.Errorf("remembering message file %s: %w", g, err)
	}
	return nil
}

func (pg partGUIDs) close() {
	for _, t := range pg {
		t.Close()
	}
}
