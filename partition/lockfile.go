package partition

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mbtool/mbtool/lock"
)

// nameLock takes the shared Cyrus name lock lockname (a namespace lock
// "*U*user", a uniqueid, or a legacy mailbox name), waiting until ctx is
// done.
//
// Cyrus creates missing lock files itself (O_RDWR|O_CREAT, mode 0666 under
// its umask) and opens existing ones O_RDWR. A file created here by root
// would lock Cyrus (running as cyrus) out of it, so missing directories and
// files are created first and given the owner of the lock root.
func (s *Spool) nameLock(ctx context.Context, lockname string) (*lock.File, error) {
	path := s.Config.lockPath(lockname)
	if err := s.ensureLockFile(path); err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	l, err := lock.OpenFile(ctx, path, false)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return l, nil
}

// ensureLockFile creates path (and its directories) if missing, owned like
// the lock root when running as root.
func (s *Spool) ensureLockFile(path string) error {
	if _, err := os.Lstat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	root := filepath.Clean(s.Config.LockPath)
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		// The lock root, or else the configdirectory, tells whom Cyrus
		// runs as.
		for _, p := range []string{root, s.Config.ConfigDir} {
			if fi, err := os.Stat(p); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					uid, gid = int(st.Uid), int(st.Gid)
					break
				}
			}
		}
	}
	if err := mkdirOwned(filepath.Dir(path), uid, gid); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if uid >= 0 {
		err = f.Chown(uid, gid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirOwned is os.MkdirAll with mode 0700 that chowns every directory it
// creates to uid:gid (when uid >= 0).
func mkdirOwned(dir string, uid, gid int) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirOwned(parent, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	if uid >= 0 {
		return os.Chown(dir, uid, gid)
	}
	return nil
}
