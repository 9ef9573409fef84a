package partition

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/lock"
)

// MemoryLimit is the largest index snapshot (records only) kept in
// memory, about 10,000 records; a bigger one is copied to an unlinked
// temporary file so that memory stays flat for mailboxes of any size.
const MemoryLimit = 1 << 20

// maxHeaderFile bounds the size of a cyrus.header this package reads: 128
// flag names and a long ACL fit many times over.
const maxHeaderFile = 8 << 20

// Mailbox is a consistent snapshot of one mailbox: its cyrus.header, the
// index header and records, and its annotations, as committed at one
// moment by Cyrus. It keeps Cyrus's shared name lock on the mailbox until
// Close, so that no message file is unlinked and no repack replaces the
// index while the snapshot is read; Close it promptly, since a repack
// waiting for that lock holds the owner's namespace lock meanwhile
// (docs/cyrus/locks.md §4.2).
type Mailbox struct {
	// Entry is the mailboxes.db entry, re-read under the name lock.
	Entry Entry
	// Header is the parsed cyrus.header.
	Header Header
	// Index is the index header (with Cyrus's read-time adjustments).
	Index IndexHeader
	// Owner is the userid owning the mailbox, "" for shared mailboxes.
	Owner string
	// DataDir holds the message files of records not archived; ArchiveDir
	// those of archived ones (equal to DataDir without an archive
	// partition).
	DataDir, ArchiveDir string
	// IndexPath is the cyrus.index the snapshot was taken from.
	IndexPath string
	// dataRoot is the partition root DataDir lies beneath (metaPath).
	dataRoot string

	mu       sync.Mutex
	nameLock *lock.File
	tree     *cyrusfs.Tree // the spool's tree, or the owner's checked view of it (nsLockCache)
	// dirs are the mailbox's directories, opened beneath the partition
	// roots without following any symlink (cyrusfs), by path; every file
	// of the mailbox is opened relative to one of them, so a directory
	// symlink planted under a partition is never followed.
	dirs map[string]*cyrusfs.Dir
	// data and archive hold the message files (the same Dir when there is
	// no archive partition); nil with dataErr or archiveErr when missing.
	data, archive       *cyrusfs.Dir
	dataErr, archiveErr error
	recs                []byte   // records, when small
	tmp                 *os.File // records, when large
	cache               *os.File // cyrus.cache, if any (see CacheRecord)
	recAnnots           map[uint32][]Annotation
	annots              []Annotation
	closed              bool
	// headerOnly: OpenMailboxIf read no records.
	headerOnly bool
}

// ErrNoRecords is returned by Records of a mailbox opened without them
// (OpenMailboxIf).
var ErrNoRecords = errors.New("the records were not read")

// OpenMailbox takes a consistent snapshot of the mailbox e, following the
// lock order and lock types of Cyrus's own readers (docs/cyrus/locks.md §5): the
// owner's namespace lock shared (user mailboxes only), the mailbox name
// lock shared, a fresh look at mailboxes.db, then cyrus.index shared. Under
// the index lock it reads the index header and records, cyrus.header, the
// per-message annotations (cyrus.annotations) and the mailbox annotations
// (annotations.db). It then releases the index and namespace locks and
// keeps the shared name lock until Close. Nothing is written except empty
// lock files Cyrus would create too. ctx bounds the waits for locks.
//
// Every CRC is checked: the index header's here, each record's in Records.
//
// Close a mailbox before opening another of the same owner: a Cyrus
// repack (cyr_expire, an EXPUNGE cleanup) that queues for the exclusive
// name lock of the open one holds the owner's namespace lock exclusively
// meanwhile, so the second OpenMailbox would wait for the repack, which
// waits for Close. ctx bounds such waits.
func (s *Spool) OpenMailbox(ctx context.Context, e Entry) (mb *Mailbox, err error) {
	return s.OpenMailboxIf(ctx, e, nil)
}

// OpenMailboxIf is OpenMailbox that reads the records only if want says
// so: under the index lock, once the index header, cyrus.header and the
// mailbox annotations are read (everything a mailbox's APPLY MAILBOX
// keys come from), want is called with the mailbox; when it returns
// false, neither the records, cyrus.cache nor cyrus.annotations are read,
// and Records of the mailbox returned fails with ErrNoRecords. A backup
// that holds the mailbox already (same HIGHESTMODSEQ, SYNC_CRC,
// UIDVALIDITY...) so costs one read of each header. want must not block.
func (s *Spool) OpenMailboxIf(ctx context.Context, e Entry, want func(*Mailbox) (bool, error)) (mb *Mailbox, err error) {
	if !s.real(e) || e.Moving() {
		return nil, fmt.Errorf("mailbox %s (type %q): %w", e.Name, e.Type, ErrNoMailbox)
	}
	m := &Mailbox{Owner: e.Owner(s.Config), tree: s.tree()}
	var ns *lock.File
	if m.Owner != "" {
		// The view of the tree the owner's mailboxes are opened
		// through: its roots checked per run of the owner's mailboxes,
		// not per file (nsLockCache).
		if ns, m.tree, err = s.namespaceLock(ctx, m.Owner); err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", e.Name, err)
		}
		tree := m.tree
		defer func() {
			if rerr := s.releaseNamespace(m.Owner, ns, tree); err == nil && rerr != nil {
				m.Close()
				mb = nil
				err = fmt.Errorf("mailbox %s: releasing namespace lock: %w", e.Name, rerr)
			}
		}()
	}
	lockname := e.UniqueID
	if e.LegacyDirs() {
		lockname = e.Name
	}
	if m.nameLock, err = s.nameLock(ctx, m.tree, lockname); err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", e.Name, err)
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	// The entry may have changed before the name lock was granted.
	cur, err := s.current(e)
	if err != nil {
		return nil, err
	}
	if cur.UniqueID != e.UniqueID || cur.LegacyDirs() != e.LegacyDirs() || cur.Moving() {
		return nil, fmt.Errorf("mailbox %s: uniqueid %s, now %s: %w", e.Name, e.UniqueID, cur.UniqueID, ErrChanged)
	}
	m.Entry = cur
	if err = s.mailboxPaths(m); err != nil {
		return nil, err
	}
	if m.data, m.dataErr, err = m.messageDir(m.DataDir); err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", cur.Name, err)
	}
	if m.archive, m.archiveErr, err = m.messageDir(m.ArchiveDir); err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", cur.Name, err)
	}
	if m.IndexPath, err = s.metaPath(m, FileIndex); err != nil {
		return nil, err
	}
	if err := s.readLocked(ctx, m, want); err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", cur.Name, err)
	}
	return m, nil
}

// readLocked reads everything that needs the index lock, and releases it:
// the headers, then (if want says so) the records.
func (s *Spool) readLocked(ctx context.Context, m *Mailbox, want func(*Mailbox) (bool, error)) error {
	e := m.Entry
	// A bare descriptor (os.NewFile would cost an fcntl): the index is
	// locked, read at offsets and closed.
	fd, err := m.openFd(m.IndexPath)
	if err != nil {
		return err
	}
	defer unix.Close(fd) // closing the descriptor drops its OFD lock
	if err := lock.WaitFd(ctx, fd, m.IndexPath, false); err != nil {
		return err
	}
	f, err := readPrefix(fd, m.IndexPath)
	if err != nil {
		return err
	}
	defer f.free()
	size, err := m.readIndexHeader(f)
	if err != nil {
		return err
	}
	if m.Index.RawOptions&OptMailboxDeleted != 0 {
		return fmt.Errorf("index marked deleted: %w", ErrNoMailbox)
	}
	hpath, err := s.metaPath(m, FileHeader)
	if err != nil {
		return err
	}
	if m.Header, err = ReadHeaderFile(m.openFd, hpath); err != nil {
		return err
	}
	if m.Header.UniqueID != "" && m.Header.UniqueID != e.UniqueID {
		return &FileError{File: hpath, Offset: -1, Err: fmt.Errorf(
			"%w: uniqueid %s, mailboxes.db says %s", ErrBadFormat, m.Header.UniqueID, e.UniqueID)}
	}
	if err := s.readMailboxAnnotations(m); err != nil {
		return err
	}
	if want != nil {
		ok, err := want(m)
		if err != nil {
			return err
		}
		if !ok {
			m.headerOnly = true
			return nil
		}
	}
	if err := m.snapshotRecords(f, size); err != nil {
		return err
	}
	s.openCache(m)
	return s.readRecordAnnotations(ctx, m)
}

// readIndexHeader reads the index header and checks that the file holds
// its records; it returns the file's size.
func (m *Mailbox) readIndexHeader(f *prefixFile) (int64, error) {
	size, err := f.Size()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m.IndexPath, err)
	}
	if m.Index, err = IndexHeaderAt(f, m.IndexPath); err != nil {
		return 0, err
	}
	h := m.Index
	if need := h.Size(); size < need {
		rec := (size-int64(h.StartOffset))/int64(h.RecordSize) + 1
		return 0, &FileError{File: m.IndexPath, Offset: size, Record: int(rec), Err: fmt.Errorf(
			"%w: file has %d bytes, header needs %d for %d records", ErrBadFormat, size, need, h.NumRecords)}
	}
	return size, nil
}

// indexPrefix is how much of cyrus.index readLocked reads at once, under
// the lock: the header and the records of a mailbox of up to 70 messages,
// so that most mailboxes cost one read, and no fstat, for all of it.
const indexPrefix = 16 << 10

var prefixBufs = sync.Pool{New: func() any { return new([indexPrefix]byte) }}

// prefixFile is a file read at offsets whose first bytes were read in
// one pread: reads within them cost no system call.
type prefixFile struct {
	fd   cyrusfs.FdReader
	buf  *[indexPrefix]byte
	b    []byte // the file's first bytes
	size int64  // the file's size when b is all of it, else -1
}

// readPrefix reads the first indexPrefix bytes of the regular file fd in
// one pread: a regular file's read stops short at its end only, so a
// short one gives the file's size too.
func readPrefix(fd int, path string) (*prefixFile, error) {
	p := &prefixFile{fd: cyrusfs.FdReader(fd), buf: prefixBufs.Get().(*[indexPrefix]byte), size: -1}
	for {
		n, err := unix.Pread(fd, p.buf[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.free()
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		p.b = p.buf[:n]
		if n < len(p.buf) {
			p.size = int64(n)
		}
		return p, nil
	}
}

func (p *prefixFile) free() {
	if p.buf != nil {
		prefixBufs.Put(p.buf)
		p.buf, p.b = nil, nil
	}
}

// Size is the file's size: known from the prefix, or fstat.
func (p *prefixFile) Size() (int64, error) {
	if p.size >= 0 {
		return p.size, nil
	}
	return p.fd.Size()
}

// ReadAt reads as io.ReaderAt does, from the prefix where it can.
func (p *prefixFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if p.size >= 0 {
		if off >= p.size {
			return 0, io.EOF
		}
		n := copy(b, p.b[off:])
		if n < len(b) {
			return n, io.EOF
		}
		return n, nil
	}
	if off+int64(len(b)) <= int64(len(p.b)) {
		return copy(b, p.b[off:]), nil
	}
	return p.fd.ReadAt(b, off)
}

// snapshotRecords copies exactly num_records records.
func (m *Mailbox) snapshotRecords(f io.ReaderAt, size int64) error {
	h := m.Index
	body := io.NewSectionReader(f, int64(h.StartOffset), h.Size()-int64(h.StartOffset))
	if body.Size() <= MemoryLimit {
		m.recs = make([]byte, body.Size())
		if _, err := io.ReadFull(body, m.recs); err != nil {
			return fmt.Errorf("reading %s: %w", m.IndexPath, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp("", "mbtool-index-*")
	if err != nil {
		return fmt.Errorf("index snapshot of %s: %w", m.IndexPath, err)
	}
	os.Remove(tmp.Name())
	m.tmp = tmp
	if _, err := io.Copy(tmp, body); err != nil {
		return fmt.Errorf("index snapshot of %s: %w", m.IndexPath, err)
	}
	return nil
}

// ReadHeaderFile reads and parses the cyrus.header at path, opened with
// open (a bare descriptor, as cyrusfs's OpenFd gives), at most
// maxHeaderFile bytes of it.
func ReadHeaderFile(open func(string) (int, error), path string) (Header, error) {
	b, err := readSmallFile(open, path, maxHeaderFile)
	if err != nil {
		return Header{}, err
	}
	h, err := ParseHeader(b)
	if err != nil {
		return h, &FileError{File: path, Offset: -1, Err: err}
	}
	return h, nil
}

// smallFileBufs are readSmallFile's read buffers.
var smallFileBufs = sync.Pool{New: func() any { return new([4096]byte) }}

func readSmallFile(open func(string) (int, error), path string, limit int64) ([]byte, error) {
	fd, err := open(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	// Most are small: one read that stops short reads all of it (a
	// regular file's read stops short at its end only), where ReadAll
	// costs a second read that returns nothing. The read goes into a
	// pooled buffer and only the bytes read are copied out: a dump reads
	// a cyrus.header of a few hundred bytes per mailbox, and a fresh 4
	// KiB buffer for each was a sixth of the bytes it allocated.
	buf := smallFileBufs.Get().(*[4096]byte)
	defer smallFileBufs.Put(buf)
	small := buf[:min(4096, limit+1)]
	for {
		n, err := unix.Pread(fd, small, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if n < len(small) {
			return append([]byte{}, small[:n]...), nil
		}
		break
	}
	b, err := io.ReadAll(io.NewSectionReader(cyrusfs.FdReader(fd), 0, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrBadFormat, limit)
	}
	return b, nil
}

// readRecordAnnotations reads cyrus.annotations (a leaf lock under the
// index lock, as Cyrus takes it).
func (s *Spool) readRecordAnnotations(ctx context.Context, m *Mailbox) error {
	path, err := s.metaPath(m, FileAnnotations)
	if err != nil {
		return err
	}
	db, err := openTwoskip(ctx, path, m.openFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sets := make(map[uint32]*annotationSet)
	err = db.ForEach(nil, func(k, v []byte) error {
		first, entry, userid, err := splitAnnotationKey(k)
		if err != nil {
			return err
		}
		uid, err := parseUID(first)
		if err != nil {
			return err
		}
		set := sets[uid]
		if set == nil {
			set = new(annotationSet)
			sets[uid] = set
		}
		return set.add(entry, userid, m.Owner, v)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	m.recAnnots = make(map[uint32][]Annotation, len(sets))
	for uid, set := range sets {
		if a := set.sorted(); a != nil {
			m.recAnnots[uid] = a
		}
	}
	return nil
}

// readMailboxAnnotations reads this mailbox's keys of annotations.db.
func (s *Spool) readMailboxAnnotations(m *Mailbox) error {
	var set annotationSet
	err := s.annotationsDB(m.tree, []byte(m.Entry.UniqueID+"\x00"), func(k, v []byte) error {
		_, entry, userid, err := splitAnnotationKey(k)
		if err != nil {
			return err
		}
		return set.add(entry, userid, m.Owner, v)
	})
	if err != nil {
		return err
	}
	m.annots = set.sorted()
	return nil
}

// Records calls fn for every index record of the snapshot in file order
// (ascending UID), expunged ones included. Records with UID 0 are
// skipped, as Cyrus skips them (damaged). It checks each record's CRC,
// that UIDs strictly increase and that none exceeds LAST_UID; a failure
// is a *FileError naming the index file, the record number and its UID.
// An error from fn stops the walk and is returned as is. Records may be
// called again, and from several goroutines, but not concurrently with
// Close.
func (m *Mailbox) Records(fn func(r Record) error) error {
	next := m.RecordIter()
	for {
		r, ok, err := next()
		if err != nil || !ok {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// RecordIter returns a function that gives the records of the snapshot
// one by one, as Records does, with ok false after the last; for a caller
// that merges them with another stream.
func (m *Mailbox) RecordIter() func() (r Record, ok bool, err error) {
	// One allocation for the iterator's state, where a closure over its
	// variables took one for each.
	it := &recordIter{m: m, h: m.Index}
	it.rs = int(it.h.RecordSize)
	it.per = max(1, (64<<10)/it.rs)
	return it.next
}

// recordIter is the state of a RecordIter.
type recordIter struct {
	m       *Mailbox
	h       IndexHeader
	rs, per int
	buf     []byte
	prev    uint32
	i, j, n int // chunk start, index in chunk, chunk length
	off     int64
}

func (it *recordIter) next() (Record, bool, error) {
	m, h, rs, per := it.m, &it.h, it.rs, it.per
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return Record{}, false, ErrClosed
	}
	if m.headerOnly {
		return Record{}, false, fmt.Errorf("mailbox %s: %w", m.Entry.Name, ErrNoRecords)
	}
	for {
		if it.j == it.n {
			it.i += it.n
			if it.i >= int(h.NumRecords) {
				return Record{}, false, nil
			}
			it.n, it.j = min(per, int(h.NumRecords)-it.i), 0
			it.off = int64(it.i) * int64(rs)
			if m.tmp == nil {
				it.buf = m.recs[it.off : it.off+int64(it.n*rs)]
			} else {
				if cap(it.buf) < per*rs || it.buf == nil {
					it.buf = make([]byte, per*rs)
				}
				it.buf = it.buf[:it.n*rs]
				if _, err := m.tmp.ReadAt(it.buf, it.off); err != nil {
					it.n = 0
					return Record{}, false, fmt.Errorf("index snapshot of %s: %w", m.IndexPath, err)
				}
			}
		}
		j := it.j
		b := it.buf[j*rs : (j+1)*rs]
		recno := it.i + j + 1
		ferr := func(err error) error {
			return &FileError{File: m.IndexPath, Offset: int64(h.StartOffset) + it.off + int64(j*rs),
				Record: recno, UID: be.Uint32(b), Err: err}
		}
		r, err := ParseRecord(b, h.MinorVersion)
		if err != nil {
			return Record{}, false, ferr(err)
		}
		if r.UID != 0 && r.UID <= it.prev {
			return Record{}, false, ferr(fmt.Errorf("%w: uid %d not above previous uid %d", ErrBadFormat, r.UID, it.prev))
		}
		if r.UID > h.LastUID {
			return Record{}, false, ferr(fmt.Errorf("%w: uid %d above last_uid %d", ErrBadFormat, r.UID, h.LastUID))
		}
		it.j++
		if r.UID == 0 {
			continue
		}
		it.prev = r.UID
		return r, true, nil
	}
}

// RecordAnnotations returns the stored annotations of message uid, sorted
// as Cyrus sends them (entry, userid, value). The virtual annotations
// derived from record fields (thrid, savedate, createdmodseq) are not
// included; they come from the Record.
func (m *Mailbox) RecordAnnotations(uid uint32) []Annotation { return m.recAnnots[uid] }

// Annotations returns the mailbox-level annotations from annotations.db,
// sorted as Cyrus sends them.
func (m *Mailbox) Annotations() []Annotation { return m.annots }

// MessagePath returns the path of the message file of r: in the archive
// directory if r is archived, else in the data directory.
func (m *Mailbox) MessagePath(r Record) string {
	if r.Archived() {
		return m.ArchiveDir + "/" + messageName(r.UID)
	}
	return m.DataDir + "/" + messageName(r.UID)
}

// OpenMessage opens the message file of r. For a record flagged unlinked,
// or a file removed meanwhile, the error satisfies errors.Is(err,
// fs.ErrNotExist).
func (m *Mailbox) OpenMessage(r Record) (*os.File, error) {
	if r.Unlinked() {
		return nil, fmt.Errorf("mailbox %s uid %d: message unlinked: %w", m.Entry.Name, r.UID, fs.ErrNotExist)
	}
	f, err := m.OpenMessageFile(r)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s uid %d: %w", m.Entry.Name, r.UID, err)
	}
	return f, nil
}

// OpenMessageFile opens the message file of r with readFlags, relative to
// the mailbox's directory opened at OpenMailbox, and refuses anything but
// a regular file: neither the file nor any directory above it, up to the
// partition root, may be a symlink. An error is an *fs.PathError naming
// MessagePath(r).
func (m *Mailbox) OpenMessageFile(r Record) (*os.File, error) {
	fd, err := m.OpenMessageFd(r)
	if err != nil {
		return nil, err
	}
	return cyrusfs.RegularFile(fd, m.MessagePath(r))
}

// OpenMessageFd is OpenMessageFile without the check that the file is a
// regular one, and as a raw descriptor, for callers that read it whole
// with system calls of their own (a FIFO or device gives a wrong size or
// GUID there). It may be called from several goroutines.
func (m *Mailbox) OpenMessageFd(r Record) (int, error) {
	d, derr := m.data, m.dataErr
	if r.Archived() {
		d, derr = m.archive, m.archiveErr
	}
	if d == nil {
		if derr == nil {
			derr = ErrClosed
		}
		return -1, &fs.PathError{Op: "open", Path: m.MessagePath(r), Err: derr}
	}
	name := messageName(r.UID)
	for {
		fd, err := unix.Openat(d.Fd(), name, readFlags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: m.MessagePath(r), Err: err}
		}
		return fd, nil
	}
}

// messageDir opens a directory of message files; one that does not exist
// is no error here (each message open reports it, as a missing file).
func (m *Mailbox) messageDir(path string) (*cyrusfs.Dir, error, error) {
	d, err := m.openDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err, nil
	}
	return d, nil, err
}

// openDir opens the directory at path beneath the tree's roots, following
// no symlink (cyrusfs), and keeps it until Close.
func (m *Mailbox) openDir(path string) (*cyrusfs.Dir, error) {
	path = cyrusfs.Clean(path)
	if d, ok := m.dirs[path]; ok {
		return d, nil
	}
	d, err := m.tree.OpenDir(path)
	if err != nil {
		return nil, err
	}
	if m.dirs == nil {
		m.dirs = make(map[string]*cyrusfs.Dir, 2)
	}
	m.dirs[path] = d
	return d, nil
}

// parentDir is the directory of path without the trailing slash
// filepath.Split leaves (so that openDir's cyrusfs.Clean finds it clean,
// as it usually is, and copies nothing).
func parentDir(path string) string {
	dir, _ := filepath.Split(path)
	if len(dir) > 1 {
		dir = dir[:len(dir)-1]
	}
	return dir
}

// openFile opens a file of the mailbox (cyrus.index, cyrus.header ...)
// for reading, relative to its directory opened with openDir, following
// no symlink and refusing anything but a regular file (cyrusfs.Dir.Open).
func (m *Mailbox) openFile(path string) (*os.File, error) {
	_, name := filepath.Split(path)
	d, err := m.openDir(parentDir(path))
	if err != nil {
		return nil, err
	}
	return d.Open(name, os.O_RDONLY) // a regular file only
}

// openFd is openFile returning the bare descriptor, for a file only read
// at offsets (or locked) and closed: os.NewFile costs an fcntl.
func (m *Mailbox) openFd(path string) (int, error) {
	_, name := filepath.Split(path)
	d, err := m.openDir(parentDir(path))
	if err != nil {
		return -1, err
	}
	return d.OpenFd(name, os.O_RDONLY) // a regular file only
}

// readFlags open a message file for reading as mbtool must, as root in a
// tree the user Cyrus runs as owns: a symlink in the file's place is not
// followed (ELOOP), and a FIFO there does not block the open (reading it
// gives nothing). cyrusfs opens the other files of a mailbox with the same
// flags.
const readFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NOFOLLOW | unix.O_NONBLOCK

// openRead opens the Cyrus file at path (beneath one of the spool's roots)
// for reading, following no symlink, the file's or any directory's, and
// refusing anything but a regular file (cyrusfs.Tree.Open).
func (s *Spool) openRead(path string) (*os.File, error) {
	return s.tree().Open(path, os.O_RDONLY) // a regular file only
}

// openReadFd is openRead returning the bare descriptor (os.NewFile costs
// an fcntl).
func (s *Spool) openReadFd(path string) (int, error) {
	return s.tree().OpenFd(path, os.O_RDONLY) // a regular file only
}

// openTwoskip opens the twoskip database at path under its shared lock,
// with Cyrus's reopen-on-replace loop, by open (which follows no
// symlink); a missing database is fs.ErrNotExist.
func openTwoskip(ctx context.Context, path string, open func(string) (*os.File, error)) (*cyrusdb.Twoskip, error) {
	f, err := lock.Reopen(ctx, path, func() (*os.File, error) { return open(path) }, false)
	if errors.Is(err, fs.ErrNotExist) {
		// Every caller takes a missing database for an empty one: the
		// error (it names the path) is not wrapped in vain, for the
		// cyrus.annotations most mailboxes lack.
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("cyrusdb: opening twoskip: %w", err)
	}
	return cyrusdb.OpenTwoskipFile(path, f)
}

// Close releases the name lock and the snapshot. It is safe to call more
// than once.
func (m *Mailbox) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var err error
	if m.tmp != nil {
		err = m.tmp.Close()
		m.tmp = nil
	}
	m.recs = nil
	if m.cache != nil {
		m.cache.Close()
		m.cache = nil
	}
	for _, d := range m.dirs {
		d.Close()
	}
	m.dirs, m.data, m.archive = nil, nil, nil
	if m.nameLock != nil {
		if rerr := m.nameLock.Release(); rerr != nil && err == nil {
			err = fmt.Errorf("mailbox %s: releasing name lock: %w", m.Entry.Name, rerr)
		}
		m.nameLock = nil
	}
	return err
}
