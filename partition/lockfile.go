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
// done.
func (s *Spool) nameLock(ctx context.Context, lockname string) (*lock.File, error) {
	return s.lockName(ctx, lockname, false)
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
	path := s.Config.lockPath(lockname)
	tree := s.tree()
	// Lock files persist (Cyrus never removes them): the one there is
	// opened in one openat2; a missing one (and its directories) is made
	// and its descriptor kept (cyrusfs.Tree.OpenEnsured), rather than
	// walking and creating every directory for every mailbox, or opening
	// the new file again.
	fd, err := tree.OpenEnsured(path, cyrusfs.Inherit, os.O_RDWR)
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
type nsLockCache struct {
	mu    sync.Mutex
	owner string
	path  string // the lock file's path (Config.lockPath), made once per owner
	fd    int
	ok    bool // fd is open, the lock file of owner
}

// namespaceLock takes owner's namespace lock shared, on the kept
// descriptor when it is owner's.
func (s *Spool) namespaceLock(ctx context.Context, owner string) (*lock.File, error) {
	c := &s.nsLock
	c.mu.Lock()
	fd, ok, path := c.fd, c.ok && c.owner == owner, c.path
	if ok {
		c.ok = false
	}
	c.mu.Unlock()
	if !ok {
		return s.nameLock(ctx, namespaceLockName(owner))
	}
	l, err := lock.Retake(ctx, fd, path, false)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if l == nil { // the lock directory was emptied under the kept file
		return s.nameLock(ctx, namespaceLockName(owner))
	}
	return l, nil
}

// releaseNamespace releases owner's namespace lock l taken by
// namespaceLock and keeps its file open for the next mailbox of owner.
func (s *Spool) releaseNamespace(owner string, l *lock.File) error {
	fd, err := l.Keep()
	if err != nil {
		return err
	}
	c := &s.nsLock
	c.mu.Lock()
	if c.ok {
		unix.Close(c.fd)
	}
	if c.owner != owner || c.path == "" {
		c.path = s.Config.lockPath(namespaceLockName(owner))
	}
	c.owner, c.fd, c.ok = owner, fd, true
	c.mu.Unlock()
	return nil
}
