package repo

import (
	"fmt"
	"io"
	"strconv"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/zeebo/blake3"
)

// A user's state (format 2) names each mailbox's box, a file of its own,
// so that a mailbox that did not change costs the next night one line:
//
//	MBTOOL MAILBOX %(MBOXNAME user.alice UNIQUEID <id> KEY <hex> BOX <id> [BASE <id>]
//	    MODSEQ <n> GENERATION <n> [CACHED <n>] UIDVALIDITY <n> RECORDS <n>
//	    [DELTA <n> BASEFILES <n> BASEBYTES <n>] FILES <n> BYTES <n> [SKIPPED <n>])
//
// A box (states/<xx>/<id>, zstd, named by the digest of its text as a
// state is) holds the mailbox's files and APPLY MAILBOX:
//
//	MBTOOL BOX %(FORMAT 2 [BASE <id> SINCE <modseq> UIDS (<first>:<last> ...)])
//	MBTOOL FILES %(PARTITION default GUIDS (<guid> ...))
//	APPLY MAILBOX %(... RECORD (...))
//	MBTOOL END %(RECORDS <n> FILES <n> BYTES <n>)
//
// A full box (no BASE) is the mailbox as dumped. A delta box holds only
// the records whose MODSEQ is above SINCE, the HIGHESTMODSEQ of its BASE
// (always a full box), and UIDS names every record the mailbox has: the
// mailbox is, for each UID of UIDS, the delta's record if it has one and
// the base's otherwise, with the delta's mailbox-level keys. FILES names,
// in record order and once each, the files of the box's records the
// repository held when it was written.

// BoxEntry is one mailbox of a state: its box and what the next night
// needs to know about it.
type BoxEntry struct {
	Name, UniqueID string
	Key            string // MailboxKey of the mailbox-level keys, "" if not known
	Box            string // the box's ID
	Base           string // for a delta box, the full box it applies to
	Modseq         uint64 // HIGHESTMODSEQ of the full box (the base of a delta)
	// Generation is the index generation of the full box (the base of a
	// delta); -1 when the line does not say (a state of an older mbtool).
	Generation int64
	// Cached is, when every record of the full box carried its cache
	// record, the cyrus.index minor version it was read from; 0
	// otherwise (or when the line does not say). A repack of such a
	// mailbox changes none of the records it keeps (docs/format.md,
	// "Box"): its deltas may span generations.
	Cached       uint32
	UIDValidity  uint32
	Records      int64 // the mailbox's records, expunged included
	Delta        int64 // records in a delta box
	Files, Bytes int64 // files the box and its base name (a file in both counted twice)
	// BaseFiles, BaseBytes: of a delta, the files its base names.
	BaseFiles, BaseBytes int64
	Skipped              int64 // SKIPPED lines about the mailbox before it in the state
}

// MailboxKey names a mailbox's keys (everything of its APPLY MAILBOX but
// the records): HIGHESTMODSEQ, SYNC_CRC, SYNC_CRC_ANNOT and UIDVALIDITY
// change with any change to a record (Cyrus's replication relies on it),
// the other keys with everything else. Two nights with the same key have
// the same mailbox.
func MailboxKey(mb *syncrec.Mailbox) string {
	h := blake3.New()
	w := dlist.NewWriter(h)
	syncrec.WriteMailbox(w, "APPLY", mb, func() (*syncrec.Record, error) { return nil, nil })
	w.Flush()
	return idHex([32]byte(h.Sum(nil)))
}

func writeBoxEntry(w *dlist.Writer, e *BoxEntry) error {
	w.BeginLine(Verb, "MAILBOX")
	w.BeginKVList()
	w.Key("MBOXNAME")
	w.Atom(e.Name)
	w.Key("UNIQUEID")
	w.Atom(e.UniqueID)
	if e.Key != "" {
		w.Key("KEY")
		w.Atom(e.Key)
	}
	w.Key("BOX")
	w.Atom(e.Box)
	if e.Base != "" {
		w.Key("BASE")
		w.Atom(e.Base)
	}
	w.Key("MODSEQ")
	w.Num(e.Modseq)
	if e.Generation >= 0 {
		w.Key("GENERATION")
		w.Num(uint64(e.Generation))
	}
	if e.Cached > 0 {
		w.Key("CACHED")
		w.Num(uint64(e.Cached))
	}
	w.Key("UIDVALIDITY")
	w.Num(uint64(e.UIDValidity))
	w.Key("RECORDS")
	w.Num(uint64(e.Records))
	if e.Base != "" {
		w.Key("DELTA")
		w.Num(uint64(e.Delta))
		w.Key("BASEFILES")
		w.Num(uint64(e.BaseFiles))
		w.Key("BASEBYTES")
		w.Num(uint64(e.BaseBytes))
	}
	w.Key("FILES")
	w.Num(uint64(e.Files))
	w.Key("BYTES")
	w.Num(uint64(e.Bytes))
	if e.Skipped > 0 {
		w.Key("SKIPPED")
		w.Num(uint64(e.Skipped))
	}
	w.EndList()
	return w.EndLine()
}

func parseBoxEntry(v *dlist.Value) (BoxEntry, error) {
	var err error
	num := func(k string) uint64 {
		x := v.Get(k)
		if x == nil {
			return 0
		}
		n, e := x.Num64()
		if e != nil && err == nil {
			err = fmt.Errorf("MBTOOL MAILBOX %s: %w", k, e)
		}
		return n
	}
	e := BoxEntry{Name: v.Get("MBOXNAME").String(), UniqueID: v.Get("UNIQUEID").String(), Key: v.Get("KEY").String(),
		Box: v.Get("BOX").String(), Base: v.Get("BASE").String(), Modseq: num("MODSEQ"),
		UIDValidity: uint32(num("UIDVALIDITY")), Records: int64(num("RECORDS")), Delta: int64(num("DELTA")),
		Files: int64(num("FILES")), Bytes: int64(num("BYTES")), BaseFiles: int64(num("BASEFILES")),
		BaseBytes: int64(num("BASEBYTES")), Skipped: int64(num("SKIPPED")), Generation: -1,
		Cached: uint32(min(num("CACHED"), 1<<32-1))}
	if v.Get("GENERATION") != nil {
		e.Generation = int64(uint32(num("GENERATION")))
	}
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if _, ok := parseID(e.Box); !ok || e.Name == "" {
		return e, fmt.Errorf("%w: MBTOOL MAILBOX %q: bad MBOXNAME or BOX", ErrDamaged, e.Name)
	}
	if _, ok := parseID(e.Base); e.Base != "" && !ok {
		return e, fmt.Errorf("%w: MBTOOL MAILBOX %s: bad BASE", ErrDamaged, e.Name)
	}
	return e, nil
}

// boxReader reads a box from its beginning: the header (and, for a
// delta, its UIDS one range at a time), the FILES lines, then the APPLY
// MAILBOX value, which the caller reads (copyValue, syncrec.OpenMailbox
// or skipValue), then finish checks the END line and the digest.
type boxReader struct {
	id     string
	rd     *dlist.Reader
	hr     *hashingReader
	done   func()
	base   string
	since  uint64
	inUIDs bool // inside the header's UIDS list
	files  int64
}

func (r *Repo) openBox(id string) (*boxReader, error) {
	rd, hr, done, err := r.openState(id)
	if err != nil {
		return nil, err
	}
	b := &boxReader{id: id, rd: rd, hr: hr, done: done}
	if err := b.header(); err != nil {
		done()
		return nil, fmt.Errorf("box %s: %w", id, err)
	}
	return b, nil
}

func (b *boxReader) close() { b.done() }

func (b *boxReader) damaged(format string, args ...any) error {
	return fmt.Errorf("%w: box %s: %s", ErrDamaged, b.id, fmt.Sprintf(format, args...))
}

// header reads the box's first line up to its UIDS list, or through.
func (b *boxReader) header() error {
	rd := b.rd
	for _, want := range []string{Verb, "BOX"} {
		t, err := rd.Next()
		if err != nil {
			return err
		}
		if string(t.Bytes) != want {
			return b.damaged("does not start with MBTOOL BOX")
		}
	}
	t, err := rd.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.KVList {
		return b.damaged("malformed MBTOOL BOX line")
	}
	for {
		kt, err := rd.Next()
		if err != nil {
			return err
		}
		if kt.Kind == dlist.End {
			return endLine(rd)
		}
		key := string(kt.Bytes)
		vt, err := rd.Next()
		if err != nil {
			return err
		}
		switch key {
		case "FORMAT":
			if n, _ := strconv.ParseUint(string(vt.Bytes), 10, 64); n > SnapshotFormat || n < 2 {
				return fmt.Errorf("box format %s, this mbtool reads 2 to %d", vt.Bytes, SnapshotFormat)
			}
		case "BASE":
			id, ok := parseID(string(vt.Bytes))
			if !ok {
				return b.damaged("bad BASE")
			}
			b.base = id
		case "SINCE":
			n, err := strconv.ParseUint(string(vt.Bytes), 10, 64)
			if err != nil {
				return b.damaged("bad SINCE")
			}
			b.since = n
		case "UIDS":
			if vt.Kind != dlist.List {
				return b.damaged("bad UIDS")
			}
			b.inUIDs = true
			return nil
		default:
			return b.damaged("unexpected key %s in MBTOOL BOX", key)
		}
	}
}

// nextUIDs returns the next range of the UIDS list; ok is false after
// the last, with the header line read through.
func (b *boxReader) nextUIDs() (first, last uint32, ok bool, err error) {
	if !b.inUIDs {
		return 0, 0, false, nil
	}
	t, err := b.rd.Next()
	if err != nil {
		return 0, 0, false, err
	}
	if t.Kind == dlist.End {
		b.inUIDs = false
		if t, err = b.rd.Next(); err != nil {
			return 0, 0, false, err
		}
		if t.Kind != dlist.End {
			return 0, 0, false, b.damaged("a key after UIDS")
		}
		return 0, 0, false, endLine(b.rd)
	}
	f, l, ok := syncrec.ParseUIDRange(t.Bytes)
	if t.Kind != dlist.Atom || !ok {
		return 0, 0, false, b.damaged("bad UID range %q", t.Bytes)
	}
	return f, l, true, nil
}

// readFiles reads the FILES lines, calling fn for each file, and the
// APPLY MAILBOX line's verb and name: the reader is then at the value.
func (b *boxReader) readFiles(fn func(part string, g guid.GUID) error) error {
	for b.inUIDs {
		if _, _, _, err := b.nextUIDs(); err != nil {
			return err
		}
	}
	for {
		vt, err := b.rd.Next()
		if err != nil {
			return b.eof(err)
		}
		verb := string(vt.Bytes)
		nt, err := b.rd.Next()
		if err != nil {
			return b.eof(err)
		}
		name := string(nt.Bytes)
		switch {
		case verb == Verb && name == "FILES":
			err := readFiles(b.rd, func(part string, g guid.GUID) error {
				b.files++
				if fn == nil {
					return nil
				}
				return fn(part, g)
			})
			if err != nil {
				return err
			}
			if err := endLine(b.rd); err != nil {
				return err
			}
		case verb == "APPLY" && name == "MAILBOX":
			return nil
		default:
			return b.damaged("%s %s where APPLY MAILBOX belongs", verb, name)
		}
	}
}

func (b *boxReader) eof(err error) error {
	if err == io.EOF {
		return b.damaged("ends early")
	}
	return err
}

// finish reads the end of the APPLY MAILBOX line, the END line and checks
// the box's digest.
func (b *boxReader) finish() error {
	if err := endLine(b.rd); err != nil {
		return err
	}
	l, err := b.rd.ReadLine()
	if err != nil {
		return b.eof(err)
	}
	if l.Verb != Verb || l.Value == nil || l.Value.Key != "END" {
		return b.damaged("no END line after its APPLY MAILBOX")
	}
	if f, _ := l.Value.Get("FILES").Num64(); int64(f) != b.files {
		return b.damaged("END says %d files, it names %d", f, b.files)
	}
	if _, err := b.rd.Next(); err != io.EOF {
		return b.damaged("data after END")
	}
	if got := idHex([32]byte(b.hr.h.Sum(nil))); got != b.id {
		return b.damaged("its text hashes to %s", got)
	}
	return nil
}

// walkBox reads the box of e (and its base) through, unless seen holds
// them, calling files for the files each names and checking each box's
// END and digest; the records are not decoded. seen gets the boxes.
func (r *Repo) walkBox(e BoxEntry, seen map[string]bool, files func(part string, g guid.GUID) error) error {
	for _, id := range []string{e.Box, e.Base} {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		b, err := r.openBox(id)
		if err != nil {
			return err
		}
		err = b.readFiles(files)
		if err == nil && (b.base != e.Base && id == e.Box || b.base != "" && id == e.Base) {
			err = b.damaged("its BASE is %q, the state says %q", b.base, e.Base)
		}
		if err == nil {
			err = skipValue(b.rd)
		}
		if err == nil {
			err = b.finish()
		}
		b.close()
		if err != nil {
			return err
		}
	}
	return nil
}

// merger yields the records of a mailbox whose box is a delta: for each
// UID of its UIDS, the delta's record or else the base's, streaming three
// readers (the delta's UIDS, its records, the base's records).
type merger struct {
	uids, delta, base *boxReader
	dm, bm            *syncrec.MailboxReader
	dnext, bnext      *syncrec.Record
	cur, last         uint32 // the UIDs left of the current range
	ended             bool
}

// openMerge opens e's delta and base boxes; files sees the files each
// names (the delta's first).
func (r *Repo) openMerge(e BoxEntry, files func(part string, g guid.GUID) error) (m *merger, err error) {
	m = &merger{}
	defer func() {
		if err != nil {
			m.close()
			err = fmt.Errorf("mailbox %s: %w", e.Name, err)
		}
	}()
	if m.uids, err = r.openBox(e.Box); err != nil {
		return m, err
	}
	if m.uids.base != e.Base || !m.uids.inUIDs && m.uids.base != "" {
		return m, m.uids.damaged("its BASE is %q, the state says %q", m.uids.base, e.Base)
	}
	if m.delta, err = r.openBox(e.Box); err != nil {
		return m, err
	}
	if err = m.delta.readFiles(files); err != nil {
		return m, err
	}
	if m.dm, err = syncrec.OpenMailbox(m.delta.rd); err != nil {
		return m, err
	}
	if m.base, err = r.openBox(e.Base); err != nil {
		return m, err
	}
	if m.base.base != "" {
		return m, m.base.damaged("a delta's base is a delta")
	}
	if err = m.base.readFiles(files); err != nil {
		return m, err
	}
	m.bm, err = syncrec.OpenMailbox(m.base.rd)
	return m, err
}

// keys are the mailbox-level keys: the delta's.
func (m *merger) keys() *syncrec.Mailbox { return m.dm.Mailbox() }

// next returns the next record of the mailbox, nil after the last.
func (m *merger) next() (*syncrec.Record, error) {
	if m.ended {
		return nil, nil
	}
	if m.cur == 0 {
		first, last, ok, err := m.uids.nextUIDs()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, m.end()
		}
		m.cur, m.last = first, last
	}
	uid := m.cur
	if m.cur == m.last {
		m.cur = 0
	} else {
		m.cur++
	}
	if m.dnext == nil && m.dm != nil {
		r, err := m.dm.Next()
		if err != nil {
			return nil, err
		}
		if r == nil {
			m.dm = nil
		}
		m.dnext = r
	}
	if m.dnext != nil {
		switch {
		case m.dnext.UID == uid:
			r := m.dnext
			m.dnext = nil
			return r, nil
		case m.dnext.UID < uid:
			return nil, m.delta.damaged("record UID %d is not in its UIDS", m.dnext.UID)
		}
	}
	for {
		if m.bnext == nil {
			r, err := m.bm.Next()
			if err != nil {
				return nil, err
			}
			if r == nil {
				return nil, m.delta.damaged("UID %d is in neither the delta nor its base %s", uid, m.base.id)
			}
			m.bnext = r
		}
		r := m.bnext
		switch {
		case r.UID < uid:
			m.bnext = nil // gone from the mailbox since the base
		case r.UID == uid:
			m.bnext = nil
			return r, nil
		default:
			return nil, m.delta.damaged("UID %d is in neither the delta nor its base %s", uid, m.base.id)
		}
	}
}

// end checks that the delta's records are all used, reads both boxes
// through and checks them.
func (m *merger) end() error {
	m.ended = true
	if m.dnext != nil {
		return m.delta.damaged("record UID %d is not in its UIDS", m.dnext.UID)
	}
	if m.dm != nil {
		r, err := m.dm.Next()
		if err != nil {
			return err
		}
		if r != nil {
			return m.delta.damaged("record UID %d is not in its UIDS", r.UID)
		}
	}
	for {
		r, err := m.bm.Next()
		if err != nil {
			return err
		}
		if r == nil {
			break
		}
	}
	if err := m.delta.finish(); err != nil {
		return err
	}
	return m.base.finish()
}

func (m *merger) close() {
	for _, b := range []*boxReader{m.uids, m.delta, m.base} {
		if b != nil {
			b.close()
		}
	}
}
