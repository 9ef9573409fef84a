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
// the caller's business; see shared/spec/locking.md.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrWouldBlock is returned by the Try functions when another holder has a
// conflicting lock.
var ErrWouldBlock = errors.New("lock: held by another process")

func setlk(f *os.File, typ int16, wait bool) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	cmd := unix.F_OFD_SETLK
	if wait {
		cmd = unix.F_OFD_SETLKW
	}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN || err == unix.EACCES {
			return ErrWouldBlock
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
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
	typ := int16(unix.F_RDLCK)
	if exclusive {
		typ = unix.F_WRLCK
	}
	delay := time.Millisecond
	for {
		err := setlk(f, typ, false)
		if err != ErrWouldBlock {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for lock on %s: %w", f.Name(), ctx.Err())
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// OpenLocked opens path and locks it, following Cyrus's reopen-on-replace
// loop (lib/lock_fcntl.c lock_reopen_ex, lib/mappedfile.c): after the lock is
// granted it compares the inode of the descriptor with that of the path and,
// if a writer has renamed a new file into place meanwhile, reopens and locks
// again. The returned file is the current file at path, locked. flag is
// passed to os.OpenFile (os.O_RDONLY is enough for a shared OFD lock).
func OpenLocked(path string, flag int, exclusive bool) (*os.File, error) {
	for range 100 {
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			return nil, err
		}
		if exclusive {
			err = Exclusive(f)
		} else {
			err = Shared(f)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			return f, nil
		}
		f.Close()
		if err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			return nil, err2
		}
	}
	return nil, fmt.Errorf("lock %s: file keeps being replaced", path)
}

// File is a Cyrus lock file (an empty file that exists only to be locked,
// such as a mailbox name lock). Cyrus creates these files and never removes
// them; neither does this package.
type File struct {
	f *os.File
}

// OpenFile opens the existing lock file at path and locks it, waiting
// until ctx is done. It does not create the file: a lock file must be
// owned by the user Cyrus runs as, or Cyrus could no longer open it, so
// creating one (with the right owner) is the caller's business. A shared
// lock is taken through a read-only descriptor when the file is not
// writable, so a reader that is not Cyrus's user can still take it.
func OpenFile(ctx context.Context, path string, exclusive bool) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil && !exclusive && errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := Wait(ctx, f, exclusive); err != nil {
		f.Close()
		return nil, err
	}
	return &File{f: f}, nil
}

// Release unlocks and closes the lock file.
func (l *File) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := Unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
