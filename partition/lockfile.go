package partition

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"

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
// (cyrusfs.Tree.Checked) made anew every rootCheckEvery files, as
// nsLockCache does: the lock directory's path is checked (a stat) once
// a view rather than twice a file. A lock directory replaced meanwhile
// gets the files of the rest of the view in the directory it was (never
// through a symlink); the commit groups open every lock file through
// views of their own, checked anew. A LockFiles is safe for concurrent
// use.
type LockFiles struct {
	s    *Spool
	mu   sync.Mutex
	tree *cyrusfs.Tree
	uses int
}

// LockFiles returns a maker of s's lock files.
func (s *Spool) LockFiles() *LockFiles { return &LockFiles{s: s} }

// NameLock makes the lock file of mailbox e's name lock.
func (m *LockFiles) NameLock(e Entry) error { return m.make(nameLockName(e)) }

// NamespaceLock makes the lock file of userid's namespace lock.
func (m *LockFiles) NamespaceLock(userid string) error {
	return m.make(namespaceLockName(userid))
}

func (m *LockFiles) make(lockname string) error {
	m.mu.Lock()
	if m.tree == nil || m.uses >= rootCheckEvery {
		m.tree, m.uses = m.s.tree().Checked(), 0
	}
	m.uses++
	tree := m.tree
	m.mu.Unlock()
	path := m.s.Config.lockPath(lockname)
	fd, err := openLockFile(tree, path)
	if err != nil {
		return fmt.Errorf("lock file %s: %w", path, err)
	}
	return unix.Close(fd)
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
