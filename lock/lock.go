// Package lock takes the whole-file fcntl locks that Cyrus IMAP uses.
//
// Cyrus 3.6 locks every file with classic POSIX record locks over the whole
// file (F_SETLKW with F_RDLCK or F_WRLCK). This package takes Linux
// open-file-description (OFD) locks instead: they conflict with Cyrus's
// classic locks in both directions, but belong to the open file rather than
// the process, so closing another descriptor of the same file does not drop
// them, and two goroutines holding separate descriptors exclude each other.
//
// Lock order (namespace, mailbox name, cyrus.index, then leaf databases) is
// the caller's business; see docs/cyrus/locks.md §3.
package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrWouldBlock is returned by the Try functions when another holder has a
// conflicting lock.
var ErrWouldBlock = errors.New("lock: held by another process")

func setlk(f *os.File, typ int16, wait bool) error { return setlkFd(f.Fd(), f.Name(), typ, wait) }

func setlkFd(fd uintptr, name string, typ int16, wait bool) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	cmd := unix.F_OFD_SETLK
	if wait {
		cmd = unix.F_OFD_SETLKW
	}
	for {
		err := unix.FcntlFlock(fd, cmd, &lk)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN || err == unix.EACCES {
			return ErrWouldBlock
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
		return nil
	}
}

// Shared takes a shared (read) lock on the whole of f, waiting for writers.
func Shared(f *os.File) error { return setlk(f, unix.F_RDLCK, true) }

// Exclusive takes an exclusive (write) lock on the whole of f, waiting.
func Exclusive(f *os.File) error { return setlk(f, unix.F_WRLCK, true) }

// TryExclusive takes an exclusive lock without waiting; it returns
// ErrWouldBlock if another holder has the file locked.
func TryExclusive(f *os.File) error { return setlk(f, unix.F_WRLCK, false) }

// TryShared takes a shared lock without waiting.
func TryShared(f *os.File) error { return setlk(f, unix.F_RDLCK, false) }

// Unlock releases the lock held through f.
func Unlock(f *os.File) error { return setlk(f, unix.F_UNLCK, true) }

// Wait takes a lock like Shared or Exclusive, but gives up when ctx is done.
// It polls, since a blocked fcntl cannot be interrupted from Go.
func Wait(ctx context.Context, f *os.File, exclusive bool) error {
	return waitFd(ctx, f.Fd(), f.Name(), exclusive)
}

// WaitFd is Wait on a bare descriptor fd of the file name.
func WaitFd(ctx context.Context, fd int, name string, exclusive bool) error {
	return waitFd(ctx, uintptr(fd), name, exclusive)
}

func waitFd(ctx context.Context, fd uintptr, name string, exclusive bool) error {
	typ := int16(unix.F_RDLCK)
	if exclusive {
		typ = unix.F_WRLCK
	}
	if ctx.Done() == nil {
		return setlkFd(fd, name, typ, true) // cannot be cancelled: block
	}
	delay := time.Millisecond
	for {
		err := setlkFd(fd, name, typ, false)
		if err != ErrWouldBlock {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for lock on %s: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// OpenLocked opens path and locks it, waiting without end: OpenLockedContext
// with context.Background().
func OpenLocked(path string, flag int, exclusive bool) (*os.File, error) {
	return OpenLockedContext(context.Background(), path, flag, exclusive)
}

// OpenLockedContext opens path (flag is passed to os.OpenFile; a symlink
// at path is not followed, and anything but a regular file is refused
// without blocking the open) and locks it, following Cyrus's reopen-on-replace
// loop (lib/lock_fcntl.c lock_reopen_ex, lib/mappedfile.c): after the lock is
// granted it compares the inode of the descriptor with that of the path and,
// if a writer has renamed a new file into place meanwhile, reopens and locks
// again. The returned file is the current file at path, locked. os.O_RDONLY
// is enough for a shared OFD lock. It waits for the lock only until ctx is
// done: a file that Cyrus keeps locked must not make mbtool deaf to SIGINT.
func OpenLockedContext(ctx context.Context, path string, flag int, exclusive bool) (*os.File, error) {
	return Reopen(ctx, path, func() (*os.File, error) {
		// O_NONBLOCK: a FIFO planted at path must not block the open.
		f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			f.Close()
			if err == nil {
				err = &fs.PathError{Op: "open", Path: path, Err: errors.New("not a regular file")}
			}
			return nil, err
		}
		return f, nil
	}, exclusive)
}

// Reopen is OpenLockedContext with the file opened by open, which must
// open whatever path (for messages) names now; callers that resolve paths
// beneath a root without following symlinks pass their own.
func Reopen(ctx context.Context, path string, open func() (*os.File, error), exclusive bool) (*os.File, error) {
	for range 100 {
		f, err := open()
		if err != nil {
			return nil, err
		}
		if err := Wait(ctx, f, exclusive); err != nil {
			f.Close()
			return nil, err
		}
		fi, err1 := f.Stat()
		g, err2 := open()
		if err2 == nil {
			gi, err3 := g.Stat()
			g.Close()
			if err1 == nil && err3 == nil && os.SameFile(fi, gi) {
				return f, nil
			}
		}
		f.Close()
		if err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			return nil, err2
		}
	}
	return nil, fmt.Errorf("lock %s: file keeps being replaced", path)
}

// ID is which file an open descriptor is: its device and inode number.
// Neither changes while the file is open, and no other file gets the
// inode while a descriptor holds it, so the ID taken once (at the open)
// tells at every later relock whether a path still names the file, with
// a stat of the path alone.
type ID struct{ dev, ino uint64 }

// IDOf returns the ID of the open descriptor fd (one fstat).
func IDOf(fd int) (ID, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return ID{}, err
	}
	return ID{dev: st.Dev, ino: st.Ino}, nil
}

// FileID returns the ID of the file fi describes (from os.File.Stat).
func FileID(fi os.FileInfo) (ID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ID{}, false
	}
	return ID{dev: uint64(st.Dev), ino: st.Ino}, true
}

// RelockSize locks f, a file kept open from OpenLockedContext whose ID is
// id (IDOf, FileID), again, waiting until ctx is done, and reports
// whether path still names it (a symlink there is not followed), with
// f's size as read under the lock (for a reader of a database it keeps
// open, once per mailbox a dump reads). If not, a writer renamed a new
// file into place since: f is unlocked and the caller opens path anew,
// as Cyrus's read_lock does with a database it keeps open
// (lib/mappedfile.c). The path's stat is the only one: it is f's inode when its ID is f's,
// so its size is f's. The stat goes into a stack buffer: an os.FileInfo
// for each was most of what such a read allocated.
func RelockSize(ctx context.Context, f *os.File, id ID, path string, exclusive bool) (size int64, ok bool, err error) {
	if err := Wait(ctx, f, exclusive); err != nil {
		return 0, false, err
	}
	var pst unix.Stat_t
	err = ignoringEINTR(func() error { return unix.Lstat(path, &pst) })
	if err == nil && id.dev == pst.Dev && id.ino == pst.Ino {
		return pst.Size, true, nil
	}
	Unlock(f)
	if err != nil && err != unix.ENOENT {
		return 0, false, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return 0, false, nil
}

// ignoringEINTR retries fn while it fails with EINTR, as package os does
// for its stats.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// File is a Cyrus lock file (an empty file that exists only to be locked,
// such as a mailbox name lock). Cyrus creates these files and never removes
// them; neither does this package.
//
// It is a bare descriptor, not an *os.File: a lock file is only locked and
// closed, and os.NewFile costs an fcntl(F_GETFL) per file (several per
// mailbox a dump reads).
type File struct {
	fd    int
	name  string
	id    ID // the file's, when known (hasID)
	hasID bool
}

// Take locks the open lock file fd (name is its path, for errors),
// waiting until ctx is done, and returns it as a File; on an error fd is
// closed.
func Take(ctx context.Context, fd int, name string, exclusive bool) (*File, error) {
	if err := waitFd(ctx, uintptr(fd), name, exclusive); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &File{fd: fd, name: name}, nil
}

// Kept is a lock file's descriptor kept open, unlocked, by Keep, with the
// file's ID once a Retake has learnt it.
type Kept struct {
	fd    int
	id    ID
	hasID bool
}

// Fd is the kept descriptor.
func (k Kept) Fd() int { return k.fd }

// Close closes the kept descriptor.
func (k Kept) Close() error { return unix.Close(k.fd) }

// Keep unlocks the lock file but keeps it open, and returns it for a
// later Retake of the same file: a caller that locks one file again and
// again (an owner's namespace lock, once per mailbox) saves the open,
// the stat and the close each time. On an error the descriptor is closed.
func (l *File) Keep() (Kept, error) {
	if l == nil || l.fd < 0 {
		return Kept{fd: -1}, fmt.Errorf("lock file: %w", os.ErrClosed)
	}
	k := Kept{fd: l.fd, id: l.id, hasID: l.hasID}
	l.fd = -1
	if err := setlkFd(uintptr(k.fd), l.name, unix.F_UNLCK, true); err != nil {
		unix.Close(k.fd)
		return Kept{fd: -1}, err
	}
	return k, nil
}

// Retake locks k, a lock file kept by Keep, again, waiting until ctx is
// done, and checks under the lock that path (a symlink there is not
// followed) still names it, as RelockSize does for a kept database:
// Cyrus never removes a lock file, but the lock directory may be emptied
// under it (a tmpfs, an administrator's clean-up), and a kept descriptor
// would then lock a deleted inode no Cyrus process opens. The file's ID
// is read at the first Retake and kept with it (File, Keep), so that the
// later ones stat the path alone. If path names another file or none,
// the descriptor is closed and Retake returns nil: the caller opens path
// anew. On an error the descriptor is closed.
func Retake(ctx context.Context, k Kept, path string, exclusive bool) (*File, error) {
	l, err := Take(ctx, k.fd, path, exclusive)
	if err != nil {
		return nil, err
	}
	if !k.hasID {
		if k.id, err = IDOf(k.fd); err != nil {
			l.Release()
			return nil, nil
		}
	}
	l.id, l.hasID = k.id, true
	var pst unix.Stat_t
	if ignoringEINTR(func() error { return unix.Lstat(path, &pst) }) != nil || k.id.dev != pst.Dev || k.id.ino != pst.Ino {
		l.Release()
		return nil, nil
	}
	return l, nil
}

// TryTake locks the open lock file fd as Take does, without waiting: it
// returns ErrWouldBlock if another holder has a conflicting lock. On an
// error fd is closed.
func TryTake(fd int, name string, exclusive bool) (*File, error) {
	typ := int16(unix.F_RDLCK)
	if exclusive {
		typ = unix.F_WRLCK
	}
	if err := setlkFd(uintptr(fd), name, typ, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &File{fd: fd, name: name}, nil
}

// Release unlocks and closes the lock file. Closing the descriptor is the
// unlock: an OFD lock belongs to its open file description, which ends
// with its only descriptor (fcntl(2)), so no F_UNLCK is sent first. Cyrus's
// lock_unlock before close (imap/mboxname.c mboxname_release) releases
// nothing more.
func (l *File) Release() error {
	if l == nil || l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	if err != nil {
		return fmt.Errorf("closing lock file %s: %w", l.name, err)
	}
	return nil
}
