package partition

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/lock"
)

// nameLock takes the shared Cyrus name lock lockname (a namespace lock
// "*U*user", a uniqueid, or a legacy mailbox name), waiting until ctx is
// done; its file is opened beneath tree (s.tree(), or a view of it made
// by cyrusfs.Tree.Checked).
func (s *Spool) nameLock(ctx context.Context, tree *cyrusfs.Tree, lockname string) (*lock.File, error) {
	return s.takeLockIn(ctx, tree, lockname, false, true)
}

// lockName takes the Cyrus name lock lockname, waiting until ctx is done.
//
// Cyrus creates missing lock files itself (O_RDWR|O_CREAT, mode 0666 under
// its umask) and opens existing ones O_RDWR. A file created here by root
// would lock Cyrus (running as cyrus) out of it, so missing directories and
// files are created first, each owned like the directory it is made in
// (the lock directory belongs to the user Cyrus runs as). Nothing is
// followed through a symlink.
func (s *Spool) lockName(ctx context.Context, lockname string, exclusive bool) (*lock.File, error) {
	return s.takeLock(ctx, lockname, exclusive, true)
}

// takeLock is lockName; without wait it does not wait for another holder
// (an error wrapping lock.ErrWouldBlock).
func (s *Spool) takeLock(ctx context.Context, lockname string, exclusive, wait bool) (*lock.File, error) {
	return s.takeLockIn(ctx, s.tree(), lockname, exclusive, wait)
}

// takeLockIn is takeLock with the lock file opened beneath tree.
func (s *Spool) takeLockIn(ctx context.Context, tree *cyrusfs.Tree, lockname string, exclusive, wait bool) (*lock.File, error) {
	path := s.Config.lockPath(lockname)
	fd, err := openLockFile(tree, path)
	if err != nil && !exclusive && errors.Is(err, fs.ErrPermission) {
		// Not root, reading: a shared lock needs no write access.
		if rfd, rerr := tree.OpenFd(path, os.O_RDONLY); rerr == nil {
			fd, err = rfd, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	var l *lock.File
	if wait {
		l, err = lock.Take(ctx, fd, path, exclusive)
	} else {
		l, err = lock.TryTake(fd, path, exclusive)
	}
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return l, nil
}

// openLockFile opens the lock file at path read-write, making it (and its
// directories) if it is missing. Lock files persist (Cyrus never removes
// them): the one there is opened in one openat2; a missing one is made
// and its descriptor kept (cyrusfs.Tree.OpenEnsured), rather than walking
// and creating every directory for every mailbox, or opening the new file
// again.
func openLockFile(tree *cyrusfs.Tree, path string) (int, error) {
	return tree.OpenEnsured(path, cyrusfs.Inherit, os.O_RDWR)
}

// LockFiles makes lock files where they are missing, as taking their
// locks would, without taking them: a restore makes those its commit
// groups will lock (each mailbox's name lock, each owner's namespace
// lock) while its staged files are being flushed, so that the groups,
// which hold their locks until mailboxes.db is written, only open them.
// A lock file made and never locked is what Cyrus itself leaves after
// any lock (it never removes them).
//
// The files are made through a view of the spool's tree
// (cyrusfs.Tree.Checked), made anew every lockFilesView files: the lock
// directory's path is checked (a stat) once a view, and each hashed
// lock directory is opened (or made) once a view, its owner read once,
// rather than two stats, two look-ups and a stat of the directory per
// file. A name lock's file, most often missing (a new mailbox's), is
// made without looking for it first (cyrusfs.Dir.MakeIfMissing); a
// namespace lock's, most often there (an owner's other mailboxes), is
// looked for first. A lock directory replaced during a view gets the
// rest of the view's files in the hashed directories the view opened
// in the directory it was (one it had not opened yet is made in the
// directory now at the path), never through a symlink: they are empty
// files, and the commit groups open every lock file through the tree,
// checked per file, and make one missing there. A view holds at most
// lockViewDirs directories open (a legacy spool of many domains hashes
// its lock files into hundreds). A LockFiles is safe for concurrent
// use; Close closes its directories, after which it must not be used.
type LockFiles struct {
	s    *Spool
	mu   sync.Mutex
	cur  *lockView
	uses int
}

// lockView is a view of the tree and the lock directories opened
// through it, with the owner each gives what is made in it; refs counts
// the files being made in it, retired says a newer view took its place.
type lockView struct {
	tree    *cyrusfs.Tree
	dirs    map[string]lockDir
	refs    int
	retired bool
}

type lockDir struct {
	d     *cyrusfs.Dir
	owner cyrusfs.Owner
}

// lockFilesView is how many files LockFiles makes through one view, and
// lockViewDirs how many directories a view keeps open.
const (
	lockFilesView = 1024
	lockViewDirs  = 40
)

// LockFiles returns a maker of s's lock files.
func (s *Spool) LockFiles() *LockFiles { return &LockFiles{s: s} }

// NameLock makes the lock file of mailbox e's name lock.
func (m *LockFiles) NameLock(e Entry) error { return m.make(nameLockName(e), false) }

// NamespaceLock makes the lock file of userid's namespace lock.
func (m *LockFiles) NamespaceLock(userid string) error {
	return m.make(namespaceLockName(userid), true)
}

// Close closes the lock directories opened.
func (m *LockFiles) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil {
		m.cur.retired = true
		m.cur.closeIfDone()
		m.cur = nil
	}
}

func (m *LockFiles) make(lockname string, look bool) error {
	path := m.s.Config.lockPath(lockname)
	dir, name := filepath.Split(path)
	v, ld, err := m.dir(dir)
	if err == nil {
		if look {
			err = ld.d.Ensure(name, ld.owner)
		} else {
			_, err = ld.d.MakeIfMissing(name, ld.owner)
		}
	}
	m.mu.Lock()
	v.refs--
	v.closeIfDone()
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("lock file %s: %w", path, err)
	}
	return nil
}

// dir returns the current view, its count of files being made raised,
// and the lock directory dir opened through it (made if missing).
func (m *LockFiles) dir(dir string) (*lockView, lockDir, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || m.uses >= lockFilesView || len(m.cur.dirs) >= lockViewDirs && !m.cur.has(dir) {
		if m.cur != nil {
			m.cur.retired = true
			m.cur.closeIfDone()
		}
		m.cur = &lockView{tree: m.s.tree().Checked(), dirs: map[string]lockDir{}}
		m.uses = 0
	}
	m.uses++
	v := m.cur
	v.refs++
	ld, ok := v.dirs[dir]
	if ok {
		return v, ld, nil
	}
	d, err := v.tree.MkdirAll(dir, cyrusfs.Inherit)
	if err != nil {
		return v, ld, err
	}
	o, err := d.Owner(cyrusfs.Inherit)
	if err != nil {
		d.Close()
		return v, ld, err
	}
	ld = lockDir{d, o}
	v.dirs[dir] = ld
	return v, ld, nil
}

func (v *lockView) has(dir string) bool {
	_, ok := v.dirs[dir]
	return ok
}

// closeIfDone closes the view's directories once it is retired and no
// file is being made in it.
func (v *lockView) closeIfDone() {
	if v.retired && v.refs == 0 {
		for k, ld := range v.dirs {
			ld.d.Close()
			delete(v.dirs, k)
		}
	}
}

// nsLockCache keeps the namespace lock file of the last owner whose
// mailbox OpenMailbox opened, open and unlocked, so that a run through
// an owner's mailboxes (a dump: ten or twenty of them in a row) opens
// the file once rather than once per mailbox; the lock itself is still
// taken and released per mailbox, as Cyrus's readers do. Cyrus never
// removes or replaces a lock file, but the lock directory can be emptied
// under it, so each take checks that the path still names the kept file
// (lock.Retake); only one owner's is kept, and a descriptor is used by one
// OpenMailbox at a time (an OFD lock belongs to the descriptor's open
// file description, so two holders must not share one).
//
// With the file it keeps the view of the spool's tree (cyrusfs.Tree.Checked)
// the owner's mailboxes are opened through: each root (lock directory,
// partition, configdirectory) is checked at the first file opened
// beneath it in an owner's run of mailboxes, and again in the view made
// every rootCheckEvery mailboxes of it or when the kept lock file turns
// out to be replaced, rather than once per file opened (three stats of
// long paths per mailbox).
type nsLockCache struct {
	mu    sync.Mutex
	owner string
	path  string // the lock file's path (Config.lockPath), made once per owner
	kept  lock.Kept
	ok    bool          // kept is open, the lock file of owner
	tree  *cyrusfs.Tree // the view owner's mailboxes are opened through
	uses  int           // mailboxes opened through tree
}

// rootCheckEvery is how many mailboxes of one owner are opened through
// one check of the spool's roots (nsLockCache): a root replaced while
// they are opened is noticed at the next check.
const rootCheckEvery = 64

// namespaceLock takes owner's namespace lock shared, on the kept
// descriptor when it is owner's, and returns the view of the tree to open
// owner's mailbox through (nsLockCache).
func (s *Spool) namespaceLock(ctx context.Context, owner string) (*lock.File, *cyrusfs.Tree, error) {
	c := &s.nsLock
	c.mu.Lock()
	kept, ok, path, tree, uses := c.kept, c.ok && c.owner == owner, c.path, c.tree, c.uses
	if ok {
		c.ok = false
	}
	c.mu.Unlock()
	if ok && uses < rootCheckEvery {
		l, err := lock.Retake(ctx, kept, path, false)
		if err != nil {
			return nil, nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if l != nil {
			return l, tree, nil
		}
		// The lock directory was emptied under the kept file: the
		// roots are checked again too.
	} else if ok {
		kept.Close()
	}
	tree = s.tree().Checked()
	l, err := s.nameLock(ctx, tree, namespaceLockName(owner))
	return l, tree, err
}

// releaseNamespace releases owner's namespace lock l taken by
// namespaceLock and keeps its file open, with the view tree it returned,
// for the next mailbox of owner.
func (s *Spool) releaseNamespace(owner string, l *lock.File, tree *cyrusfs.Tree) error {
	kept, err := l.Keep()
	if err != nil {
		return err
	}
	c := &s.nsLock
	c.mu.Lock()
	if c.ok {
		c.kept.Close()
	}
	if c.owner != owner || c.path == "" {
		c.path = s.Config.lockPath(namespaceLockName(owner))
	}
	if c.tree != tree {
		c.uses = 0
	}
	c.owner, c.kept, c.ok, c.tree = owner, kept, true, tree
	c.uses++
	c.mu.Unlock()
	return nil
}
