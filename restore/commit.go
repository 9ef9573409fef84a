package restore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
)

// maxGroup bounds how many mailboxes of the dump are registered by one
// mailboxes.db transaction (each holds a name lock meanwhile, and is
// loaded: park.go), with the missing parents made for them (at most one
// per level of their names),
// and so how many owners' namespace locks one group holds. Every group
// costs two flushes of the file system (its renames, then mailboxes.db)
// and a transaction of mailboxes.db: at 64 mailboxes a group they were
// about a third of the commit of 20,001 small mailboxes, at 512 a
// twentieth, each flush about 10 ms of the disk's with the cores idle.
// 1,024 halves those again for about 1 MiB more at 200,001 mailboxes
// (peak RSS 60 MiB rather than 59). A group also ends once its boxes'
// state reaches maxGroupBytes, and holds at most a quarter of the
// descriptors the process may open (groupLimit). (A variable for the
// tests that need several groups.)
var maxGroup = 1024

// maxGroupBytes bounds the parked state (encoded: names, ACL, mailbox
// annotations) of the boxes one group loads, so that a dump whose
// mailboxes carry large annotations keeps the run's memory flat. (A
// variable for the tests.)
var maxGroupBytes = 4 << 20

// groupLimit is maxGroup, or fewer where the descriptors the process may
// open would not hold a group's locks: each box takes up to three (its
// name lock, the replaced mailbox's, its owner's namespace lock), and a
// quarter of the limit is left to them.
func groupLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return maxGroup
	}
	return max(1, min(maxGroup, int(rl.Cur/4/3)))
}

// syncfs flushes the file system of a descriptor (a variable for the
// tests that count the flushes).
var syncfs = unix.Syncfs

// commit is phase two: it runs only after the whole dump has verified.
func (rs *restorer) commit() error {
	q, err := rs.newQuotaPlan()
	if err != nil {
		return err
	}
	// What the read phase staged is flushed while the metadata is
	// written and the name-lock files made (writeAllMeta): the disk
	// works while the cores do. Then one flush of each file system
	// for every staged file of every mailbox, its metadata included: a
	// group only flushes its renames before it registers them.
	early := rs.flushStaged()
	err = rs.writeAllMeta(q)
	if ferr := <-early; err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if err := syncStages(rs.stageList); err != nil {
		return err
	}
	crashPoint()
	// The implicit parents (intermediate.go) come after every box of the
	// dump. One is committed with the first group that holds a mailbox
	// it was made for, in the same transaction, before it (withParents):
	// a parent that fails refuses the child, and a child refused at the
	// last moment leaves no parent, as with --server, which sends a
	// child only once its parents are created. The parents of kept
	// mailboxes only are committed at the end, in groups of their own.
	// Each box is loaded to be decided, and parked again once committed
	// (park.go): at most a group's boxes (and their parents) are in
	// memory.
	limit := groupLimit()
	commits := func(b *box) bool {
		return b.building() && !b.done && (!b.implicit || rs.childCommitted(b))
	}
	for i := 0; i < rs.boxes.len(); {
		if err := rs.ctx.Err(); err != nil {
			return err
		}
		b := rs.boxes.at(uint32(i + 1))
		if err := rs.parked.Load(b); err != nil {
			return err
		}
		if !commits(b) {
			if err := rs.parked.Park(b); err != nil {
				return err
			}
			i++
			continue
		}
		group, pos := []*box{b}, []int{i}
		size := rs.parked.Size(b)
		j := i + 1
		for ; j < rs.boxes.len() && len(group) < limit && size < maxGroupBytes; j++ {
			c := rs.boxes.at(uint32(j + 1))
			if c.implicit != b.implicit {
				break // decided after the group is committed
			}
			if err := rs.parked.Load(c); err != nil {
				return err
			}
			if commits(c) {
				group, pos = append(group, c), append(pos, j)
				size += rs.parked.Size(c)
				continue
			}
			if err := rs.parked.Park(c); err != nil {
				return err
			}
		}
		if !b.implicit {
			if group, pos, err = rs.withParents(group, pos); err != nil {
				return err
			}
		}
		if err := rs.groupRoots(q, group); err != nil {
			return err
		}
		n, err := rs.commitGroup(group, pos)
		if err != nil {
			return err
		}
		for _, g := range group {
			if err := rs.parked.Park(g); err != nil {
				return err
			}
		}
		// An owner's lock was busy: the next group begins with the first
		// mailbox of the dump not taken (its parents, if not taken either,
		// join it again).
		if n < len(group) {
			next := -1
			for m := n; m < len(group) && next < 0; m++ {
				next = pos[m]
			}
			if next < 0 {
				return fmt.Errorf("restore: a commit group ended with a missing parent (%s), not the mailbox it was made for", group[len(group)-1].name)
			}
			j = next
		}
		i = j
		crashPoint() // between groups
	}
	hook("grouped") // every group committed; the quota plan still in use
	if err := rs.commitMerges(q); err != nil {
		return err
	}
	// The users' files that do not exist yet (quota roots, seen dbs,
	// subscription files) are written into batches of new files, each
	// made durable and visible by two flushes of each file system
	// (partition.NewFiles), not by fsyncs of each file and directory;
	// a file that exists is changed by its writer's transaction, at once.
	files := partition.NewFileBatch(syncfs)
	files.Step = crashPoint
	if err := rs.writeUserFiles(q, files); err != nil {
		// What was written whole is kept, as it was when each file
		// was written at once.
		return errors.Join(err, files.Commit())
	}
	if err := files.Commit(); err != nil {
		return err
	}
	return rs.writeServerAnnotations()
}

// groupRoots decides the quota root of each box of a group, before its
// locks are taken, and refuses a box whose root changed since its
// metadata was written (writeAllMeta). The roots are looked up under one
// pin of the configuration directory for the group (quotaPlan.pin).
func (rs *restorer) groupRoots(q *quotaPlan, group []*box) error {
	defer q.pin()()
	for _, g := range group {
		// A mailbox whose missing parent an earlier group refused
		// is refused before its locks are taken (and waited for).
		if refused, err := rs.refuseForParent(g); err != nil {
			return err
		} else if refused {
			continue
		}
		root, err := q.rootOf(g.name)
		if err != nil {
			return err
		}
		if g.metaWritten && root != g.quotaRoot {
			// Its cyrus.header names the root found by writeAllMeta:
			// a quota root made in the target meanwhile would not
			// count it. q remembers what it found (up to 1024
			// answers), so this sees such a root only where q looks
			// again: otherwise the root is the target's when the
			// run first asked, as it always was.
			rs.refuse(g, fmt.Sprintf("its quota root changed in the target meanwhile (%q, now %q); run the restore again", g.quotaRoot, root))
			continue
		}
		g.quotaRoot = root
	}
	return nil
}

// writeUserFiles writes the quota roots, seen records and subscriptions
// into files (a batch its caller commits).
func (rs *restorer) writeUserFiles(q *quotaPlan, files *partition.NewFiles) error {
	if err := rs.writeQuotas(q, files); err != nil {
		return err
	}
	crashPoint()
	if err := rs.writeSeen(files); err != nil {
		return err
	}
	crashPoint()
	return rs.writeSubs(files)
}

// building reports whether the box was built to be installed.
func (b *box) building() bool {
	return b.dir != "" && (b.res.Action == ActionCreate || b.res.Action == ActionReplace)
}

// entry is the mailboxes.db entry of the restored mailbox.
func (b *box) entry() partition.Entry {
	fm := b.src.FolderModseq
	if fm == 0 {
		fm = b.hdr.HighestModseq
	}
	return partition.Entry{
		Name: b.name, UniqueID: b.uniqueid, Partition: b.partition, Type: b.typ,
		UIDValidity: b.src.UIDValidity, CreatedModseq: b.src.CreatedModseq, FolderModseq: fm,
		MTime: timeNow().Unix(), ACL: b.acl,
	}
}

// lockGroup takes the locks commitGroup needs, in Cyrus's order
// (docs/cyrus/locks.md §3, §6): the namespace lock of each owner, then
// each mailbox's name lock (and the replaced mailbox's), exclusive. It
// waits for a lock only while it holds no namespace lock, or only that of
// the box's own owner, as a group of one owner always did: the locks of
// the group's first owner it locks (not always group[0]'s, which may have
// been refused meanwhile). Another owner's locks are only tried, so that
// the restore never waits while it holds locks a Cyrus process of another
// user may be waiting for (a COPY holding one user's mailbox while it
// opens another's). At the first busy lock the group ends before that
// box: lockGroup returns how many boxes it locked (at least one that it
// locks, since it waits for the first), and release frees the locks.
func (rs *restorer) lockGroup(group []*box, pos []int) (n int, release func(), err error) {
	var ns, names []*lock.File
	// len(names) and len(ns) when each box's locks begin.
	var cuts, nsCuts []int
	held := map[string]bool{}
	release = func() {
		for _, l := range names {
			l.Release()
		}
		for _, l := range ns {
			l.Release()
		}
	}
	busy := func(err error) bool { return errors.Is(err, lock.ErrWouldBlock) }
	cut := func(k int) (int, func(), error) {
		// The missing parents added before a box (pos -1, withParents)
		// are cut with it: they hold its owner's locks for nothing.
		for k > 0 && pos != nil && pos[k-1] < 0 {
			k--
		}
		return cutGroup(k, cuts, nsCuts, &names, &ns, release)
	}
	for k, b := range group {
		cuts, nsCuts = append(cuts, len(names)), append(nsCuts, len(ns))
		if !b.building() {
			continue // refused before the group was locked
		}
		// Wait only while no other owner's namespace lock is held.
		wait := len(ns) == 0 || (len(ns) == 1 && held[b.owner])
		if !held[b.owner] {
			var l *lock.File
			if wait {
				l, err = rs.spool.LockNamespace(rs.ctx, b.owner, true)
			} else {
				l, err = rs.spool.TryLockNamespace(b.owner, true)
			}
			if busy(err) {
				return cut(k)
			}
			if err != nil {
				return 0, release, err
			}
			ns = append(ns, l)
			held[b.owner] = true
		}
		e := b.entry()
		ids := []partition.Entry{e}
		if r := b.replaced; r != nil && (r.UniqueID != e.UniqueID || r.LegacyDirs() != e.LegacyDirs()) {
			ids = append(ids, *r)
		}
		for _, id := range ids {
			var l *lock.File
			if wait {
				l, err = rs.spool.LockMailboxName(rs.ctx, id, true)
			} else {
				l, err = rs.spool.TryLockMailboxName(id, true)
			}
			if busy(err) {
				return cut(k)
			}
			if err != nil {
				return 0, release, err
			}
			names = append(names, l)
		}
	}
	return len(group), release, nil
}

// cutGroup ends a group before its box k: it frees the name locks and the
// namespace locks taken for box k and after (cuts[k] and nsCuts[k]
// onwards), so that the group holds no lock of a box it does not commit
// while it commits the others (a Cyrus process of that owner may be
// waiting for it).
func cutGroup(k int, cuts, nsCuts []int, names, ns *[]*lock.File, release func()) (int, func(), error) {
	for _, l := range (*names)[cuts[k]:] {
		l.Release()
	}
	*names = (*names)[:cuts[k]]
	for _, l := range (*ns)[nsCuts[k]:] {
		l.Release()
	}
	*ns = (*ns)[:nsCuts[k]]
	return k, release, nil
}

// commitGroup installs and registers mailboxes of one or more owners,
// under the owners' namespace locks and each mailbox's exclusive name
// lock (lockGroup). It returns how many of the group's boxes it took
// (a prefix); the rest make the next group.
func (rs *restorer) commitGroup(group []*box, pos []int) (int, error) {
	n, release, err := rs.lockGroup(group, pos)
	defer release()
	if err != nil {
		return 0, err
	}
	return n, rs.commitLocked(group[:n])
}

// commitLocked is commitGroup once the locks are held.
func (rs *restorer) commitLocked(group []*box) error {
	var written, ready, unsynced []*box
	// mailboxes.db again, now that the locks are held: the whole group
	// in one hold of its shared lock.
	dbWhy := map[*box]string{}
	var checked partition.MailboxesState
	err := rs.spool.ReadMailboxes(func(v *partition.MailboxesView) error {
		checked = v.State()
		for _, b := range group {
			if b.building() {
				why, err := txCheck(v, b)
				if err != nil {
					return err
				}
				dbWhy[b] = why
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range group {
		if !b.building() {
			continue // refused before the group was locked
		}
		if refused, err := rs.refuseForParent(b); err != nil {
			return err
		} else if refused {
			continue
		}
		if why, err := rs.precheck(b, dbWhy[b]); err != nil {
			return err
		} else if why != "" {
			rs.refuse(b, why)
			continue
		}
		if !b.metaWritten {
			if err := rs.writeBoxMeta(b); err != nil {
				rs.refuse(b, err.Error())
				continue
			}
			// Written with quotaRoot: a parent not placed in this group
			// (its child refused or cut) is not written twice when it
			// comes again with a child.
			b.metaWritten = true
			unsynced = append(unsynced, b)
		}
		written = append(written, b)
	}
	// Every mailbox's files are durable before its directory gets its
	// final name (flushed once for all by commit, after writeAllMeta;
	// here only for a box whose metadata was written in the group), and
	// every name before mailboxes.db registers it.
	if err := syncBoxes(unsynced); err != nil {
		return err
	}
	// A parent none of whose children is still to be placed is not
	// placed either (a child refused since it was locked).
	wanted := map[*box]bool{}
	for _, b := range written {
		if err := rs.eachParent(b, func(p *box) { wanted[p] = true }); err != nil {
			return err
		}
	}
	ready, err = rs.placeBoxes(written, wanted)
	if err != nil {
		return err
	}
	if len(ready) == 0 {
		return nil
	}
	if err := syncBoxes(ready); err != nil {
		return err
	}
	if err := rs.writeMailboxAnnotations(ready); err != nil {
		return err
	}
	crashPoint()
	hook("registering") // a group placed, checked in its view, not registered
	registered := map[*box]bool{}
	err = rs.spool.UpdateMailboxes(rs.owner, func(tx *partition.MailboxesTx) error {
		// Every box is checked first, parents before their children: a
		// parent refused here refuses its child, and a parent is
		// registered only with a child that is (or one kept).
		var pass []*box
		needed := map[*box]bool{}
		// Every box of ready passed txCheck in the group's view: the
		// same state again (no other writer since) gives the same
		// answers, not looked up again.
		check := txCheck
		if tx.Unchanged(checked) {
			check = passed
		}
		for _, b := range ready {
			if why, err := check(tx, b); err != nil {
				return err
			} else if why != "" {
				rs.refuse(b, why)
				continue
			}
			if refused, err := rs.refuseForParent(b); err != nil {
				return err
			} else if refused {
				continue
			}
			pass = append(pass, b)
			if !b.implicit {
				if err := rs.eachParent(b, func(p *box) { needed[p] = true }); err != nil {
					return err
				}
			}
		}
		for _, b := range pass {
			if b.implicit && !needed[b] && !rs.childCommitted(b) {
				continue // placed, registered later with a child, or left unregistered
			}
			if r := b.replaced; r != nil && r.UniqueID != b.uniqueid && r.UniqueID != "" {
				tx.DeleteID(r.UniqueID)
			}
			if err := tx.Put(b.entry()); err != nil {
				return err
			}
			registered[b] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registering mailboxes in mailboxes.db: %w", err)
	}
	crashPoint()
	// Raise the owners' modseq counters to the HIGHESTMODSEQ of what was
	// registered, as Cyrus does when it commits a mailbox (imap/mailbox.c
	// mailbox_commit, and sync_server's APPLY MAILBOX: mboxname_setmodseq;
	// only with `conversations: yes`), once per counter and group.
	top := map[string]*box{}
	var order []string
	// The counters' paths (each looks its owner's INBOX up) with one
	// hold of mailboxes.db's lock, before removeOld takes other locks.
	type counter struct {
		path string
		ok   bool
		err  error
	}
	counters := map[*box]counter{}
	// Without `conversations: yes` there are no counters to raise
	// (SetModseq does nothing): no hold for their paths.
	raise := rs.cfg.Switch("conversations", false)
	var cerr error
	if raise {
		cerr = rs.spool.ReadMailboxes(func(v *partition.MailboxesView) error {
			for _, b := range ready {
				if registered[b] {
					var c counter
					c.path, c.ok, c.err = v.CountersPath(b.name)
					counters[b] = c
				}
			}
			return nil
		})
	}
	for _, b := range ready {
		if !registered[b] {
			continue
		}
		b.done, b.res.Applied = true, true
		if r := b.replaced; r != nil {
			rs.removeOld(b, *r)
		}
		if !raise {
			continue
		}
		c, looked := counters[b]
		path, ok, err := c.path, c.ok, c.err
		if !looked {
			ok, err = false, cerr // mailboxes.db could not be read
		}
		if err != nil {
			rs.problem(b.name, fmt.Errorf("the modseq counter was not raised: %w", err))
			continue
		}
		if !ok {
			continue
		}
		if t := top[path]; t == nil {
			order = append(order, path)
			top[path] = b
		} else if b.hdr.HighestModseq > t.hdr.HighestModseq {
			top[path] = b
		}
	}
	for _, path := range order {
		b := top[path]
		if _, err := rs.spool.SetModseq(rs.ctx, partition.Entry{Name: b.name, Type: b.typ}, b.hdr.HighestModseq, rs.owner); err != nil {
			rs.problem(b.name, fmt.Errorf("the modseq counter was not raised to its HIGHESTMODSEQ %d: %w", b.hdr.HighestModseq, err))
		}
	}
	return nil
}

// refuse refuses b for the reason why, reported as its problem; a missing
// parent's problem names the mailbox it was made for, as --server's does.
func (rs *restorer) refuse(b *box, why string) {
	b.res.Action, b.res.Reason = ActionRefuse, why
	err := errors.New(why)
	if b.implicit && len(b.children) > 0 {
		if c, perr := spill.Peek(rs.parked, rs.boxes.at(b.children[0])); perr == nil {
			err = result.MissingParentError(c.name, err)
		}
	}
	rs.problem(b.name, err)
}

// withParents returns group with, before each mailbox it creates, the
// missing parents made for it (intermediate.go) that are not committed
// yet and not refused, loaded, outermost first: they are committed with
// it, in the same mailboxes.db transaction. pos, each box's index in
// rs.boxes, is returned along, -1 for the parents added.
func (rs *restorer) withParents(group []*box, pos []int) ([]*box, []int, error) {
	var out []*box
	var outPos []int
	in := map[*box]bool{}
	for _, g := range group {
		in[g] = true
	}
	for k, g := range group {
		if g.building() {
			var ps []*box
			err := rs.eachParent(g, func(p *box) {
				if !in[p] && !p.done {
					ps = append(ps, p)
				}
			})
			if err != nil {
				return nil, nil, err
			}
			for i := len(ps) - 1; i >= 0; i-- { // outermost first
				p := ps[i]
				if err := rs.parked.Load(p); err != nil {
					return nil, nil, err
				}
				if p.building() {
					in[p] = true
					out, outPos = append(out, p), append(outPos, -1)
				} else if err := rs.parked.Park(p); err != nil {
					return nil, nil, err
				}
			}
		}
		out, outPos = append(out, g), append(outPos, pos[k])
	}
	return out, outPos, nil
}

// eachParent calls f with each missing parent made for b, a mailbox of
// the dump it creates, innermost first (none for any other box).
func (rs *restorer) eachParent(b *box, f func(p *box)) error {
	if b.implicit || b.res.Action != ActionCreate || b.owner == "" {
		return nil
	}
	inbox := rs.spool.UserInbox(b.owner)
	if !strings.HasPrefix(b.name, inbox+".") {
		return nil
	}
	for a := mboxname.Parent(b.name); len(a) > len(inbox); a = mboxname.Parent(a) {
		p, err := rs.named(a)
		if err != nil {
			return err
		}
		if p != nil && p.implicit {
			f(p)
		}
	}
	return nil
}

// refuseForParent refuses b, a mailbox of the dump to create, when a
// missing parent made for it was refused, in the words of --server
// (result.ParentError), naming the outermost such parent, and says
// whether it did.
func (rs *restorer) refuseForParent(b *box) (bool, error) {
	var why string
	var perr error
	err := rs.eachParent(b, func(p *box) {
		pd, err := spill.Peek(rs.parked, p)
		if err != nil {
			perr = err
			return
		}
		if pd.res.Action == ActionRefuse {
			why = (&result.ParentError{Parent: pd.name, Err: errors.New(pd.res.Reason)}).Error()
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil || why == "" {
		return false, err
	}
	rs.refuse(b, why)
	return true, nil
}

// precheck says why b is refused now that the locks are held: dbWhy,
// what mailboxes.db says (txCheck, in the group's view), or a change of
// the mailbox to replace, or its owner's modseq counter.
func (rs *restorer) precheck(b *box, dbWhy string) (string, error) {
	if dbWhy != "" {
		return dbWhy, nil
	}
	if why, err := rs.targetMoved(b); why != "" || err != nil {
		return why, err
	}
	return rs.reserveModseq(b)
}

// reserveModseq reserves, last before a replace is written, the MODSEQ
// its changes were numbered with above its owner's modseq counter
// (newReplace), under the counters file's lock, taken under the locks the
// commit holds as Cyrus takes it under a mailbox's: it says why the
// mailbox is refused when the counter reached that MODSEQ meanwhile (a
// change of the owner numbered since, among which the replace's changes
// would hide) or the file cannot be read.
func (rs *restorer) reserveModseq(b *box) (string, error) {
	if b.replaced == nil || b.reserve == 0 {
		return "", nil
	}
	ok, err := rs.spool.ReserveModseq(rs.ctx, partition.Entry{Name: b.name, Type: b.typ}, b.reserve, rs.owner)
	if err != nil {
		if rs.ctx.Err() != nil {
			return "", err
		}
		return fmt.Sprintf("its owner's modseq counter cannot be raised to %d (%v)", b.reserve, err), nil
	}
	if !ok {
		return fmt.Sprintf("its owner's modseq counter reached %d, the MODSEQ of the replace's changes, since the dump was read "+
			"(a change of the owner meanwhile); run the restore again", b.reserve), nil
	}
	return "", nil
}

// targetMoved says why a mailbox to replace has changed since its
// snapshot was read (a delivery, a flag change), "" if it has not: the
// replace was computed from that snapshot, and would hide the change.
func (rs *restorer) targetMoved(b *box) (string, error) {
	if b.replaced == nil || b.tgt.UIDValidity == 0 {
		return "", nil
	}
	h, err := rs.spool.ReadIndexHeader(*b.replaced)
	if err != nil {
		return "", err
	}
	if h.UIDValidity != b.tgt.UIDValidity || h.LastUID != b.tgt.LastUID || h.HighestModseq != b.tgt.HighestModseq {
		return fmt.Sprintf("changed in the target meanwhile (HIGHESTMODSEQ %d, now %d); run the restore again", b.tgt.HighestModseq, h.HighestModseq), nil
	}
	return "", nil
}

// mailboxesState is mailboxes.db as txCheck reads it: a view under the
// shared lock (before the group is placed) or the transaction that
// registers it.
type mailboxesState interface {
	Lookup(name string) (partition.Entry, bool, error)
	IDExists(uniqueid string) (bool, error)
}

// txCheck says why mailboxes.db forbids b's action now: its name taken
// or changed, or its uniqueid taken. It runs before the group is placed,
// and again inside the mailboxes.db transaction if the database changed
// in between (MailboxesTx.Unchanged).
func txCheck(tx mailboxesState, b *box) (string, error) {
	cur, exists, err := tx.Lookup(b.name)
	if err != nil {
		return "", err
	}
	if why := entryConflict(b, cur, exists); why != "" {
		return why, nil
	}
	if b.replaced == nil || b.replaced.UniqueID != b.uniqueid {
		taken, err := tx.IDExists(b.uniqueid)
		if err != nil {
			return "", err
		}
		if taken {
			return "uniqueid " + b.uniqueid + " was taken meanwhile", nil
		}
	}
	return "", nil
}

// passed is txCheck of a box that passed it in the same state.
func passed(mailboxesState, *box) (string, error) { return "", nil }

// entryConflict says why the current entry of the name forbids the
// planned action, or "".
func entryConflict(b *box, cur partition.Entry, exists bool) string {
	live := exists && !cur.Deleted() && !cur.Intermediate()
	switch {
	case b.replaced == nil && live:
		return "created in the target meanwhile"
	case b.replaced != nil && (!live || cur.UniqueID != b.replaced.UniqueID):
		return "changed in the target meanwhile"
	}
	return ""
}

// writeMeta writes the files of the staged mailbox that depend on its
// final name and uniqueid (cyrus.header, the index header); syncBoxes
// flushes them before placeBox renames the directory into place. Every
// step goes through package cyrusfs.
func (rs *restorer) writeMeta(b *box) error {
	hb, err := partition.EncodeHeader(partition.Header{Type: b.typ, Name: b.name, UniqueID: b.uniqueid,
		QuotaRoot: b.quotaRoot, ACL: b.acl, UserFlags: b.flags})
	if err != nil {
		return err
	}
	d, err := rs.openStaged(b.st, b.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	hf, err := d.NewFile(partition.FileHeader, rs.owner, 0o600)
	if err != nil {
		return err
	}
	if _, err = hf.Write(hb); err != nil {
		hf.Abort()
	} else {
		err = hf.Link(false)
	}
	if err != nil {
		return fmt.Errorf("writing cyrus.header: %w", err)
	}
	h := b.hdr
	h.HeaderFileCRC = crc32.ChecksumIEEE(hb)
	fd, err := d.OpenFd(partition.FileIndex, os.O_RDWR)
	if err != nil {
		return err
	}
	ih := partition.AppendIndexHeader(nil, h)
	n, err := unix.Pwrite(fd, ih, 0)
	if err == nil && n < len(ih) {
		err = io.ErrShortWrite
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s header: %w", d.Join(partition.FileIndex), err)
	}
	return nil
}

// writeAllMeta writes the metadata of every box to be installed that
// depends on its final name (writeBoxMeta), before any group is locked,
// so that commit flushes the file systems once for all of them rather
// than once more per group. The quota root written is the one the target
// has now; commitGroup refuses a box whose root changed meanwhile. A box
// that cannot be written is refused.
//
// The boxes are loaded, their roots looked up and their metadata split
// to side directories (splitMeta), refused and parked in dump order, in
// this goroutine; their files (writeMeta: each box's own, in its own
// staged directory) are written by commitWorkers goroutines meanwhile.
// Nothing of it is visible to Cyrus: the staging directory is private.
func (rs *restorer) writeAllMeta(q *quotaPlan) error {
	// The quota roots are looked up from the configuration directory
	// opened once per pass of maxRootCache boxes (partition.PinnedReads),
	// not checked again (a stat) for each: see quotaPlan.pin.
	pass := q.pinPass()
	defer pass.done()
	lastOwner, first := "", true
	locks := rs.spool.LockFiles()
	defer locks.Close()
	meta := newInOrder(func(b *box) error {
		if err := rs.writeMeta(b); err != nil {
			return err
		}
		// The lock file the box's group will lock, made while the
		// staged files are flushed (commit): the group, which holds
		// its locks until mailboxes.db is written, only opens it. One
		// that cannot be made is left to the group, whose lock makes
		// it again and stops the run with that error where it did
		// before.
		locks.NameLock(b.entry())
		return nil
	}, func(b *box, err error) error {
		if err == nil {
			err = rs.splitMeta(b)
		}
		if err != nil {
			rs.refuse(b, err.Error())
		} else {
			b.metaWritten = true
			if first || b.owner != lastOwner {
				// Its owner's namespace lock file, likewise (here, once
				// an owner: the workers would make it together).
				locks.NamespaceLock(b.owner)
				lastOwner, first = b.owner, false
			}
		}
		return rs.parked.Park(b)
	})
	defer meta.close()
	for b := range rs.boxes.all() {
		if err := rs.ctx.Err(); err != nil {
			return err
		}
		if err := rs.parked.Load(b); err != nil {
			return err
		}
		pass.next()
		if b.building() {
			// A root that cannot be looked up stops the run when the
			// box's group comes (after the groups before it committed);
			// its metadata is then written in the group.
			if root, err := q.nearest(b.name); err == nil {
				b.quotaRoot = root
				if err := meta.put(b); err != nil {
					return err
				}
				continue
			}
		}
		if err := rs.parked.Park(b); err != nil {
			return err
		}
	}
	return meta.flush()
}

// flushStaged flushes the file systems of the staging directories made
// so far (syncfs) on a goroutine of its own, and sends its error, or
// nil, on the channel it returns; the caller must receive it.
func (rs *restorer) flushStaged() <-chan error {
	stages := append([]*stage(nil), rs.stageList...)
	done := make(chan error, 1)
	go func() { done <- syncStages(stages) }()
	return done
}

// syncStages flushes the file system of each staging directory.
func syncStages(stages []*stage) error {
	for _, st := range stages {
		if err := syncfs(st.d.Fd()); err != nil {
			return fmt.Errorf("syncfs %s: %w", st.dir, err)
		}
	}
	return nil
}

// writeBoxMeta writes the staged mailbox's files that depend on its
// final name (writeMeta) and moves those a metapartition holds to their
// side directories (splitMeta). Nothing of it is visible yet.
func (rs *restorer) writeBoxMeta(b *box) error {
	if err := rs.writeMeta(b); err != nil {
		return err
	}
	return rs.splitMeta(b)
}

// syncBoxes flushes the file systems of the boxes' staging directories
// (syncfs: one call per partition for any number of mailboxes).
func syncBoxes(boxes []*box) error {
	var stages []*stage
	seen := map[*stage]bool{}
	for _, b := range boxes {
		for _, st := range append([]*stage{b.st}, b.sideStages()...) {
			if !seen[st] {
				seen[st] = true
				stages = append(stages, st)
			}
		}
	}
	return syncStages(stages)
}

// side is a directory of a mailbox apart from its data directory: where
// metapartition_files (or a metadir- override) puts some of its metadata
// files, on the metapartition (imap/mailbox.c mailbox_meta_fname). It is
// staged in a staging directory of its own root and placed with the data
// directory, before the mailbox is registered.
type side struct {
	st         *stage
	dir, final string // the staged directory, then final; its final path
}

func (b *box) sideStages() []*stage {
	var out []*stage
	for _, s := range b.sides {
		out = append(out, s.st)
	}
	return out
}

// metaFiles are the metadata files restore writes, each where MetaPath
// says.
var metaFiles = []string{partition.FileHeader, partition.FileIndex, partition.FileCache, partition.FileAnnotations}

// splitMeta moves the staged metadata files of b that Cyrus looks for
// outside the data directory into side directories staged on their own
// roots: linked and unlinked within a file system, copied across.
func (rs *restorer) splitMeta(b *box) error {
	e := b.entry()
	data, _, err := rs.spool.Dirs(e)
	if err != nil {
		return err
	}
	tree := rs.cfg.Tree()
	var src *cyrusfs.Dir
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	for _, f := range metaFiles {
		p, err := rs.spool.MetaPath(e, f)
		if err != nil {
			return err
		}
		final := filepath.Dir(p)
		if final == data {
			continue
		}
		if src == nil {
			if src, err = tree.OpenDir(b.dir); err != nil {
				return err
			}
		}
		if _, err := src.Lstat(f); errors.Is(err, fs.ErrNotExist) {
			continue // no cache or annotations to write
		} else if err != nil {
			return err
		}
		s, err := rs.sideFor(b, final)
		if err != nil {
			return err
		}
		dst, err := tree.OpenDir(s.dir)
		if err != nil {
			return err
		}
		_, err = src.LinkOrCopy(f, dst, f, rs.owner, rs.copyBuf())
		dst.Close()
		if err != nil {
			return fmt.Errorf("staging %s for %s: %w", f, final, err)
		}
		if err := src.Remove(f); err != nil {
			return err
		}
	}
	return nil
}

// sideFor returns b's side directory whose final path is final, staging
// a new one in final's root if b has none yet.
func (rs *restorer) sideFor(b *box, final string) (*side, error) {
	for i := range b.sides {
		if b.sides[i].final == final {
			return &b.sides[i], nil
		}
	}
	root := ""
	for _, r := range rs.cfg.Tree().Roots() {
		if strings.HasPrefix(final, r+"/") && len(r) > len(root) {
			root = r
		}
	}
	if root == "" {
		return nil, fmt.Errorf("%s is under no configured partition or metapartition", final)
	}
	st, err := rs.stageAt(metaStageKey+root, root)
	if err != nil {
		return nil, err
	}
	d, err := st.newBoxDir(rs.owner)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	b.sides = append(b.sides, side{st: st, dir: d.Path(), final: final})
	return &b.sides[len(b.sides)-1], nil
}

// placeBoxes places the boxes of a group that are still to be installed
// (placeBox), and returns them, in order, without those refused. A box
// whose data directory alone moves, under a uuid path (placeFree), is
// renamed into place by commitWorkers goroutines while the next boxes are
// looked at; any other is placed here, once every box before it is. A
// box is fed only once its missing parents of the group are placed (or
// refused, and it with them), and each is handed back, refused or ready,
// in order: nothing is registered before every box of the group is
// placed and flushed (commitLocked), as when they were placed one by one.
func (rs *restorer) placeBoxes(written []*box, wanted map[*box]bool) ([]*box, error) {
	var ready []*box
	fed := map[*box]bool{} // fed and not handed back yet
	pool := newInOrder(rs.placeFast, func(b *box, err error) error {
		delete(fed, b)
		if errors.Is(err, errNotFast) {
			err = rs.placeBox(b)
		} else if rs.lastWhere.id == b.id {
			rs.lastWhere.id = 0 // as placeBox does
		}
		if err != nil {
			rs.refuse(b, err.Error())
			return nil
		}
		b.placed = true
		ready = append(ready, b)
		crashPoint()
		return nil
	})
	defer pool.close()
	for _, b := range written {
		if b.implicit && !wanted[b] && !rs.childCommitted(b) {
			continue
		}
		pending := false
		if err := rs.eachParent(b, func(p *box) { pending = pending || fed[p] }); err != nil {
			return nil, err
		}
		if pending || !b.placed && !rs.fastPlace(b) {
			if err := pool.flush(); err != nil {
				return nil, err
			}
		}
		if refused, err := rs.refuseForParent(b); err != nil {
			return nil, err
		} else if refused {
			continue
		}
		fed[b] = true
		if err := pool.put(b); err != nil {
			return nil, err
		}
	}
	if err := pool.flush(); err != nil {
		return nil, err
	}
	return ready, nil
}

// errNotFast is placeFast's answer for a box that placeBox must place.
var errNotFast = errors.New("not placed by placeFast")

// fastPlace reports whether placeFast can place b: a mailbox that does
// not replace one, whose data directory holds all its files (no side
// directory) under a uuid path (a legacy path may hold, or be held by,
// another box's directory).
func (rs *restorer) fastPlace(b *box) bool {
	return b.replaced == nil && len(b.sides) == 0 && !b.entry().LegacyDirs()
}

// placeFast places b, or a box placed already, as placeBox would where
// fastPlace says it can and its name is free; it says errNotFast
// otherwise. It runs on placeBoxes' workers: it touches only b, the tree
// and b's staged directory.
func (rs *restorer) placeFast(b *box) error {
	if b.placed {
		return nil
	}
	if !rs.fastPlace(b) {
		return errNotFast
	}
	final, _, err := rs.spool.Dirs(b.entry())
	if err != nil {
		return err
	}
	parent, err := rs.placeFree(b.st, &b.dir, final)
	if parent != nil {
		parent.Close()
		return errNotFast // taken: placeBox looks at it
	}
	return err
}

// placeBox renames the staged mailbox directory, and its side
// directories, their files flushed, into place. The mailbox is not
// registered yet, so Cyrus cannot see them; the caller flushes the
// renames (syncBoxes) before registering it.
func (rs *restorer) placeBox(b *box) error {
	final, _, err := rs.spool.Dirs(b.entry())
	if err != nil {
		return err
	}
	err = rs.placeDir(b, b.st, &b.dir, final)
	if rs.lastWhere.id == b.id {
		rs.lastWhere.id = 0 // where() remembered its staged directory
	}
	if err != nil {
		return err
	}
	for i := range b.sides {
		s := &b.sides[i]
		if err := rs.placeDir(b, s.st, &s.dir, s.final); err != nil {
			return err
		}
	}
	return nil
}

// placeDir renames the directory *dir staged in st to final, and sets
// *dir to final. The final directory's parents are made beneath their
// root without following symlinks, each owned before it has its name.
// With --replace and a metapartition, the data directory and the side
// directories are swapped one after the other, under the mailbox's
// exclusive name lock (docs/restore.md).
func (rs *restorer) placeDir(b *box, st *stage, dir *string, final string) error {
	tree := rs.cfg.Tree()
	parent, err := rs.placeFree(st, dir, final)
	if parent == nil {
		return err
	}
	defer parent.Close()
	name, staged := filepath.Base(final), filepath.Base(*dir)
	_, err = parent.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		// Taken, then gone before it could be looked at: once more.
		if err = st.mbox.RenameNoReplace(staged, parent, name); err == nil {
			*dir = final
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("moving mailbox into place: %w", err)
		}
		_, err = parent.Lstat(name)
	}
	if err == nil {
		// The directory of the mailbox being replaced, or one a killed run
		// renamed into place but did not register: swap them atomically;
		// the old content goes to the trash.
		if hasSubdirs(parent, name) {
			// Legacy layout: the directory also holds the directories
			// of mailboxes below this one, so it stays; the files move
			// in one by one. That is safe only while the mailbox is not
			// registered, which is the case unless it is replaced.
			if b.replaced != nil {
				return fmt.Errorf("directory %s holds other mailboxes' directories (legacy layout); not replaced", final)
			}
			d, err := tree.OpenDir(*dir)
			if err != nil {
				return err
			}
			defer d.Close()
			return moveFiles(st, dir, d, parent, name)
		}
		if err := st.mbox.Exchange(staged, parent, name); err != nil {
			return fmt.Errorf("swapping %s into place: %w", final, err)
		}
		// The box is at final now; what its staged name holds is the old
		// directory, which Cyrus may hold open: never a private one.
		*dir = final
		return st.mbox.Rename(staged, st.trash, st.trashName())
	}
	return err
}

// placeFree is placeDir's first step, all of it when final's name is
// free, as it most often is: it makes final's parents and renames the
// directory *dir staged in st to final without replacing, in one call,
// and sets *dir to final. It returns final's parent, open, only when
// the name is taken (EEXIST): placeDir then looks at what holds it.
// It touches only st's staged directory and the tree (placeBoxes runs it
// for several boxes at once).
func (rs *restorer) placeFree(st *stage, dir *string, final string) (*cyrusfs.Dir, error) {
	// The caller flushes the renames (syncBoxes) before it registers
	// the mailbox: that flush makes the new parents durable too.
	tree, dir0 := rs.cfg.Tree(), filepath.Dir(final)
	parent, err := tree.OpenDir(dir0)
	if err != nil {
		// Missing (or refused: MkdirAllUnsynced names why): made by one
		// goroutine at a time (cyrusfs), so that workers placing boxes
		// under the same new parent do not each make it.
		parent, err = tree.MkdirAllUnsynced(dir0, rs.owner)
		if err != nil {
			return nil, err
		}
	}
	err = st.mbox.RenameNoReplace(filepath.Base(*dir), parent, filepath.Base(final))
	if err == nil {
		*dir = final
	}
	if errors.Is(err, fs.ErrExist) {
		return parent, err
	}
	parent.Close()
	if err != nil {
		return nil, fmt.Errorf("moving mailbox into place: %w", err)
	}
	return nil, nil
}

// hasSubdirs reports whether the directory name in parent holds
// directories. A symlink there is not followed (and holds none).
func hasSubdirs(parent *cyrusfs.Dir, name string) bool {
	d, err := parent.OpenDir(name)
	if err != nil {
		return false
	}
	defer d.Close()
	ents, err := d.ReadDir()
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			return true
		}
	}
	return false
}

// removeOld deletes what a replaced mailbox leaves once the new one is
// registered: its directories (data and metadata) that differ from the
// new one's (only the mailbox's own files; a legacy directory may hold
// other mailboxes). Nothing is followed through a symlink.
func (rs *restorer) removeOld(b *box, old partition.Entry) {
	keep := map[string]bool{b.dir: true}
	for _, s := range b.sides {
		keep[s.dir] = true
	}
	var dirs []string
	if dir, _, err := rs.spool.Dirs(old); err == nil {
		dirs = append(dirs, dir)
	}
	for _, f := range metaFiles {
		if p, err := rs.spool.MetaPath(old, f); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	tree := rs.cfg.Tree()
	for _, dir := range dirs {
		if keep[dir] {
			continue
		}
		keep[dir] = true
		d, err := tree.OpenDir(dir)
		if err != nil {
			continue
		}
		ents, _ := d.ReadDir()
		for _, e := range ents {
			if !e.IsDir() {
				d.Remove(e.Name())
			}
		}
		d.Close()
		tree.Remove(dir) // only if empty
	}
}

// moveFiles moves the files staged in st (in staged, the directory *dir)
// into the existing directory name in parent (of an unregistered
// mailbox), replacing any left there, flushes it, and sets *dir to it.
func moveFiles(st *stage, dir *string, staged, parent *cyrusfs.Dir, name string) error {
	final, err := parent.OpenDir(name)
	if err != nil {
		return err
	}
	defer final.Close()
	ents, err := staged.ReadDir()
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := staged.Rename(e.Name(), final, e.Name()); err != nil {
			return fmt.Errorf("moving into %s: %w", final.Path(), err)
		}
	}
	if err := st.mbox.Remove(filepath.Base(*dir)); err != nil {
		return err
	}
	*dir = final.Path()
	if err := final.Sync(); err != nil {
		return err
	}
	return st.mbox.Sync()
}
