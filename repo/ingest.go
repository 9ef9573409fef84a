package repo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/zeebo/blake3"
)

// UserIngest is one user of a run: it answers the dump's questions about
// the user's mailboxes (Known) from the user's state in the latest
// snapshot holding the user, then ingests the user's dump (Ingest).
type UserIngest struct {
	b    *Backup
	user string
	prev map[string]BoxEntry // the user's mailboxes last time, by UNIQUEID
	// The index version of each mailbox Known was asked about, by
	// UNIQUEID, for its full box's CACHED (the dump does not carry it).
	mu       sync.Mutex
	versions map[string]uint32
}

// Known is what the repository holds of a mailbox (dump.Known).
type Known struct {
	Key    string // MailboxKey of its keys now
	Same   bool   // the latest snapshot has the mailbox exactly as it is
	Since  uint64 // the repository holds its records as of this MODSEQ
	Cached bool   // ... each with its cache record (dump.Known)
}

// User starts ingesting user.
func (b *Backup) User(user string) (*UserIngest, error) {
	u := &UserIngest{b: b, user: user, prev: map[string]BoxEntry{}, versions: map[string]uint32{}}
	state, err := b.previous(user)
	if err != nil || state == "" {
		return u, err
	}
	_, err = b.r.readState(state, stateVisitor{
		box:  func(e BoxEntry) error { u.prev[e.UniqueID] = e; return nil },
		line: func(rd *dlist.Reader, verb, name string) error { return skipValue(rd) },
	})
	if err != nil {
		// A damaged state is verify's to report; tonight stores the
		// user whole.
		clear(u.prev)
	}
	return u, nil
}

// previous returns the state of user in the latest snapshot holding it.
func (b *Backup) previous(user string) (string, error) {
	b.prevOnce.Do(func() {
		ss, err := b.r.Snapshots()
		if err != nil {
			b.prevErr = err
			return
		}
		b.prevStates = map[string]string{}
		for _, s := range ss { // oldest first
			for _, u := range s.Users {
				b.prevStates[u.Name] = u.State
			}
		}
	})
	return b.prevStates[user], b.prevErr
}

// maxDelta is the share of a mailbox's records a delta box may carry; a
// mailbox whose changes since its base are more is stored whole again.
const maxDelta = 0.5

// Known tells the dump what the repository holds of a mailbox: the same
// mailbox (its keys, MailboxKey, unchanged), or its records up to a MODSEQ
// (the same UIDVALIDITY, a HIGHESTMODSEQ not lower), or nothing. A mailbox
// whose last box records skipped items is read whole again. It is safe
// for concurrent use.
func (u *UserIngest) Known(mb *syncrec.Mailbox) Known {
	k := Known{Key: MailboxKey(mb)}
	u.mu.Lock()
	u.versions[mb.UniqueID] = mb.IndexVersion
	u.mu.Unlock()
	e, ok := u.prev[mb.UniqueID]
	if !ok || e.Skipped > 0 {
		return k
	}
	if e.Key == k.Key {
		k.Same = true
		return k
	}
	// A new index generation (a repack) may have given records their
	// cache records without new MODSEQs (docs/format.md, "Box"), and
	// archiving moves a record's cache record without one in any
	// generation: a delta would keep the base's records as they were.
	// So a delta only on a base whose every record had its cache record,
	// from an index of the version the mailbox has now (a repack to
	// another version moves fields between the records and the
	// annotations), and the dump checks that every record the base holds
	// still has one (dump.Known.Cached). Of a base without CACHED, the
	// delta could not tell which records had one.
	k.Cached = e.Cached > 0 && e.Cached == mb.IndexVersion
	if e.Modseq > 0 && e.UIDValidity == mb.UIDValidity && mb.HighestModseq >= e.Modseq &&
		k.Cached && float64(e.Delta) <= maxDelta*float64(e.Records) {
		k.Since = e.Modseq
	} else {
		k.Cached = false
	}
	return k
}

// indexVersion is the index version of the mailbox Known was last asked
// about with uniqueID, 0 if none.
func (u *UserIngest) indexVersion(uniqueID string) uint32 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.versions[uniqueID]
}

// Ingest reads a standalone dump of one user (as dump.Run writes it) and
// stores it in the run: the file literals the repository lacks go to a
// pack, the rest becomes the user's state. The dump's trailer is checked;
// a dump that does not end well stores no state.
func (b *Backup) Ingest(ctx context.Context, user string, in io.Reader) (UserEntry, error) {
	u, err := b.User(user)
	if err != nil {
		return UserEntry{}, err
	}
	return u.Ingest(ctx, in, IngestOptions{})
}

// IngestOptions configure UserIngest.Ingest.
type IngestOptions struct {
	// Unsealed reads a dump written without a digest within the process
	// (dump.Options.Unsealed: dump --repo's pipe from the dump to the
	// ingest), whose trailer's BLAKE3 is not checked: the digest would
	// only be computed on one side of the pipe to be checked on the
	// other, a BLAKE3 of every byte twice. What it would guard, the
	// bytes between the two, the ingest checks still where it matters:
	// every message file it stores is hashed against its GUID as it is
	// copied into the pack (packWriter.add), and the pack is named by
	// the BLAKE3 of its bytes as written.
	Unsealed bool
}

// Ingest reads the user's dump, as dump.Run writes it with Options.Known
// answered by u.Known (or without), and stores it in the run.
func (u *UserIngest) Ingest(ctx context.Context, in io.Reader, opts IngestOptions) (UserEntry, error) {
	b := u.b
	dr, err := dumpfile.NewReaderWith(in, dumpfile.ReaderOptions{Unsealed: opts.Unsealed})
	if err != nil {
		return UserEntry{}, err
	}
	defer dr.Close()
	pw, err := b.takePack()
	if err != nil {
		return UserEntry{}, err
	}
	g := &ingest{b: b, ui: u, user: u.user, dr: dr, pw: pw, skips: map[string]int64{}}
	ue, err := g.run(ctx)
	if g.pw != nil {
		b.givePack(g.pw)
	}
	g.spool.close()
	g.uids.close()
	if err != nil {
		return UserEntry{}, fmt.Errorf("user %s: %w", u.user, err)
	}
	b.addUser(ue, dr.Header().IndexVersion)
	return ue, nil
}

type ingest struct {
	b     *Backup
	ui    *UserIngest
	user  string
	dr    *dumpfile.Reader
	pw    *slotWriter
	spool spill            // the current APPLY MAILBOX line
	skips map[string]int64 // SKIPPED lines since the last mailbox, by item
	u     UserEntry
	// The MBTOOL BOX line before the mailbox, if any.
	box struct {
		uniqueID, key string
		since         uint64
		uids          int64 // records the UIDS name
		set           bool
	}
	uids spill // its UIDS, as pairs of big-endian uint32
}

func (g *ingest) run(ctx context.Context) (UserEntry, error) {
	fw, err := g.b.r.store.Create()
	if err != nil {
		return UserEntry{}, err
	}
	defer fw.Abort()
	zw, err := zstdEncoder(fw)
	if err != nil {
		return UserEntry{}, err
	}
	defer putEncoder(zw)
	// A state is named by the digest of its dlist text, not of the
	// compressed bytes, so that the same state always has the same name.
	h := blake3.New()
	w := dlist.NewWriter(io.MultiWriter(zw, h))
	w.BeginLine(Verb, "STATE")
	w.BeginKVList()
	w.Key("FORMAT")
	w.Num(SnapshotFormat)
	if g.user == SharedName {
		w.Key("SHARED")
		w.Num(1)
	} else {
		w.Key("USER")
		w.Atom(g.user)
	}
	w.Key("INDEXVERSION")
	w.Num(uint64(g.dr.Header().IndexVersion))
	w.EndList()
	w.EndLine()
	g.u.Name = g.user
	// A SKIPPED line (an item the dump left out) stays in the state where
	// the dump had it, so that the user written out is partial as the
	// dump was.
	g.dr.OnSkip = func(s dumpfile.Skip, _ int64) {
		dumpfile.WriteSkip(w, s) // an error stays in w
		g.u.Skipped++
		g.skips[s.Item]++
	}
	for {
		if err := ctx.Err(); err != nil {
			return UserEntry{}, err
		}
		verb, name, _, err := g.dr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return UserEntry{}, err
		}
		rd := g.dr.DL()
		switch {
		case verb == "APPLY" && name == "MESSAGE":
			err = g.messages(rd)
		case verb == "APPLY" && name == "MAILBOX":
			err = g.mailbox(rd, w)
		case verb == Verb && name == "BOX":
			err = g.boxLine(rd, w)
		default:
			w.BeginLine(verb, name)
			if err = copyValue(rd, w, nil); err == nil {
				err = w.EndLine()
			}
		}
		if err == nil {
			err = g.dr.EndLine()
		}
		if err != nil {
			return UserEntry{}, fmt.Errorf("%s %s: %w", verb, name, err)
		}
	}
	w.BeginLine(Verb, "END")
	w.BeginKVList()
	w.Key("MAILBOXES")
	w.Num(uint64(g.u.Mailboxes))
	w.Key("FILES")
	w.Num(uint64(g.u.Files))
	w.Key("BYTES")
	w.Num(uint64(g.u.Bytes))
	if g.u.Skipped > 0 {
		w.Key("SKIPPED")
		w.Num(uint64(g.u.Skipped))
	}
	w.EndList()
	w.EndLine()
	if err := w.Flush(); err != nil {
		return UserEntry{}, err
	}
	if err := zw.Close(); err != nil {
		return UserEntry{}, err
	}
	g.u.State = idHex([32]byte(h.Sum(nil)))
	if err := fw.Commit(stateName(g.u.State)); err != nil {
		return UserEntry{}, err
	}
	return g.u, nil
}

// boxLine reads the MBTOOL BOX line dump writes before each mailbox when
// Known is answered (dump.Known): a mailbox the same as last time becomes
// its last entry again, nothing else read; for the others the line is
// kept for the APPLY MAILBOX that follows.
func (g *ingest) boxLine(rd *dlist.Reader, w *dlist.Writer) error {
	bad := func(t dlist.Token, what string) error {
		return fmt.Errorf("offset %d: MBTOOL BOX: %s", t.Offset, what)
	}
	t, err := rd.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.KVList {
		return bad(t, "expected %(")
	}
	g.box.uniqueID, g.box.key, g.box.since, g.box.uids, g.box.set = "", "", 0, 0, true
	g.uids.reset()
	same := false
	for {
		kt, err := rd.Next()
		if err != nil {
			return err
		}
		if kt.Kind == dlist.End {
			break
		}
		key := string(kt.Bytes)
		vt, err := rd.Next()
		if err != nil {
			return err
		}
		switch key {
		case "UNIQUEID":
			g.box.uniqueID = string(vt.Bytes)
		case "KEY":
			g.box.key = string(vt.Bytes)
		case "SAME":
			same = string(vt.Bytes) == "1"
		case "SINCE":
			if g.box.since, err = strconv.ParseUint(string(vt.Bytes), 10, 64); err != nil {
				return bad(vt, "bad SINCE")
			}
		case "UIDS":
			if vt.Kind != dlist.List {
				return bad(vt, "bad UIDS")
			}
			for {
				ut, err := rd.Next()
				if err != nil {
					return err
				}
				if ut.Kind == dlist.End {
					break
				}
				f, l, ok := syncrec.ParseUIDRange(ut.Bytes)
				if ut.Kind != dlist.Atom || !ok {
					return bad(ut, "bad UID range")
				}
				var p [8]byte
				binary.BigEndian.PutUint32(p[0:], f)
				binary.BigEndian.PutUint32(p[4:], l)
				if _, err := g.uids.Write(p[:]); err != nil {
					return err
				}
				g.box.uids += int64(l - f + 1)
			}
		default:
			return bad(kt, "unexpected key "+key)
		}
	}
	prev, ok := g.ui.prev[g.box.uniqueID]
	if g.box.since > 0 && (!ok || prev.Modseq != g.box.since) {
		return fmt.Errorf("mailbox %s: the dump sent changes since MODSEQ %d, the repository holds it as of %d",
			g.box.uniqueID, g.box.since, prev.Modseq)
	}
	if !same {
		return nil
	}
	g.box.set = false
	if !ok || prev.Key != g.box.key || prev.Skipped > 0 {
		return fmt.Errorf("mailbox %s: the dump found it unchanged, the repository does not hold it so", g.box.uniqueID)
	}
	return g.entry(w, prev)
}

// entry writes a mailbox's line into the state.
func (g *ingest) entry(w *dlist.Writer, e BoxEntry) error {
	e.Skipped = g.skips[e.Name]
	clear(g.skips)
	g.u.Mailboxes++
	g.u.Files += e.Files
	g.u.Bytes += e.Bytes
	return writeBoxEntry(w, &e)
}

// messages stores the file literals of an APPLY MESSAGE line that the
// repository does not hold.
func (g *ingest) messages(rd *dlist.Reader) error {
	t, err := rd.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.List {
		return fmt.Errorf("offset %d: expected a list of files, found %v", t.Offset, t.Kind)
	}
	for {
		t, err := rd.Next()
		if err != nil {
			return err
		}
		if t.Kind == dlist.End {
			return nil
		}
		if t.Kind != dlist.File {
			return fmt.Errorf("offset %d: expected a file literal, found %v", t.Offset, t.Kind)
		}
		fi := t.File
		mine, err := g.b.claim(fi.GUID)
		if err != nil {
			return err
		}
		if !mine {
			continue // the body is skipped by the next Next
		}
		if g.pw.size() >= PackTarget {
			if g.pw, err = g.b.rotate(g.pw); err != nil {
				g.b.unclaim(fi.GUID)
				g.pw = nil
				return err
			}
		}
		off, err := g.pw.add(fi.Partition, fi.GUID, fi.Size, rd.Body())
		if err != nil {
			g.b.unclaim(fi.GUID)
			return fmt.Errorf("file %s: %w", fi.GUID, err)
		}
		if err := g.b.stored(fi.GUID, g.pw.slot, off, fi.Size); err != nil {
			return err
		}
	}
}

// mailbox writes an APPLY MAILBOX line into a box of its own (a delta box
// when the MBTOOL BOX line before it says SINCE), preceded by the MBTOOL
// FILES line naming the files its records refer to, and the mailbox's
// entry into the state. The line is spooled (in memory up to 1 MiB, in a
// temporary file beyond) while the FILES line is written, so that memory
// stays bounded however large the mailbox.
func (g *ingest) mailbox(rd *dlist.Reader, state *dlist.Writer) error {
	bx := g.box
	g.box.set = false
	if !bx.set {
		bx.since, bx.key, bx.uniqueID = 0, "", ""
	}
	var prev BoxEntry
	if bx.since > 0 {
		prev = g.ui.prev[bx.uniqueID]
	}
	fw, err := g.b.r.store.Create()
	if err != nil {
		return err
	}
	defer fw.Abort()
	zw, err := zstdEncoder(fw)
	if err != nil {
		return err
	}
	defer putEncoder(zw)
	h := blake3.New()
	raw := io.MultiWriter(zw, h)
	w := dlist.NewWriter(raw)
	e := BoxEntry{Key: bx.key}
	w.BeginLine(Verb, "BOX")
	w.BeginKVList()
	w.Key("FORMAT")
	w.Num(SnapshotFormat)
	if bx.since > 0 {
		e.Base, e.Modseq, e.Generation, e.Cached = prev.Box, prev.Modseq, prev.Generation, prev.Cached
		if prev.Base != "" {
			e.Base = prev.Base
		}
		w.Key("BASE")
		w.Atom(e.Base)
		w.Key("SINCE")
		w.Num(bx.since)
		w.Key("UIDS")
		w.BeginList()
		err := g.uids.each(func(p []byte) error {
			syncrec.WriteUIDRange(w, binary.BigEndian.Uint32(p[0:]), binary.BigEndian.Uint32(p[4:]))
			return w.Err()
		})
		if err != nil {
			return err
		}
		w.EndList()
	}
	w.EndList()
	w.EndLine()

	named := guidtable.New(guidtable.Options{MemLimit: tableMem}) // files the box has named so far
	defer named.Close()
	g.spool.reset()
	sw := dlist.NewWriter(&g.spool)
	sw.BeginLine("APPLY", "MAILBOX")
	part, filesOpen := "", false
	var size, records, cached, files, nbytes int64
	var hms, gen uint64
	err = copyValue(rd, sw, func(t *dlist.Token, depth int, key string) error {
		switch {
		case depth == 1 && key == "PARTITION":
			part = string(t.Bytes)
		case depth == 1 && key == "MBOXNAME":
			e.Name = string(t.Bytes)
		case depth == 1 && key == "UNIQUEID":
			e.UniqueID = string(t.Bytes)
		case depth == 1 && key == "HIGHESTMODSEQ":
			hms, _ = strconv.ParseUint(string(t.Bytes), 10, 64)
		case depth == 1 && key == "MBTOOL_GENERATION":
			gen, _ = strconv.ParseUint(string(t.Bytes), 10, 32)
		case depth == 1 && key == "UIDVALIDITY":
			v, _ := strconv.ParseUint(string(t.Bytes), 10, 32)
			e.UIDValidity = uint32(v)
		case depth == 2 && t.Kind == dlist.KVList:
			records++
		case depth == 3 && key == syncrec.KeyCacheCRC:
			cached++
		case depth == 3 && key == "SIZE":
			size, _ = strconv.ParseInt(string(t.Bytes), 10, 64)
		case depth == 3 && key == "GUID" && t.Kind == dlist.Atom:
			id, err := guid.ParseBytes(t.Bytes)
			if err != nil || id.IsNull() {
				return nil
			}
			have, err := g.b.Have(id)
			if err != nil || !have {
				return err // no file: the dump reported it
			}
			added, err := named.Add(id, nil)
			if err != nil || !added {
				return err
			}
			if !filesOpen {
				w.BeginLine(Verb, "FILES")
				w.BeginKVList()
				w.Key("PARTITION")
				w.Atom(part)
				w.Key("GUIDS")
				w.BeginList()
				filesOpen = true
			}
			w.GUID(id)
			files++
			nbytes += size
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := sw.EndLine(); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	if filesOpen {
		w.EndList()
		w.EndList()
		if err := w.EndLine(); err != nil {
			return err
		}
	}
	// The spooled line goes into the box as it is.
	if err := w.Flush(); err != nil {
		return err
	}
	if err := g.spool.copyTo(raw); err != nil {
		return err
	}
	w.BeginLine(Verb, "END")
	w.BeginKVList()
	w.Key("RECORDS")
	w.Num(uint64(records))
	w.Key("FILES")
	w.Num(uint64(files))
	w.Key("BYTES")
	w.Num(uint64(nbytes))
	w.EndList()
	w.EndLine()
	if err := w.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	e.Box = idHex([32]byte(h.Sum(nil)))
	if err := fw.Commit(stateName(e.Box)); err != nil {
		return err
	}
	if bx.since > 0 {
		if bx.uniqueID != e.UniqueID {
			return fmt.Errorf("mailbox %s: the MBTOOL BOX line before it names %s", e.Name, bx.uniqueID)
		}
		e.Records, e.Delta = bx.uids, records
		// The files of the base, and the delta's.
		baseFiles, baseBytes := prev.Files, prev.Bytes
		if prev.Base != "" {
			baseFiles, baseBytes = prev.BaseFiles, prev.BaseBytes
		}
		e.BaseFiles, e.BaseBytes = baseFiles, baseBytes
		e.Files, e.Bytes = baseFiles+files, baseBytes+nbytes
	} else {
		e.Modseq, e.Generation, e.Records, e.Files, e.Bytes = max(hms, 1), int64(gen), records, files, nbytes
		// Every record with its cache record, from an index whose
		// version the dump told Known (docs/format.md, "Box").
		if cached == records && bx.set {
			e.Cached = g.ui.indexVersion(e.UniqueID)
		}
	}
	return g.entry(state, e)
}

// tempFile makes an unlinked temporary file, on disk where possible.
func tempFile() (*os.File, error) { return guidtable.TempFile("", "mbtool-repo-*") }

// spill holds bytes in memory up to spillAt, and in an unlinked temporary
// file beyond.
type spill struct {
	buf []byte
	f   *os.File
	bw  *bufio.Writer
}

const spillAt = 1 << 20

func (s *spill) reset() {
	s.buf = s.buf[:0]
	if s.f != nil {
		s.f.Close()
		s.f, s.bw = nil, nil
	}
}

func (s *spill) Write(p []byte) (int, error) {
	if s.f == nil && len(s.buf)+len(p) <= spillAt {
		s.buf = append(s.buf, p...)
		return len(p), nil
	}
	if s.f == nil {
		f, err := tempFile()
		if err != nil {
			return 0, err
		}
		s.f, s.bw = f, bufio.NewWriterSize(f, 64<<10)
		if _, err := s.bw.Write(s.buf); err != nil {
			return 0, err
		}
		s.buf = s.buf[:0]
	}
	return s.bw.Write(p)
}

// reader returns the bytes written, from the start.
func (s *spill) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.buf), nil
	}
	if err := s.bw.Flush(); err != nil {
		return nil, err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return bufio.NewReaderSize(s.f, 64<<10), nil
}

func (s *spill) copyTo(w io.Writer) error {
	r, err := s.reader()
	if err != nil {
		return err
	}
	_, err = io.Copy(w, r)
	return err
}

// each calls fn with each 8 bytes written.
func (s *spill) each(fn func([]byte) error) error {
	r, err := s.reader()
	if err != nil {
		return err
	}
	var p [8]byte
	for {
		if _, err := io.ReadFull(r, p[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := fn(p[:]); err != nil {
			return err
		}
	}
}

func (s *spill) close() { s.reset(); s.buf = nil }
