package cyrusfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noTmpfile is set once the file system turned out to lack O_TMPFILE.
var noTmpfile atomic.Bool

// NewFile is a file being written in a directory that has no name yet (an
// O_TMPFILE inode, or a temporary name where the file system lacks those):
// it already has its owner and mode. Write it through Write or File, then
// give it its name with Link or Replace, or drop it with Abort. In a
// private directory (Dir.MkdirPrivate) it has its name from the start:
// nobody else can see it there, and Link only closes it.
type NewFile struct {
	d    *Dir
	fd   int
	f    *os.File // made from fd on the first call of File
	name string   // the name it is meant to get
	tmp  string   // temporary name, "" for an O_TMPFILE inode
	// madeAs is the name it has in a private directory, where it is
	// made under its name ("" elsewhere).
	madeAs string
}

// NewFile starts the file that is to be name in d, with mode perm and
// owner o. The name is checked at once, but given only by Link or Replace
// (in a private directory, at once: see NewFile).
func (d *Dir) NewFile(name string, o Owner, perm os.FileMode) (*NewFile, error) {
	if err := checkName(name); err != nil {
		return nil, &fs.PathError{Op: "create", Path: d.Join(name), Err: err}
	}
	o, err := d.owner(o)
	if err != nil {
		return nil, err
	}
	if d.private {
		return d.newPrivate(name, o, perm)
	}
	stepAt("create", d, name)
	nf := &NewFile{d: d, name: name}
	fd := -1
	if !noTmpfile.Load() {
		fd, err = unix.Openat(d.fd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL {
			noTmpfile.Store(true)
		} else if err != nil {
			return nil, pathErr("create", d.path, err)
		}
	}
	if fd < 0 {
		nf.tmp = tmpName()
		fd, err = unix.Openat(d.fd, nf.tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, pathErr("create", d.Join(nf.tmp), err)
		}
	}
	nf.fd = fd
	if err := setOwnerAt(fd, o, perm, 0o600, d, name); err != nil {
		nf.Abort()
		return nil, &fs.PathError{Op: "chown", Path: d.Join(name), Err: err}
	}
	return nf, nil
}

// newPrivate is NewFile in a private directory: the file is created
// under its name (O_CREAT|O_EXCL|O_NOFOLLOW: a name taken, by a file or a
// symlink, fails with EEXIST, and nothing is followed), then given its
// owner and mode through its descriptor.
func (d *Dir) newPrivate(name string, o Owner, perm os.FileMode) (*NewFile, error) {
	stepAt("create", d, name)
	fd, err := unix.Openat(d.fd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, pathErr("create", d.Join(name), err)
	}
	nf := &NewFile{d: d, fd: fd, name: name, madeAs: name}
	if err := setOwnerAt(fd, o, perm, 0o600, d, name); err != nil {
		nf.Abort()
		return nil, &fs.PathError{Op: "chown", Path: d.Join(name), Err: err}
	}
	return nf, nil
}

// File returns the open file, for writing.
func (nf *NewFile) File() *os.File {
	if nf.f == nil {
		nf.f = os.NewFile(uintptr(nf.fd), nf.d.Join(nf.name))
	}
	return nf.f
}

// Write writes b to the file through its descriptor (without the
// *os.File that File makes).
func (nf *NewFile) Write(b []byte) (int, error) {
	if nf.f != nil {
		return nf.f.Write(b)
	}
	return writeFd(nf.fd, b, -1, nf.d, nf.name)
}

// writeFd writes all of b to fd, at offset off (pwrite), or at its
// position when off is negative (write); d and name name it in an error.
func writeFd(fd int, b []byte, off int64, d *Dir, name string) (int, error) {
	n := 0
	for n < len(b) {
		var m int
		var err error
		if off < 0 {
			m, err = unix.Write(fd, b[n:])
		} else {
			m, err = unix.Pwrite(fd, b[n:], off+int64(n))
		}
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "write", Path: d.Join(name), Err: err}
		}
		if m == 0 {
			return n, &fs.PathError{Op: "write", Path: d.Join(name), Err: io.ErrShortWrite}
		}
		n += m
	}
	return n, nil
}

// WriteAt writes all of b at offset off, through the descriptor.
func (nf *NewFile) WriteAt(b []byte, off int64) (int, error) {
	if nf.f != nil {
		return nf.f.WriteAt(b, off)
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: nf.d.Join(nf.name), Err: unix.EINVAL}
	}
	return writeFd(nf.fd, b, off, nf.d, nf.name)
}

// Sync fsyncs the file.
func (nf *NewFile) Sync() error {
	if err := unix.Fsync(nf.fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: nf.d.Join(nf.name), Err: err}
	}
	return nil
}

// Close closes a file that has its name (Link(true)).
func (nf *NewFile) Close() error { return nf.close() }

// close closes the file's descriptor.
func (nf *NewFile) close() error {
	if nf.f != nil {
		return nf.f.Close()
	}
	if nf.fd < 0 {
		return nil
	}
	err := unix.Close(nf.fd)
	nf.fd = -1
	if err != nil {
		return &fs.PathError{Op: "close", Path: nf.d.Join(nf.name), Err: err}
	}
	return nil
}

// Unnamed reports whether the file has no name until Link or Replace (an
// O_TMPFILE inode, or one in a private directory, where nobody else can
// see it), rather than a temporary name in its directory (a file
// system without O_TMPFILE) that other programs listing the directory see
// and a killed run leaves behind.
func (nf *NewFile) Unnamed() bool { return nf.tmp == "" }

// ForceNamedTemp makes NewFile give files a temporary name, as on a file
// system without O_TMPFILE, until undo is called (for the tests of that
// way).
func ForceNamedTemp() (undo func()) {
	was := noTmpfile.Swap(true)
	return func() { noTmpfile.Store(was) }
}

// Abort closes the file and removes it.
func (nf *NewFile) Abort() {
	nf.close()
	switch {
	case nf.madeAs != "":
		unix.Unlinkat(nf.d.fd, nf.madeAs, 0)
	case nf.tmp != "":
		unix.Unlinkat(nf.d.fd, nf.tmp, 0)
	}
}

// link gives the file the name name in d, failing with EEXIST if taken.
func (nf *NewFile) link(name string) error {
	if nf.madeAs != "" {
		stepAt("link", nf.d, name)
		stepAt("linked", nf.d, name)
		if name == nf.madeAs {
			return nil
		}
		if err := renameNoReplace(nf.d.fd, nf.madeAs, nf.d.fd, name); err != nil {
			return err
		}
		nf.madeAs = name
		return nil
	}
	stepAt("link", nf.d, name)
	var err error
	if nf.tmp != "" {
		err = renameNoReplace(nf.d.fd, nf.tmp, nf.d.fd, name)
		if err == nil {
			nf.tmp = ""
		}
	} else {
		fd := nf.fd
		err = unix.Linkat(unix.AT_FDCWD, fdPath(fd), nf.d.fd, name, unix.AT_SYMLINK_FOLLOW)
		if err == unix.ENOENT && os.Geteuid() == 0 {
			// No /proc: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH.
			err = unix.Linkat(fd, "", nf.d.fd, name, unix.AT_EMPTY_PATH)
		}
	}
	stepAt("linked", nf.d, name)
	return err
}

// Link gives the file its name in its directory, which must be free
// (else the error wraps fs.ErrExist), and closes it unless keepOpen.
// The file is not fsynced: call File().Sync() first where that matters.
func (nf *NewFile) Link(keepOpen bool) error {
	name := nf.name
	if err := nf.link(name); err != nil {
		nf.Abort()
		return pathErr("link", nf.d.Join(name), err)
	}
	if keepOpen {
		return nil
	}
	return nf.close()
}

// Replace fsyncs the file and puts it in the place of name: linked as
// name.NEW (a leftover of that name is removed first, as Cyrus's writers
// do), renamed over name, and the directory fsynced. The caller holds
// whatever lock guards name. The file is closed.
func (nf *NewFile) Replace() error {
	name := nf.name
	if err := unix.Fsync(nf.fd); err != nil {
		nf.Abort()
		return &fs.PathError{Op: "fsync", Path: nf.d.Join(name), Err: err}
	}
	if nf.madeAs != "" {
		// In a private directory it already has a name of its own
		// (name.NEW, from Dir.Replace): renamed over name.
		return nf.replacePrivate()
	}
	newName := name + ".NEW"
	if err := unix.Unlinkat(nf.d.fd, newName, 0); err != nil && err != unix.ENOENT {
		nf.Abort()
		return &fs.PathError{Op: "remove", Path: nf.d.Join(newName), Err: err}
	}
	if err := nf.link(newName); err != nil {
		nf.Abort()
		return pathErr("link", nf.d.Join(newName), err)
	}
	nf.tmp = newName // from here Abort removes name.NEW
	if err := nf.d.Rename(newName, nf.d, name); err != nil {
		nf.Abort()
		return err
	}
	nf.tmp = ""
	if err := nf.close(); err != nil {
		return err
	}
	return nf.d.Sync()
}

// replacePrivate is Replace of a file made under its own name in a
// private directory: the name it was made under (nf.madeAs) is renamed
// over nf.name.
func (nf *NewFile) replacePrivate() error {
	if nf.madeAs != nf.name {
		if err := nf.d.Rename(nf.madeAs, nf.d, nf.name); err != nil {
			nf.Abort()
			return err
		}
		nf.madeAs = nf.name
	}
	if err := nf.close(); err != nil {
		return err
	}
	return nf.d.Sync()
}

// Create creates the file name in d with mode perm and owner o, both set
// before the name exists; the error wraps fs.ErrExist if it does.
func (d *Dir) Create(name string, o Owner, perm os.FileMode) (*os.File, error) {
	nf, err := d.NewFile(name, o, perm)
	if err != nil {
		return nil, err
	}
	if err := nf.Link(true); err != nil {
		return nil, err
	}
	return nf.File(), nil
}

// Ensure creates the empty file name in d (mode 0600, owner o) unless
// something exists there. A symlink there is an error.
func (d *Dir) Ensure(name string, o Owner) error {
	st, err := d.Lstat(name)
	if err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return pathErr("open", d.Join(name), unix.ELOOP)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fd, made, err := d.makeEmpty(name, o)
	if err != nil || !made {
		return err
	}
	if err := unix.Close(fd); err != nil {
		return &fs.PathError{Op: "close", Path: d.Join(name), Err: err}
	}
	return nil
}

// MakeIfMissing makes the empty file name in d (mode 0600, owner o set
// before it has its name, as NewFile and Link do) unless the name is
// taken, by anything, and reports whether it made it. It looks for
// nothing first: for a file most often missing (a new mailbox's lock
// file) that is one unnamed inode and its link, without Ensure's failed
// look-up; a name taken costs an inode made and dropped.
func (d *Dir) MakeIfMissing(name string, o Owner) (bool, error) {
	fd, made, err := d.makeEmpty(name, o)
	if err != nil || !made {
		return false, err
	}
	if err := unix.Close(fd); err != nil {
		return true, &fs.PathError{Op: "close", Path: d.Join(name), Err: err}
	}
	return true, nil
}

// makeEmpty makes the empty file name in d, mode 0600 and owner o set
// before it has its name (NewFile, Link), and returns its descriptor,
// open O_RDWR, with made true. If the name is taken meanwhile (by a file
// a Cyrus process created, or anything else), it makes nothing: made is
// false and fd -1.
func (d *Dir) makeEmpty(name string, o Owner) (fd int, made bool, err error) {
	nf, err := d.NewFile(name, o, 0o600)
	if errors.Is(err, fs.ErrExist) { // a private directory: made under its name
		return -1, false, nil
	}
	if err != nil {
		return -1, false, err
	}
	if err := nf.link(name); err != nil {
		nf.Abort()
		if errors.Is(err, unix.EEXIST) {
			return -1, false, nil
		}
		return -1, false, pathErr("link", d.Join(name), err)
	}
	fd, nf.fd = nf.fd, -1
	return fd, true, nil
}

// openMade is Tree.OpenEnsured once name was found missing in d: it
// makes the file and returns the descriptor it was made with, or opens
// as OpenFd does (flag) the file made there meanwhile.
func (d *Dir) openMade(name string, o Owner, flag int) (int, error) {
	fd, made, err := d.makeEmpty(name, o)
	if err != nil || made {
		return fd, err
	}
	return d.OpenFd(name, flag)
}

// Replace writes a new file with write (mode perm, owner o set first) and
// puts it in the place of name as NewFile.Replace does.
func (d *Dir) Replace(name string, o Owner, perm os.FileMode, write func(*os.File) error) error {
	nf, err := d.NewFile(name+".NEW", o, perm)
	if err != nil {
		return err
	}
	nf.name = name
	if err := write(nf.File()); err != nil {
		nf.Abort()
		return err
	}
	return nf.Replace()
}

// LinkOrCopy makes newname in nd a hard link to the file oldname in d, as
// Cyrus links a message it copies. Where link fails because the file has
// too many links (EMLINK), lies on another file system (EXDEV) or the file
// system forbids it (EPERM, EOPNOTSUPP), it writes a copy instead, owned
// by o with the old file's mode and modification time, as Cyrus's
// cyrus_copyfile does (lib/util.c). It returns whether it copied.
func (d *Dir) LinkOrCopy(oldname string, nd *Dir, newname string, o Owner, buf []byte) (copied bool, err error) {
	if err := checkNames(oldname, newname); err != nil {
		return false, &fs.PathError{Op: "link", Path: d.Join(oldname), Err: err}
	}
	stepAt("rename", nd, newname)
	err = unix.Linkat(d.fd, oldname, nd.fd, newname, 0)
	switch err {
	case nil:
		stepAt("renamed", nd, newname)
		return false, nil
	case unix.EMLINK, unix.EXDEV, unix.EPERM, unix.EOPNOTSUPP:
	default:
		return false, &os.LinkError{Op: "link", Old: d.Join(oldname), New: nd.Join(newname), Err: err}
	}
	in, err := d.Open(oldname, os.O_RDONLY)
	if err != nil {
		return false, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return false, err
	}
	nf, err := nd.NewFile(newname, o, fi.Mode().Perm())
	if err != nil {
		return false, err
	}
	if buf == nil {
		buf = make([]byte, 64<<10)
	}
	_, err = io.CopyBuffer(onlyWriter{nf.File()}, onlyReader{in}, buf)
	if err == nil {
		err = Futimens(nf.File(), fi.ModTime())
	}
	if err != nil {
		nf.Abort()
		return false, &fs.PathError{Op: "copy", Path: nd.Join(newname), Err: err}
	}
	return true, nf.Link(false)
}

// Futimens sets the access and modification times of the open file f.
func Futimens(f *os.File, t time.Time) error { return futimens(f.Fd(), f.Name(), t) }

// Futimens sets the access and modification times of the file through
// its descriptor (without the *os.File that File makes): before Link,
// the file gets its name with them.
func (nf *NewFile) Futimens(t time.Time) error {
	if nf.f != nil {
		return Futimens(nf.f, t)
	}
	return futimens(uintptr(nf.fd), nf.d.Join(nf.name), t)
}

// futimens sets the access and modification times of the open file fd,
// path in an error.
func futimens(fd uintptr, path string, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return &fs.PathError{Op: "futimens", Path: path, Err: e}
	}
	return nil
}

// onlyWriter and onlyReader hide ReadFrom/WriteTo, so CopyBuffer uses the
// buffer given.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }
