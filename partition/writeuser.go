package partition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/lock"

	"golang.org/x/sys/unix"
)

// LockNamespace takes Cyrus's namespace lock of userid ("*U*userid"), or,
// for userid "", the one Cyrus takes for changes to shared mailboxes
// ("*U*"), waiting until ctx is done. Release it when done.
func (s *Spool) LockNamespace(ctx context.Context, userid string, exclusive bool) (*lock.File, error) {
	return s.lockName(ctx, namespaceLockName(userid), exclusive)
}

// TryLockNamespace takes userid's namespace lock as LockNamespace does
// without waiting: an error wrapping lock.ErrWouldBlock if another holder
// has it. A writer that already holds a namespace lock takes another one
// only this way, so that two holders that each want the other's never
// wait for each other (Cyrus takes them in no fixed order).
func (s *Spool) TryLockNamespace(userid string, exclusive bool) (*lock.File, error) {
	return s.takeLock(context.Background(), namespaceLockName(userid), exclusive, false)
}

// LockMailboxName takes the name lock of mailbox e: its uniqueid, or its
// name in the legacy layout (docs/cyrus/locks.md §2). Creating or replacing a
// mailbox takes it exclusive.
func (s *Spool) LockMailboxName(ctx context.Context, e Entry, exclusive bool) (*lock.File, error) {
	return s.lockName(ctx, nameLockName(e), exclusive)
}

// nameLockName is the name of mailbox e's name lock.
func nameLockName(e Entry) string {
	if e.LegacyDirs() || e.UniqueID == "" {
		return e.Name
	}
	return e.UniqueID
}

// TryLockMailboxName takes mailbox e's name lock as LockMailboxName does
// without waiting (see TryLockNamespace).
func (s *Spool) TryLockMailboxName(e Entry, exclusive bool) (*lock.File, error) {
	return s.takeLock(context.Background(), nameLockName(e), exclusive, false)
}

// EncodeSeen returns the stored value of a seen record (imap/seen_db.c
// seen_write): "1 lastread lastuid lastchange seenuids".
func EncodeSeen(r SeenRecord) []byte {
	b := []byte("1 ")
	b = strconv.AppendInt(b, r.LastRead, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.LastUID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.LastChange, 10)
	b = append(b, ' ')
	return append(b, r.SeenUIDs...)
}

// UpdateSeen changes user's seen database (twoskip) as UpdateTwoskip does,
// creating it (and its directory) if missing. Keys are mailbox uniqueids,
// values EncodeSeen's. The path depends on the user's INBOX entry, so
// register a restored INBOX first. With a batch, a seen db that does not
// exist yet is written into it (NewFiles), and fn, which keeps held bytes
// alive meanwhile, may be called again by batch.Commit.
func (s *Spool) UpdateSeen(batch *NewFiles, user string, owner Owner, held int, fn func(tx *TwoskipTx) error) error {
	path, err := s.SeenPath(user)
	if err != nil {
		return fmt.Errorf("seen db of %s: %w", user, err)
	}
	return s.UpdateSeenAt(batch, user, path, owner, held, fn)
}

// UpdateSeenAt is UpdateSeen of user's seen database at path, looked up
// beforehand (MailboxesView.UserDBPaths, with the user's INBOX registered).
func (s *Spool) UpdateSeenAt(batch *NewFiles, user, path string, owner Owner, held int, fn func(tx *TwoskipTx) error) error {
	if s.Config.SeenDB != "twoskip" {
		return fmt.Errorf("seenstate_db %s: only twoskip is supported", s.Config.SeenDB)
	}
	if err := updateTwoskipIn(context.Background(), batch, s.tree(), path, true, owner, fn, held); err != nil {
		return fmt.Errorf("seen db of %s: %w", user, err)
	}
	return nil
}

// SubKey returns the key of a subscription to the internal name in user's
// subscription database: "N" + the dbname, with the user's own INBOX
// written "INBOX" (imap/mboxlist.c mboxlist_dbname_to_key).
func (s *Spool) SubKey(user, name string) []byte {
	db := nameToDBName(name)
	inbox := nameToDBName(s.userInbox(user))
	if db == inbox || strings.HasPrefix(db, inbox+string(rune(dbHierSep))) {
		db = "INBOX" + db[len(inbox):]
	}
	return []byte("N" + db)
}

// AddSubs adds subscriptions to the internal names to user's subscription
// database (flat), creating it if missing, the way Cyrus's flat writer
// replaces it: lock the live file, write <path>.NEW, fsync, rename
// (docs/cyrus/locks.md §4.7). Existing subscriptions are kept. With a
// batch, a file that does not exist yet is written into it (NewFiles),
// and names is kept until batch.Commit.
func (s *Spool) AddSubs(batch *NewFiles, user string, owner Owner, names []string) error {
	path, err := s.SubsPath(user)
	if err != nil {
		return fmt.Errorf("subscriptions of %s: %w", user, err)
	}
	return s.AddSubsAt(batch, user, path, owner, names)
}

// AddSubsAt is AddSubs to user's subscription database at path, looked
// up beforehand (MailboxesView.UserDBPaths, with the user's INBOX
// registered).
func (s *Spool) AddSubsAt(batch *NewFiles, user, path string, owner Owner, names []string) error {
	if s.Config.SubDB != "flat" {
		return fmt.Errorf("subscription_db %s: only flat is supported", s.Config.SubDB)
	}
	edit := func(recs map[string][]byte) {
		if _, ok := recs[subsVersionKey]; !ok {
			recs[subsVersionKey] = []byte("2")
		}
		for _, n := range names {
			recs[string(s.SubKey(user, n))] = nil
		}
	}
	if err := batch.CommitIfPending(path); err != nil {
		return err
	}
	if batch != nil {
		recs := make(map[string][]byte, len(names)+1)
		edit(recs)
		data, err := encodeFlat(recs)
		if err != nil {
			return fmt.Errorf("subscriptions of %s: %w", user, err)
		}
		held := len(data)
		for _, n := range names {
			held += len(n)
		}
		done, err := createIn(batch, s.tree(), path, owner, data, held, func() error { return s.AddSubsAt(nil, user, path, owner, names) })
		if done || err != nil {
			return err
		}
	}
	if err := updateFlat(s.tree(), path, owner, edit); err != nil {
		return fmt.Errorf("subscriptions of %s: %w", user, err)
	}
	return nil
}

// updateFlat rewrites a flat database by rename under the writer's lock.
func updateFlat(tree *cyrusfs.Tree, path string, owner Owner, edit func(recs map[string][]byte)) error {
	return UpdateFlatFile(context.Background(), tree, path, true, owner, func(recs map[string][]byte) (bool, error) {
		edit(recs)
		return true, nil
	})
}

// UpdateFlatFile changes the flat database at path beneath the roots of
// tree as Cyrus's flat writer does: exclusive lock on the live file (the
// wait bounded by ctx), read it whole, edit, write <path>.NEW, fsync,
// rename, fsync the directory, then release the lock. The one writer of
// flat databases, for restore and seen-cleanup alike. A missing file is
// created first (empty, owned by owner) when create is set, else it is
// fs.ErrNotExist. When edit reports no change, or an error, the file is
// left alone.
func UpdateFlatFile(ctx context.Context, tree *cyrusfs.Tree, path string, create bool, owner Owner, edit func(recs map[string][]byte) (bool, error)) error {
	if create {
		if err := tree.Ensure(path, owner); err != nil {
			return err
		}
	}
	f, err := tree.OpenLocked(ctx, path, os.O_RDWR, true)
	if err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	recs := make(map[string][]byte)
	err = cyrusdb.ReadFlat(path, io.NewSectionReader(f, 0, fi.Size()), func(k, v []byte) error {
		recs[string(k)] = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return err
	}
	if changed, err := edit(recs); err != nil || !changed {
		return err
	}
	data, err := encodeFlat(recs)
	if err != nil {
		return err
	}
	return replaceFile(tree, path, fi, data)
}

// encodeFlat returns the flat database of recs.
func encodeFlat(recs map[string][]byte) ([]byte, error) {
	list := make([][2][]byte, 0, len(recs))
	for k, v := range recs {
		list = append(list, [2][]byte{[]byte(k), v})
	}
	var buf bytes.Buffer
	if err := cyrusdb.WriteFlat(&buf, list); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// createIn writes the file at path, which must not exist, whole with
// data into batch (NewFiles: 0600, owned by owner, its missing
// directories made unsynced); redo, keeping held bytes alive, writes it
// by the writer's own transaction should the name be taken by the time
// the batch names it. It reports done = false, with nothing written, when
// something is at path already (the caller takes its transaction's way).
func createIn(batch *NewFiles, tree *cyrusfs.Tree, path string, owner Owner, data []byte, held int, redo func() error) (done bool, err error) {
	dir, name := filepath.Split(filepath.Clean(path))
	d, err := tree.MkdirAllUnsynced(dir, owner)
	if err != nil {
		return false, err
	}
	if _, err := d.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		d.Close()
		return false, nil
	}
	nf, err := d.NewFile(name, owner, 0o600)
	if err != nil {
		d.Close()
		return false, err
	}
	if _, err := nf.File().Write(data); err != nil {
		nf.Abort()
		d.Close()
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, batch.add(d, nf, path, held, redo)
}

// replaceFile replaces the locked file at path (whose attributes are old)
// with data, keeping its owner and mode: <path>.NEW, fsync, rename, fsync
// of the directory.
func replaceFile(tree *cyrusfs.Tree, path string, old fs.FileInfo, data []byte) error {
	err := tree.Replace(path, ownerOf(old), old.Mode().Perm(), func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

// EncodeQuota returns the stored form of a quota root as Cyrus 3.6 writes
// it (imap/quota_db.c quota_write): %(S (used [limit]) M (...) AS (...)
// NF (...) MODSEQ n) and a LF; a resource without a limit shows its usage
// only. STORAGE usage is in bytes, its limit in KiB.
func EncodeQuota(q Quota) ([]byte, error) {
	b, err := printValue(func(w *dlist.Writer) {
		w.BeginKVList()
		for _, k := range quotaKeys {
			w.Key(k.key)
			w.BeginList()
			w.Num(uint64(max(q.Usage[k.name], 0)))
			if l, ok := q.Limits[k.name]; ok && l >= 0 {
				w.Num(uint64(l))
			}
			w.EndList()
		}
		w.Key("MODSEQ")
		w.Num(q.Modseq)
		w.EndList()
	})
	if err != nil {
		return nil, fmt.Errorf("quota root %s: %w", q.Root, err)
	}
	return append(b, '\n'), nil
}

// PutQuota writes the quota root q (quotalegacy), replacing the file the
// way Cyrus's writer does: lock the live file (created if missing), write
// <file>.NEW, fsync, rename (docs/cyrus/locks.md §4.6). With a batch, a
// root that has no file yet is written into it (NewFiles).
func (s *Spool) PutQuota(batch *NewFiles, q Quota, owner Owner) error {
	path, err := s.QuotaPath(q.Root)
	if err != nil {
		return err
	}
	data, err := EncodeQuota(q)
	if err != nil {
		return err
	}
	tree := s.tree()
	if err := batch.CommitIfPending(path); err != nil {
		return err
	}
	if batch != nil {
		done, err := createIn(batch, tree, path, owner, data, len(data), func() error { return s.PutQuota(nil, q, owner) })
		if err != nil {
			return fmt.Errorf("quota root %s: %w", q.Root, err)
		}
		if done {
			return nil
		}
	}
	if err := tree.Ensure(path, owner); err != nil {
		return fmt.Errorf("quota root %s: %w", q.Root, err)
	}
	f, err := tree.OpenLocked(context.Background(), path, os.O_RDWR, true)
	if err != nil {
		return fmt.Errorf("quota root %s: locking %s: %w", q.Root, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := replaceFile(tree, path, fi, data); err != nil {
		return fmt.Errorf("quota root %s: %w", q.Root, err)
	}
	return nil
}

// AnnotationKey returns the key of an annotation in annotations.db (first
// = the mailbox uniqueid) or cyrus.annotations (first = the decimal UID):
// first NUL entry NUL userid NUL (docs/cyrus/files.md §8).
func AnnotationKey(first, entry, userid string) []byte {
	b := make([]byte, 0, len(first)+len(entry)+len(userid)+3)
	b = append(b, first...)
	b = append(b, 0)
	b = append(b, entry...)
	b = append(b, 0)
	b = append(b, userid...)
	return append(b, 0)
}

// StoredAnnotationUser returns the userid under which Cyrus stores a
// private annotation of userid on a mailbox owned by owner: the owner's
// placeholder "[.OwNeR.]" for the owner, else userid.
func StoredAnnotationUser(userid, owner string) string {
	if userid != "" && userid == owner {
		return ownerToken
	}
	return userid
}

// EncodeAnnotation returns the stored value of an annotation
// (imap/annotate.c make_entry): the value length as 4 big-endian bytes and
// 4 zero bytes, the value, NUL, the content type "text/plain", NUL, 8 zero
// bytes, the modseq as 8 big-endian bytes and a zero flags byte.
func EncodeAnnotation(value []byte, modseq uint64) []byte {
	b := make([]byte, 0, 8+len(value)+1+11+17)
	b = be.AppendUint32(b, uint32(len(value)))
	b = append(b, 0, 0, 0, 0)
	b = append(b, value...)
	b = append(b, 0)
	b = append(b, "text/plain"...)
	b = append(b, 0)
	b = append(b, make([]byte, 8)...)
	b = be.AppendUint64(b, modseq)
	return append(b, 0)
}

// UpdateAnnotationsDB changes annotations.db (the mailbox annotations of
// every mailbox) as UpdateTwoskip does, creating it if missing.
func (s *Spool) UpdateAnnotationsDB(owner Owner, fn func(tx *TwoskipTx) error) error {
	if s.Config.AnnotationDB != "twoskip" {
		return fmt.Errorf("annotation_db %s: only twoskip is supported", s.Config.AnnotationDB)
	}
	return s.UpdateTwoskip(s.Config.AnnotationPath, true, owner, fn)
}

// ReadIndexHeader reads and checks the header of e's cyrus.index without
// any lock (for quota usage, and a dump's estimate of its totals), opened
// beneath the spool's roots without following symlinks.
func (s *Spool) ReadIndexHeader(e Entry) (IndexHeader, error) {
	return s.readIndexHeader(e, s.openReadFd)
}

// ReadIndexHeaders calls fn with ReadIndexHeader's result for each of
// entries in turn, until fn returns false, for one pass over many
// mailboxes (a dump's estimate of its totals): the roots are opened once
// for the pass (cyrusfs.Pinned) instead of checked again for every
// mailbox. fn must not block. It may run in several goroutines at once.
func (s *Spool) ReadIndexHeaders(entries []Entry, fn func(e Entry, h IndexHeader, err error) bool) {
	p := s.tree().Pin()
	defer p.Close()
	open := func(path string) (int, error) { return p.OpenFd(path, os.O_RDONLY) }
	for _, e := range entries {
		h, err := s.readIndexHeader(e, open)
		if !fn(e, h, err) {
			return
		}
	}
}

// PinnedReads reads quota roots and index headers as ReadQuota and
// ReadIndexHeader do, without locks, from the spool's roots opened once
// for the pass (cyrusfs.Pinned): a restore recomputing the usage of
// its quota roots makes one such pass, where each read would otherwise
// check its root again (a stat). Close it when the pass ends; it is not
// safe for concurrent use.
type PinnedReads struct {
	s *Spool
	p *cyrusfs.Pinned
}

// PinReads begins a pass of PinnedReads.
func (s *Spool) PinReads() *PinnedReads { return &PinnedReads{s: s, p: s.tree().Pin()} }

func (r *PinnedReads) open(path string) (int, error) { return r.p.OpenFd(path, os.O_RDONLY) }

// ReadQuota is Spool.ReadQuota.
func (r *PinnedReads) ReadQuota(root string) (Quota, error) { return r.s.readQuota(root, r.open) }

// ReadIndexHeader is Spool.ReadIndexHeader.
func (r *PinnedReads) ReadIndexHeader(e Entry) (IndexHeader, error) {
	return r.s.readIndexHeader(e, r.open)
}

// Close closes the pinned roots.
func (r *PinnedReads) Close() { r.p.Close() }

func (s *Spool) readIndexHeader(e Entry, open func(string) (int, error)) (IndexHeader, error) {
	path, err := s.MetaPath(e, FileIndex)
	if err != nil {
		return IndexHeader{}, err
	}
	// A bare descriptor: this runs for every mailbox of a dump, and
	// os.NewFile would cost an fcntl more.
	fd, err := open(path)
	if err != nil {
		return IndexHeader{}, err
	}
	defer unix.Close(fd)
	return IndexHeaderAt(cyrusfs.FdReader(fd), path)
}

// indexHeaderBufs are IndexHeaderAt's buffers.
var indexHeaderBufs = sync.Pool{New: func() any { return new([IndexHeaderSize]byte) }}

// IndexHeaderAt reads and checks the index header at the start of the
// cyrus.index f (at path, for errors): the one reader of it, with or
// without the index lock.
func IndexHeaderAt(f io.ReaderAt, path string) (IndexHeader, error) {
	// A pooled buffer: the header's CRC (crc32's dispatch) makes any
	// buffer it reads escape, and a dump reads two headers per mailbox.
	bp := indexHeaderBufs.Get().(*[IndexHeaderSize]byte)
	defer indexHeaderBufs.Put(bp)
	b := bp[:]
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return IndexHeader{}, fmt.Errorf("reading %s: %w", path, err)
	}
	h, err := ParseIndexHeader(b[:n])
	if err != nil {
		return h, &FileError{File: path, Offset: 0, Err: err}
	}
	return h, nil
}
