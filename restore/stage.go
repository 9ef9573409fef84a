package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/spill"
)

// stagePrefix starts the name of a staging directory in a partition root.
// Cyrus never makes a directory whose name starts with a dot there (its
// policy refuses such mailbox names), so it cannot collide with a mailbox.
const stagePrefix = ".mbtool-restore."

// staleAge is how old a staging directory without a lock file, but not
// empty, must be to count as left over. This mbtool never leaves one (see
// removeStage); older versions could.
const staleAge = 10 * time.Minute

// stage is a staging directory inside one partition: msg/ holds the
// message files by GUID that were not written straight into their first
// mailbox (pipeline.go, "Held messages"), mbox/ the mailboxes being
// built, trash/ what replaced mailboxes leave. A run holds an exclusive
// lock on its lock file; a directory whose lock is free belongs to a
// dead run. Everything in it is made through package cyrusfs, from
// descriptors of the partition and of these directories, never
// following a symlink.
type stage struct {
	part, root, dir string
	lockf           *os.File
	rootd, d        *cyrusfs.Dir // the partition and the staging directory
	msg, mbox       *cyrusfs.Dir
	trash           *cyrusfs.Dir
	seq             int
	id              int // its place in restorer.stageList, from 1
}

// stageFor returns the staging directory of partition part, made on
// first use.
func (rs *restorer) stageFor(part string) (*stage, error) {
	root, ok := rs.cfg.Partitions[part]
	if !ok {
		return nil, fmt.Errorf("partition %q: %w", part, ErrPartition)
	}
	return rs.stageAt(part, root)
}

// metaStageKey prefixes the key in restorer.stages of a staging
// directory in a metapartition root (no partition name has a NUL).
const metaStageKey = "\x00meta "

// stageAt returns the staging directory in root, made on first use; key
// names it in restorer.stages (the partition, or metaStageKey and the
// root).
func (rs *restorer) stageAt(part, root string) (*stage, error) {
	if st := rs.stages[part]; st != nil {
		return st, nil
	}
	rootd, err := rs.cfg.Tree().OpenDir(root)
	if err != nil {
		return nil, fmt.Errorf("partition %s: %w", part, err)
	}
	removeStale(rootd)
	st := &stage{part: part, root: root, rootd: rootd}
	// The staging directory and its msg/, mbox/ and trash/ belong to the
	// user running the restore, mode 0700 (cyrusfs.Dir.MkdirPrivate): no
	// other user can enter them, so the mailbox directories and files
	// made in them get their names at once, owned by the user Cyrus runs
	// as before they are moved into place (docs/safety.md).
	self := partition.Owner{UID: -1, GID: -1}
	for try := 0; try < 3; try++ {
		if st.d, err = rootd.MkdirPrivate(stagePrefix); err != nil {
			rootd.Close()
			return nil, fmt.Errorf("staging directory: %w", err)
		}
		st.dir = st.d.Path()
		st.lockf, err = st.d.Create("lock", self, 0o600)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		// Another run's removeStale took the directory for a dead
		// run's, empty and without a lock file, in the instant before
		// the lock file was made: make another.
		st.d.Close()
	}
	if err == nil {
		err = lock.TryExclusive(st.lockf)
	}
	for _, sub := range []struct {
		name string
		d    **cyrusfs.Dir
	}{{"msg", &st.msg}, {"mbox", &st.mbox}, {"trash", &st.trash}} {
		if err == nil {
			*sub.d, err = st.d.Mkdir(sub.name, self)
		}
	}
	if err != nil {
		st.remove()
		return nil, fmt.Errorf("staging directory %s: %w", st.dir, err)
	}
	rs.stages[part] = st
	rs.stageList = append(rs.stageList, st)
	st.id = len(rs.stageList)
	return st, nil
}

// removeStale removes the staging directories of dead runs in the
// partition root.
func removeStale(root *cyrusfs.Dir) {
	ents, err := root.ReadDir()
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagePrefix) {
			continue
		}
		d, err := root.OpenDir(e.Name())
		if err != nil {
			continue
		}
		lf, err := d.Open("lock", os.O_RDWR)
		d.Close()
		if errors.Is(err, fs.ErrNotExist) {
			// Empty: a run died between making it and its lock file, or
			// after removing all of it but the directory itself.
			if root.Remove(e.Name()) != nil {
				if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAge {
					root.RemoveAll(e.Name())
				}
			}
			continue
		}
		if err != nil {
			continue
		}
		if lock.TryExclusive(lf) == nil {
			removeStage(root, e.Name()) // the lock is held while removing
		}
		lf.Close()
	}
}

// removeStage removes the staging directory name in root: all but its
// lock file, then the lock file, then the directory. A run killed on the
// way leaves one whose lock file is free, or an empty one, and the next
// run's removeStale removes either at once.
func removeStage(root *cyrusfs.Dir, name string) {
	d, err := root.OpenDir(name)
	if err != nil {
		return
	}
	ents, _ := d.ReadDir()
	for _, e := range ents {
		if e.Name() != "lock" {
			d.RemoveAll(e.Name())
		}
	}
	d.Remove("lock")
	d.Close()
	root.Remove(name)
}

// remove deletes the staging directory and releases its lock.
func (st *stage) remove() {
	for _, d := range []*cyrusfs.Dir{st.msg, st.mbox, st.trash, st.d} {
		d.Close()
	}
	if st.dir != "" {
		removeStage(st.rootd, filepath.Base(st.dir))
	}
	if st.lockf != nil {
		st.lockf.Close()
		st.lockf = nil
	}
	st.rootd.Close()
}

// newBoxName returns a fresh name in mbox/ for the directory of a
// mailbox being built (made by builder's first operation).
func (st *stage) newBoxName() string {
	st.seq++
	return strconv.Itoa(st.seq)
}

// newBoxDir makes a fresh directory for a mailbox being built and opens
// it.
func (st *stage) newBoxDir(owner partition.Owner) (*cyrusfs.Dir, error) {
	return st.mbox.Mkdir(st.newBoxName(), owner)
}

// openStaged opens the mailbox directory at path: from st's mbox/ while
// it is staged there (a Dir of the private staging directory, in which
// files get their names at once), else (placed already) from the tree.
func (rs *restorer) openStaged(st *stage, path string) (*cyrusfs.Dir, error) {
	if st != nil && st.mbox != nil && filepath.Dir(path) == st.mbox.Path() {
		return st.mbox.OpenDir(filepath.Base(path))
	}
	return rs.cfg.Tree().OpenDir(path)
}

// trashName returns a fresh name in trash/ for a directory to delete.
func (st *stage) trashName() string {
	st.seq++
	return strconv.Itoa(st.seq)
}

// stagedMsg is a message file in a staging directory, by GUID. The
// restorer keeps one per message of the dump, the one part of its state
// that grows with the dump: in a guidtable, packed (stagedMsgSize bytes,
// the stage and the first box as their ids), so its memory stays flat.
type stagedMsg struct {
	st *stage // nil in a dry run: hashed, not kept
	// first is the box (its id) the file was written or moved into when
	// it was first placed, as UID uid; 0 before (in msg/, or held).
	first uint32
	uid   uint32
	info  msgInfo
	size  int64
	// mtime is the INTERNALDATE the staged inode carries as its mtime once
	// a mailbox has it; -1 before.
	mtime int64
	// made is the last of the read phase's operations (pipeline.go)
	// that wrote or read the file where it is now (packRef): the one
	// that wrote it, or, in msg/, a later copy to another partition,
	// which the rename that moves it to its first box must wait for. 0:
	// none (written by the parser, or not yet).
	made uint64
}

// packRef packs an operation's lane and seq in a uint64 (stagedMsg.made):
// the lane in the top 8 bits.
func packRef(r opRef) uint64 { return uint64(r.lane)<<56 | r.seq }

func unpackRef(v uint64) opRef { return opRef{lane: int(v >> 56), seq: v & (1<<56 - 1)} }

const stagedMsgSize = 2 + 4 + 4 + 3*4 + 4 + 8 + 8

func (m *stagedMsg) pack(b []byte) {
	le := binary.LittleEndian
	if m.st != nil {
		le.PutUint16(b[0:], uint16(m.st.id))
	}
	le.PutUint32(b[2:], m.first)
	le.PutUint32(b[6:], m.uid)
	le.PutUint32(b[10:], m.info.headerSize)
	le.PutUint32(b[14:], m.info.gmtime)
	le.PutUint32(b[18:], m.info.sentdate)
	le.PutUint32(b[22:], uint32(m.size)) // message refuses sizes from 1<<32 on
	le.PutUint64(b[26:], uint64(m.mtime))
	le.PutUint64(b[34:], m.made)
}

// msg returns the staged message of GUID g, if the dump had its file.
func (rs *restorer) msg(g guid.GUID) (stagedMsg, bool, error) {
	var b [stagedMsgSize]byte
	ok, err := rs.msgs.Get(g, b[:])
	if !ok || err != nil {
		return stagedMsg{}, false, err
	}
	le := binary.LittleEndian
	m := stagedMsg{
		uid:   le.Uint32(b[6:]),
		info:  msgInfo{headerSize: le.Uint32(b[10:]), gmtime: le.Uint32(b[14:]), sentdate: le.Uint32(b[18:])},
		first: le.Uint32(b[2:]),
		size:  int64(le.Uint32(b[22:])),
		mtime: int64(le.Uint64(b[26:])),
		made:  le.Uint64(b[34:]),
	}
	if id := le.Uint16(b[0:]); id > 0 {
		m.st = rs.stageList[id-1]
	}
	return m, true, nil
}

// setMsg stores m as the staged message of GUID g.
func (rs *restorer) setMsg(g guid.GUID, m *stagedMsg) error {
	var b [stagedMsgSize]byte
	m.pack(b[:])
	return rs.msgs.Put(g, b[:])
}

// where returns the directory the file is in now (during phase one),
// "" for the staging directory's msg/, and the file's name there.
func (rs *restorer) where(m *stagedMsg, g guid.GUID) (dir, name string, err error) {
	if m.first == 0 {
		return "", g.String(), nil
	}
	// The box's directory, which is set before a file is placed in it
	// and stays: the last one asked for is remembered, as the copies of
	// a GUID tend to come after the same first box.
	if w := &rs.lastWhere; w.id != m.first {
		b, err := spill.Peek(rs.parked, rs.boxes.at(m.first))
		if err != nil {
			return "", "", err
		}
		w.id, w.dir = m.first, b.dir
	}
	return rs.lastWhere.dir, strconv.FormatUint(uint64(m.uid), 10) + ".", nil
}

// openWhere opens the directory where returned, for a file staged in st;
// close it with done.
func (rs *restorer) openWhere(st *stage, dir string) (d *cyrusfs.Dir, done func(), err error) {
	if dir == "" {
		return st.msg, func() {}, nil
	}
	if d, err = rs.openStaged(st, dir); err != nil {
		return nil, nil, err
	}
	return d, func() { d.Close() }, nil
}

// messages reads an APPLY MESSAGE line: each file literal is hashed as
// it is read, and must match its GUID and size; a small one is held for
// the mailbox that first uses it (pipeline.go, "Held messages"), a
// larger one written to the staging directory of its partition.
func (rs *restorer) messages(d *dumpfile.Reader) error {
	// The messages held for the mailboxes since the last APPLY MESSAGE
	// that none placed go to msg/ now (pipeline.go, "Held messages").
	if err := rs.writeHeld(); err != nil {
		return err
	}
	dl := d.DL()
	err := dumpcheck.Files(dl, func(t dlist.Token) error {
		if err := rs.ctx.Err(); err != nil {
			return err
		}
		if err := rs.policy.File(t.File); err != nil {
			return fmt.Errorf("offset %d: %w", t.Offset, err)
		}
		if err := rs.message(t.File, dl.Body()); err != nil {
			return fmt.Errorf("message %s: %w", t.File.GUID, err)
		}
		rs.counts.Messages++
		rs.counts.Bytes += t.File.Size
		rs.progress()
		return nil
	})
	if err != nil {
		return err
	}
	return d.EndLine()
}

func (rs *restorer) message(fi dlist.FileInfo, body io.Reader) error {
	part := rs.opts.Partition
	if part == "" {
		part = fi.Partition
	}
	if _, ok := rs.cfg.Partitions[part]; !ok {
		return fmt.Errorf("partition %q: %w", fi.Partition, ErrPartition)
	}
	if fi.Size < 0 || fi.Size >= 1<<32 {
		return fmt.Errorf("%w: size %d", ErrDamaged, fi.Size)
	}
	var scan headerScanner
	w := io.MultiWriter(&scan, rs.ids.Tap())
	defer rs.ids.Done(fi.GUID)
	src := guid.NewReader(body, fi.GUID, fi.Size)
	dup, err := rs.msgs.Has(fi.GUID)
	if err != nil {
		return err
	}
	if dup || rs.opts.DryRun {
		// Verify it all the same: the dump must be sound as a whole.
		if _, err := io.CopyBuffer(w, src, rs.copyBuf()); err != nil {
			return err
		}
		if !dup {
			return rs.setMsg(fi.GUID, &stagedMsg{size: fi.Size, info: scan.info(), mtime: -1})
		}
		return nil
	}
	st, err := rs.stageFor(part)
	if err != nil {
		return err
	}
	m := stagedMsg{st: st, size: fi.Size, mtime: -1}
	name := fi.GUID.String()
	if rs.pipe != nil && fi.Size <= pipeMsgMax {
		// Read and checked here, then held until the mailbox that first
		// uses it is staged (pipeline.go, "Held messages"; place).
		sl, err := rs.holdRoom(int(fi.Size))
		if err != nil {
			return err
		}
		off := len(sl.b)
		ab := appendBuf{sl.b}
		if _, err := io.CopyBuffer(io.MultiWriter(&ab, w), src, rs.copyBuf()); err != nil {
			return fmt.Errorf("staging %s: %w", st.msg.Join(name), err)
		}
		sl.b = ab.b // room was made: not moved
		m.info = scan.info()
		if err := rs.setMsg(fi.GUID, &m); err != nil {
			sl.b = sl.b[:off]
			return err
		}
		if err := rs.hold(heldMsg{g: fi.GUID, st: st, b: sl.b[off:len(sl.b):len(sl.b)], slab: sl, at: rs.spot}); err != nil {
			return err
		}
		rs.sum.Messages++
		rs.sum.Bytes += fi.Size
		return nil
	}
	// A larger message is written here, as it is read: nothing queued
	// before uses its name, and what uses it is queued after.
	nf, err := st.msg.NewFile(name, rs.owner, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(io.MultiWriter(nf, w), src, rs.copyBuf())
	if err != nil {
		nf.Abort()
		return fmt.Errorf("staging %s: %w", st.msg.Join(name), err)
	}
	if err := nf.Link(false); err != nil {
		return fmt.Errorf("staging %s: %w", st.msg.Join(name), err)
	}
	m.info = scan.info()
	if err := rs.setMsg(fi.GUID, &m); err != nil {
		return err
	}
	rs.sum.Messages++
	rs.sum.Bytes += fi.Size
	return nil
}

// writeStaged writes the message file name of GUID g, its bytes b read
// and checked, in dir: the staging directory's msg/, or a staged
// mailbox's directory with its mtime set to mtime (the INTERNALDATE; -1:
// left as written) before the file is closed; its errors read as
// message's.
func writeStaged(dir *cyrusfs.Dir, name string, owner partition.Owner, g guid.GUID, b []byte, mtime int64) error {
	nf, err := dir.NewFile(name, owner, 0o600)
	if err != nil {
		return fmt.Errorf("message %s: %w", g, err)
	}
	_, err = nf.Write(b)
	if err == nil && writeFault != nil {
		hookMu.Lock()
		err = writeFault(g, dir.Join(name))
		hookMu.Unlock()
	}
	if err == nil && mtime >= 0 {
		err = nf.Futimens(time.Unix(mtime, 0))
	}
	if err != nil {
		nf.Abort()
		return fmt.Errorf("message %s: staging %s: %w", g, dir.Join(name), err)
	}
	if err := nf.Link(false); err != nil {
		return fmt.Errorf("message %s: staging %s: %w", g, dir.Join(name), err)
	}
	return nil
}

// heldMsg is a message file read into a pipeline buffer (a holdSlab)
// and checked, not handed to the writer yet (pipeline.go, "Held
// messages").
type heldMsg struct {
	g    guid.GUID
	st   *stage
	b    []byte // in slab
	slab *holdSlab
	at   *dumpSpot // its APPLY MESSAGE, for the error of its write
}

// heldSet is what the parser holds: the messages by GUID, the order
// they came in (writeHeld writes them in it, so that a run takes the
// same steps every time), and how many slabs hold some.
type heldSet struct {
	by    map[guid.GUID]heldMsg
	order []guid.GUID // some taken since (not in by)
	slabs int
	cur   *holdSlab // the slab messages are appended to
}

// holdRoom returns the slab to append a message of n bytes to: the
// current one while it has room, else a new buffer of the pipeline
// (after writeHeld, when holdMax slabs hold messages, so that the
// writer always has buffers to give back and the held bytes stay under
// holdMax*pipeMsgMax).
func (rs *restorer) holdRoom(n int) (*holdSlab, error) {
	h := &rs.held
	if c := h.cur; c != nil && cap(c.b)-len(c.b) >= n {
		return c, nil
	}
	if c := h.cur; c != nil {
		h.cur = nil
		rs.pipe.unref(c)
	}
	if h.slabs >= holdMax {
		if err := rs.writeHeld(); err != nil {
			return nil, err
		}
	}
	size := max(n, holdSlabSize)
	b, err := rs.pipe.buffer(size)
	if err != nil {
		return nil, err
	}
	c := &holdSlab{buf: b, b: b[:0:size]}
	c.refs.Store(1)
	h.cur = c
	return c, nil
}

// hold keeps m until the mailbox that first uses its GUID is staged
// (place), or until writeHeld; when holdMsgs are held, those are
// written first.
func (rs *restorer) hold(m heldMsg) error {
	h := &rs.held
	if len(h.order) >= holdMsgs {
		if err := rs.writeHeld(); err != nil {
			return err
		}
	}
	if h.by == nil {
		h.by = make(map[guid.GUID]heldMsg)
	}
	m.slab.refs.Add(1)
	if m.slab.held++; m.slab.held == 1 {
		h.slabs++
	}
	h.by[m.g] = m
	h.order = append(h.order, m.g)
	return nil
}

// takeHeld returns the held message of GUID g, no longer held, if there
// is one; its slab stays referenced for its write.
func (rs *restorer) takeHeld(g guid.GUID) (heldMsg, bool) {
	h := &rs.held
	m, ok := h.by[g]
	if !ok {
		return m, false
	}
	delete(h.by, g)
	if m.slab.held--; m.slab.held == 0 {
		h.slabs--
	}
	return m, true
}

// writeHeld has the writer write every held message to its staging
// directory's msg/, as one not held is: at the next APPLY MESSAGE, when
// holdMax slabs or holdMsgs messages are held, and at the end of the dump.
func (rs *restorer) writeHeld() error {
	var err error
	for _, g := range rs.held.order {
		m, ok := rs.takeHeld(g)
		if !ok {
			continue // placed
		}
		if err == nil {
			err = rs.heldToMsgDir(m) // its slab is unref'd on an error too
		} else {
			rs.pipe.unref(m.slab)
		}
	}
	rs.held.order = rs.held.order[:0]
	return err
}

// heldToMsgDir is toMsgDir of a message whose entry in the staged
// messages' table is then updated with the operation that writes it.
func (rs *restorer) heldToMsgDir(h heldMsg) error {
	made, err := rs.toMsgDir(h)
	if err != nil || made == 0 {
		return err
	}
	m, ok, err := rs.msg(h.g)
	if err != nil || !ok {
		return err
	}
	m.made = made
	return rs.setMsg(h.g, &m)
}

// toMsgDir has the writer of msg/ (msgLane) write the held message m
// there, and returns that operation (packRef), or writes it here while
// the writer is behind (0), as message does one it does not hold:
// nothing queued before uses its name, and what uses it is queued after
// (and, on another lane, waits for it).
func (rs *restorer) toMsgDir(m heldMsg) (made uint64, err error) {
	b, dir, owner, g := m.b, m.st.msg, rs.owner, m.g
	if rs.pipe.busy() {
		err := writeStaged(dir, g.String(), owner, g, b, -1)
		rs.pipe.unref(m.slab)
		if err != nil {
			return 0, spotError(m.at, err) // its APPLY MESSAGE's, not the command read now
		}
		return 0, nil
	}
	made = packRef(opRef{lane: msgLane, seq: rs.pipe.nextSeq()})
	return made, rs.pipe.send(msgLane, stageOp{slab: m.slab, at: m.at, fn: func() error {
		return writeStaged(dir, g.String(), owner, g, b, -1)
	}})
}

// appendBuf is an io.Writer appending to b.
type appendBuf struct{ b []byte }

func (a *appendBuf) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// place puts the message file of m as name in the directory of bl
// with its mtime set to the internal date: the staged file itself the
// first time (written there from its held buffer, else renamed from
// msg/), a hard link to it when it is on the same partition and its inode
// carries that date (as Cyrus links a copied message; a copy where the
// link fails, see cyrusfs.Dir.LinkOrCopy), else a copy.
// m is a copy of the table's entry; a change is stored back.
func (rs *restorer) place(m *stagedMsg, g guid.GUID, bl *builder, uid uint32, name string, internaldate int64) error {
	b := bl.b
	t := time.Unix(internaldate, 0)
	var held heldMsg
	if m.mtime < 0 { // not placed yet: it may be held
		var ok bool
		if held, ok = rs.takeHeld(g); ok && m.st != b.st {
			// Copied from another partition's msg/ below: written
			// there first.
			made, err := rs.toMsgDir(held)
			if err != nil {
				return err
			}
			held.slab = nil
			m.made = made // stored with the copy's, below
		}
	}
	srcDir, srcName, err := rs.where(m, g)
	if err != nil {
		return err
	}
	// What is done is decided here, and the table updated; the file
	// system work is the writer's (pipeline.go), after the operations
	// that made the source file and bl.dir.
	st, owner, buf, size, piped := m.st, rs.owner, bl.writerBuf(), m.size, rs.pipe != nil
	// The last operation that wrote or read the source file: this one
	// waits for it (pipeline.waitFor) when it is another lane's, and is
	// the last one itself where it moves the file (a rename from msg/,
	// or the file's first write) or may be followed by one that does (a
	// copy from msg/, which the rename to the file's first box of its
	// own partition must not overtake).
	var after opRef
	this := uint64(0)
	if piped {
		after = unpackRef(m.made)
		this = packRef(opRef{lane: bl.lane, seq: rs.pipe.nextSeq()})
	}
	var op func(src, dst *cyrusfs.Dir) error
	switch {
	case m.st == b.st && m.mtime < 0:
		m.first, m.uid, m.mtime, m.made = b.id, uid, internaldate, this
		if err := rs.setMsg(g, m); err != nil {
			if held.slab != nil {
				rs.pipe.unref(held.slab)
			}
			return err
		}
		if held.slab != nil {
			// Written where it belongs, its mtime set before it is
			// closed: nothing in msg/ to rename.
			hb := held.b
			return bl.opHeld(held.slab, func() error {
				if err := writeStaged(bl.dir, name, owner, g, hb, internaldate); err != nil {
					return fmt.Errorf("UID %d: %w", uid, err)
				}
				return nil
			})
		}
		op = func(src, dst *cyrusfs.Dir) error {
			if err := src.SetMtime(srcName, t); err != nil {
				return err
			}
			return src.RenameNoReplace(srcName, dst, name)
		}
	case m.st == b.st && m.mtime == internaldate:
		op = func(src, dst *cyrusfs.Dir) error {
			_, err := src.LinkOrCopy(srcName, dst, name, owner, buf)
			return err
		}
	default:
		if m.first == 0 {
			m.made = this
			if err := rs.setMsg(g, m); err != nil {
				return err
			}
		}
		op = func(src, dst *cyrusfs.Dir) error {
			in, err := src.Open(srcName, os.O_RDONLY)
			if err != nil {
				return err
			}
			defer in.Close()
			nf, err := dst.NewFile(name, owner, 0o600)
			if err != nil {
				return err
			}
			// The source may lie in a mailbox already placed, which
			// Cyrus can change: what is copied, as root, must be the
			// message (its GUID and size), not whatever the name holds
			// now.
			_, err = io.CopyBuffer(onlyWriter{nf.File()}, guid.NewReader(in, g, size), buf)
			if err == nil {
				err = cyrusfs.Futimens(nf.File(), t)
			}
			if err != nil {
				nf.Abort()
				return err
			}
			return nf.Link(false)
		}
	}
	return bl.opAfter(nil, after, func() error {
		src, done, err := rs.openWhere(st, srcDir)
		if err == nil {
			err = op(src, bl.dir)
			done()
		}
		if err != nil && piped {
			return fmt.Errorf("UID %d: %w", uid, err)
		}
		return err
	})
}

// onlyWriter hides an *os.File's ReadFrom, so io.CopyBuffer uses the run's
// buffer.
type onlyWriter struct{ io.Writer }

// copyBuf returns the run's copy buffer: one for all messages, not one per
// io.Copy.
func (rs *restorer) copyBuf() []byte {
	if rs.buf == nil {
		rs.buf = make([]byte, 64<<10)
	}
	return rs.buf
}
