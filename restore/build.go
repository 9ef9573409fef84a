package restore

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// builder writes one mailbox into its staging directory as its records
// stream by: message files, cyrus.index records (after a placeholder for
// the header, which is written at commit), and the per-message
// annotations. Memory is bounded by the user flags and the annotations,
// not by the number of records.
type builder struct {
	rs   *restorer
	b    *box
	name string // the mailbox's, for errors
	lane int    // the writer that runs its operations (pipeline.boxLane)
	// The mailbox's staging directory and its files: set and used only
	// by the operations the builder hands to the writer of the read
	// phase (builder.op), on its goroutine.
	dir *cyrusfs.Dir
	idx builderFile
	w   *bufio.Writer
	buf []byte

	slots  map[string]int // lower-cased user flag name -> slot
	crc    syncrec.CRC
	annots [][2][]byte // cyrus.annotations records
	h      partition.IndexHeader

	// cyrus.cache, written from the dump's cache records; cacheOff is the
	// offset of the next record. needRepack: some record with a message
	// file has no cache record, so Cyrus must build it.
	cache      builderFile
	cw         *bufio.Writer
	cacheOff   uint64
	needRepack bool
}

// builderFile is a file a builder writes: one it staged
// (*cyrusfs.NewFile, written through its descriptor) or an existing
// mailbox's that undelete appends to (*os.File).
type builderFile interface {
	io.Writer
	io.WriterAt
	Sync() error
	Close() error
}

// builderBufs are the buffers a builder writes through, kept by the
// restorer from one mailbox to the next (one builder is open at a time):
// two 64 KiB writers made and cleared for each of 20,000 small mailboxes
// cost more than the mailbox's own files.
type builderBufs struct {
	w, cw *bufio.Writer
	buf   []byte
	slots map[string]int
}

// take returns a writer of 64 KiB from *w, made on first use, writing
// to f.
func take(w **bufio.Writer, f io.Writer) *bufio.Writer {
	if *w == nil {
		*w = bufio.NewWriterSize(f, 64<<10)
	} else {
		(*w).Reset(f)
	}
	bw := *w
	*w = nil // until the builder gives it back
	return bw
}

// zeros is what the index header and the cache generation hold until
// finish writes them.
var zeros [partition.IndexHeaderSize]byte

func (rs *restorer) newBuilder(b *box, src *syncrec.Mailbox) (*builder, error) {
	st, err := rs.stageFor(b.partition)
	if err != nil {
		return nil, err
	}
	name := st.newBoxName()
	b.st, b.dir = st, st.mbox.Join(name)
	sp := &rs.spare
	if sp.slots == nil {
		sp.slots = make(map[string]int)
	}
	clear(sp.slots)
	bl := &builder{rs: rs, b: b, name: b.name, buf: sp.buf, slots: sp.slots, crc: syncrec.NewCRC()}
	if rs.pipe != nil {
		bl.lane = rs.pipe.boxLane(b.id)
	}
	sp.slots, sp.buf = nil, nil
	bl.w = take(&sp.w, bufSink{bl, &bl.idx})
	// The directory and cyrus.index are made by the writer of the read
	// phase (pipeline.go), as are all of the builder's files: the parser
	// touches none of bl.dir, bl.idx and bl.cache.
	bname, owner := b.name, rs.owner
	err = bl.stage(func() error {
		dir, err := st.mbox.Mkdir(name, owner)
		if err != nil {
			return fmt.Errorf("staging mailbox %s: %w", bname, err)
		}
		bl.dir = dir
		f, err := dir.NewFile(partition.FileIndex, owner, 0o600)
		if err == nil {
			err = f.Link(true) // at once: the staging directory is private
		}
		if err != nil {
			return fmt.Errorf("staging mailbox %s: %w", bname, err)
		}
		bl.idx = f
		return nil
	})
	if err != nil {
		bl.close()
		return nil, err
	}
	bl.w.Write(zeros[:]) // the header comes at commit
	bl.h = partition.IndexHeader{
		LastAppendDate: clamp32(src.LastAppendDate),
		LastUID:        src.LastUID,
		POP3LastLogin:  clamp32(src.POP3LastLogin),
		UIDValidity:    src.UIDValidity,
		Options:        optionBits(src.Options),
		HighestModseq:  src.HighestModseq,
		RecentUID:      src.RecentUID,
		RecentTime:     clamp32(src.RecentTime),
		POP3ShowAfter:  clamp32(src.POP3ShowAfter),
		CreatedModseq:  src.CreatedModseq,
		// As for a mailbox Cyrus creates (imap/mailbox.c mailbox_create);
		// a replica made by sync_server gets the same.
		ChangesEpoch:  clamp32(timeNow().Unix()),
		DeletedModseq: src.DeletedModseq,
		Generation:    src.Generation,
	}
	// The source's user flags by slot, unused ones included, when the dump
	// carries them; else each flag gets a slot as it first appears, as
	// Cyrus's sync_server gives them (imap/mailbox.c mailbox_user_flag).
	for i, f := range src.UserFlags {
		if f == "" {
			continue
		}
		if err := dumpcheck.CheckText("flag", f); err != nil {
			bl.close()
			return nil, err
		}
		if _, dup := bl.slots[strings.ToLower(f)]; dup {
			bl.close()
			return nil, fmt.Errorf("%w: mailbox %s: user flag %q defined twice", ErrDamaged, src.Name, f)
		}
		bl.slots[strings.ToLower(f)] = i
	}
	b.flags = append([]string(nil), src.UserFlags...)
	return bl, nil
}

func clamp32(t int64) uint32 {
	if t < 0 {
		return 0
	}
	return uint32(min(t, 1<<32-1))
}

// optionBits converts replication's OPTIONS letters (docs/cyrus/replication.md §3);
// unknown letters are ignored, as Cyrus does.
func optionBits(s string) uint32 {
	var o uint32
	for _, c := range s {
		switch c {
		case 'P':
			o |= partition.OptPOP3NewUIDL
		case 'S':
			o |= partition.OptSharedSeen
		case 'D':
			o |= partition.OptDupDeliver
		case 'A':
			o |= partition.OptHasAlarms
		}
	}
	return o
}

// add writes one record.
func (bl *builder) add(r *syncrec.Record) error { return bl.addRecord(r, true) }

// addRecord writes one record; file false: an expunged record that must
// not take a message file (a target's message a replace expunges).
func (bl *builder) addRecord(r *syncrec.Record, file bool) error {
	// The policy checked r (dumpcheck.Records).
	rec := partition.Record{
		UID:          r.UID,
		InternalDate: clamp32(r.InternalDate),
		Size:         r.Size,
		LastUpdated:  clamp32(r.LastUpdated),
		CacheVersion: partition.CacheVersion,
		GUID:         r.GUID,
		Modseq:       r.Modseq,
	}
	for _, f := range r.Flags {
		if strings.HasPrefix(f, `\`) {
			rec.SystemFlags |= systemFlag(f) // unknown ones are ignored, as by Cyrus
			continue
		}
		slot, err := bl.userFlag(f)
		if err != nil {
			return err
		}
		rec.SetUserFlag(slot)
	}
	if err := bl.annotations(r, &rec); err != nil {
		return err
	}
	expunged := rec.SystemFlags&partition.InternalExpunged != 0
	dst := strconv.FormatUint(uint64(r.UID), 10) + "."
	m, ok, err := bl.rs.msg(r.GUID)
	if err != nil {
		return err
	}
	ok = ok && file
	if ok {
		if err := bl.rs.place(&m, r.GUID, bl, r.UID, dst, int64(rec.InternalDate)); err != nil {
			return fmt.Errorf("UID %d: %w", r.UID, err)
		}
		rec.HeaderSize = m.info.headerSize
		rec.GMTime, rec.SentDate = m.info.recordDates(rec.InternalDate)
		if err := bl.addCache(&rec, r.Cache); err != nil {
			return err
		}
	} else {
		// The dump has no file for this record: an expunged message whose
		// file Cyrus had already removed, or one expunged by the rule of
		// both restores for a file the dump reported as missing
		// (syncrec.LoseFile, applied as the record was read:
		// restorer.loseFile). The record stays, expunged and unlinked, as
		// Cyrus keeps one whose file is gone.
		if !expunged {
			return fmt.Errorf("UID %d: no message file for GUID %s, and not expunged", r.UID, r.GUID)
		}
		rec.SystemFlags |= partition.InternalExpunged | partition.InternalUnlinked
	}
	bl.crc.Add(r)
	h := &bl.h
	h.NumRecords++
	h.LastUID = max(h.LastUID, r.UID)
	h.HighestModseq = max(h.HighestModseq, r.Modseq)
	if expunged {
		if h.FirstExpunged == 0 || rec.LastUpdated < h.FirstExpunged {
			h.FirstExpunged = rec.LastUpdated
		}
	} else {
		h.Exists++
		h.QuotaMailboxUsed += uint64(r.Size)
		if rec.SystemFlags&partition.FlagDeleted != 0 {
			h.Deleted++
		}
		if rec.SystemFlags&partition.FlagAnswered != 0 {
			h.Answered++
		}
		if rec.SystemFlags&partition.FlagFlagged != 0 {
			h.Flagged++
		}
		if rec.SystemFlags&partition.FlagSeen == 0 {
			h.Unseen++
		}
	}
	bl.buf = partition.AppendRecord(bl.buf[:0], rec)
	_, err = bl.w.Write(bl.buf)
	return err
}

// systemFlag maps a dumped system flag to its bit (case-insensitively,
// as imap/sync_support.c sync_getflags does).
func systemFlag(f string) uint32 {
	switch strings.ToLower(f) {
	case `\answered`:
		return partition.FlagAnswered
	case `\flagged`:
		return partition.FlagFlagged
	case `\deleted`:
		return partition.FlagDeleted
	case `\draft`:
		return partition.FlagDraft
	case `\seen`:
		return partition.FlagSeen
	case `\expunged`:
		return partition.InternalExpunged
	}
	return 0
}

// annotations maps the users of r's annotations, moves the virtual ones
// into the record's fields, and keeps the others for cyrus.annotations.
func (bl *builder) annotations(r *syncrec.Record, rec *partition.Record) error {
	for i := range r.Annotations {
		a := &r.Annotations[i]
		if a.UserID != "" {
			a.UserID = bl.rs.users.User(a.UserID)
		}
		switch a.Entry {
		case syncrec.AnnotThrID:
			n, err := strconv.ParseUint(string(a.Value), 16, 64)
			if err != nil {
				return fmt.Errorf("%w: UID %d: thrid %q", ErrDamaged, r.UID, a.Value)
			}
			rec.CID = n
		case syncrec.AnnotSaveDate:
			n, err := strconv.ParseUint(string(a.Value), 10, 32)
			if err != nil {
				return fmt.Errorf("%w: UID %d: savedate %q", ErrDamaged, r.UID, a.Value)
			}
			rec.SaveDate = uint32(n)
		case syncrec.AnnotCreatedModseq:
			n, err := strconv.ParseUint(string(a.Value), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: UID %d: createdmodseq %q", ErrDamaged, r.UID, a.Value)
			}
			rec.CreatedModseq = n
		default:
			if len(a.Value) == 0 {
				continue
			}
			key := partition.AnnotationKey(strconv.FormatUint(uint64(r.UID), 10), a.Entry,
				partition.StoredAnnotationUser(a.UserID, bl.b.owner))
			bl.annots = append(bl.annots, [2][]byte{key, partition.EncodeAnnotation(a.Value, a.Modseq)})
			if !r.Expunged() {
				bl.h.QuotaAnnotUsed += uint32(len(a.Value))
			}
		}
	}
	return nil
}

// finish completes the staged mailbox, but for the two files that depend
// on the final name and uniqueid (cyrus.header and the index header).
func (bl *builder) finish() error {
	if err := bl.w.Flush(); err != nil {
		return fmt.Errorf("writing index: %w", err)
	}
	if err := bl.finishCache(); err != nil {
		return err
	}
	annots, owner := bl.annots, bl.rs.owner
	err := bl.op(func() error {
		err := bl.idx.Close()
		bl.idx = nil
		if err != nil {
			return err
		}
		if len(annots) > 0 {
			return partition.WriteTwoskipAt(bl.dir, partition.FileAnnotations, owner, annots)
		}
		return nil
	})
	if err != nil {
		return err
	}
	bl.h.SyncCRC, bl.h.SyncCRCAnnot = bl.crc.Basic, bl.crc.Annot
	// Cyrus counts the mailbox annotations in quota_annot_used too.
	for _, a := range bl.b.annots {
		bl.h.QuotaAnnotUsed += uint32(len(a.Value))
	}
	bl.b.hdr = bl.h
	return nil
}

// op has the writer of the read phase run fn after the builder's earlier
// operations (stage), its error naming the mailbox as the parser's do;
// outside the read phase it runs fn at once.
func (bl *builder) op(fn func() error) error { return bl.opHeld(nil, fn) }

// opHeld is op for an operation that writes a held message of slab,
// which it unrefs once it has run (or been skipped after an error).
func (bl *builder) opHeld(slab *holdSlab, fn func() error) error {
	return bl.opAfter(slab, opRef{}, fn)
}

// opAfter is opHeld for an operation that also reads a file made by
// the operation after (of another mailbox's lane, or of msg/'s).
func (bl *builder) opAfter(slab *holdSlab, after opRef, fn func() error) error {
	if bl.rs.pipe == nil {
		return fn() // its error is the caller's to name
	}
	name := bl.name
	return bl.send(stageOp{slab: slab, after: after, fn: func() error {
		if err := fn(); err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		return nil
	}})
}

// stage has the builder's writer (pipeline.go) run fn after everything
// it was given before (send). The error it returns is the writers'
// error so far (of an earlier operation), not fn's: fn's comes out of a
// later call, or of the end of the read phase.
func (bl *builder) stage(fn func() error) error { return bl.send(stageOp{fn: fn}) }

// send queues op on the builder's lane, from the command being read, or
// runs it at once outside the read phase (or in a test that turns the
// pipeline off).
func (bl *builder) send(op stageOp) error {
	if bl.rs.pipe == nil {
		return op.fn()
	}
	op.at = bl.rs.spot
	return bl.rs.pipe.send(bl.lane, op)
}

func (bl *builder) close() {
	// Run even after an error of the writer, which then skips all else.
	bl.send(stageOp{always: true, fn: func() error {
		if bl.idx != nil {
			bl.idx.Close()
		}
		if bl.cache != nil {
			bl.cache.Close()
		}
		bl.dir.Close()
		return nil
	}})
	// The buffers go back to the restorer, for the next mailbox; the
	// writers no longer point at this mailbox's files.
	sp := &bl.rs.spare
	if bl.w != nil {
		bl.w.Reset(nil)
		sp.w, bl.w = bl.w, nil
	}
	if bl.cw != nil {
		bl.cw.Reset(nil)
		sp.cw, bl.cw = bl.cw, nil
	}
	if bl.slots != nil {
		sp.slots, bl.slots = bl.slots, nil
	}
	sp.buf, bl.buf = bl.buf[:0], nil
}

// userFlag returns the slot of user flag f, giving it the first free slot
// if the mailbox has no flag of that name yet (case-insensitively, as
// imap/mailbox.c mailbox_user_flag).
func (bl *builder) userFlag(f string) (int, error) {
	key := strings.ToLower(f)
	if slot, ok := bl.slots[key]; ok {
		return slot, nil
	}
	if err := dumpcheck.CheckText("flag", f); err != nil {
		return 0, err
	}
	flags := bl.b.flags
	slot := len(flags)
	for i, name := range flags {
		if name == "" {
			slot = i
			break
		}
	}
	if slot >= partition.MaxUserFlags {
		return 0, fmt.Errorf("%w: more than %d user flags", ErrDamaged, partition.MaxUserFlags)
	}
	if slot == len(flags) {
		bl.b.flags = append(flags, f)
	} else {
		flags[slot] = f
	}
	bl.slots[key] = slot
	return slot, nil
}

// addCache appends the dump's cache record of rec's message (checked when
// it was read: syncrec.ReadRecord) to the staged
// cyrus.cache and points rec at it (imap/mailbox.c mailbox_append_cache).
// Without one (a dump made over replication, or a source record without a
// sound cache), the mailbox is marked for Cyrus to build its cache.
func (bl *builder) addCache(rec *partition.Record, c []byte) error {
	if c == nil {
		bl.needRepack = true
		return nil
	}
	if bl.cw == nil {
		owner, name := bl.rs.owner, bl.name
		err := bl.stage(func() error {
			f, err := bl.dir.NewFile(partition.FileCache, owner, 0o600)
			if err == nil {
				err = f.Link(true)
			}
			if err != nil {
				return fmt.Errorf("staging mailbox %s: %w", name, err)
			}
			bl.cache = f
			return nil
		})
		if err != nil {
			return err
		}
		bl.cw = take(&bl.rs.spare.cw, bufSink{bl, &bl.cache})
		bl.cw.Write(zeros[:4]) // the generation, at finish
		bl.cacheOff = 4
	}
	if _, err := bl.cw.Write(c); err != nil {
		return fmt.Errorf("writing cache: %w", err)
	}
	rec.CacheOffset = bl.cacheOff
	rec.CacheCRC = crc32.ChecksumIEEE(c)
	bl.cacheOff += uint64(len(c))
	return nil
}

// finishCache completes cyrus.cache and settles the generation: the
// source's, or, when Cyrus has to build the cache (its repack adds one to
// the generation, imap/mailbox.c mailbox_repack_setup), one less, so that
// the mailbox has the source's generation once Cyrus has opened it.
func (bl *builder) finishCache() error {
	if bl.needRepack {
		bl.h.Options |= partition.OptNeedsRepack
		bl.h.Generation--
	}
	if bl.cw == nil {
		return nil
	}
	if err := bl.cw.Flush(); err != nil {
		return fmt.Errorf("writing cache: %w", err)
	}
	var g [4]byte
	binary.BigEndian.PutUint32(g[:], bl.h.Generation)
	return bl.op(func() error {
		if _, err := bl.cache.WriteAt(g[:], 0); err != nil {
			return fmt.Errorf("writing cache: %w", err)
		}
		err := bl.cache.Close()
		bl.cache = nil
		return err
	})
}
