package partition

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
	path := s.Config.lockPath(lockname)
	tree := s.tree()
	open := func() (int, error) {
		fd, err := tree.OpenFd(path, os.O_RDWR)
		if err != nil && !exclusive && errors.Is(err, fs.ErrPermission) {
			fd, err = tree.OpenFd(path, os.O_RDONLY)
		}
		return fd, err
	}
	// Lock files persist (Cyrus never removes them): open the one there,
	// and create it and its directories only when it is missing, rather
	// than walking and creating every directory for every mailbox.
	fd, err := open()
	if errors.Is(err, fs.ErrNotExist) {
		if err := tree.Ensure(path, cyrusfs.Inherit); err != nil {
			return nil, fmt.Errorf("lock file %s: %w", path, err)
		}
		fd, err = open()
	}
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	l, err := lock.Take(ctx, fd, path, exclusive)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return l, nil
}
