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
// it already has its owner and mode. Write it through File, then give it
// its name with Link or Replace, or drop it with Abort.
type NewFile struct {
	d    *Dir
	f    *os.File
	name string // the name it is meant to get
	tmp  string // temporary name, "" for an O_TMPFILE inode
}

// NewFile starts the file that is to be name in d, with mode perm and
// owner o. The name is checked at once, but given only by Link or Replace.
func (d *Dir) NewFile(name string, o Owner, perm os.FileMode) (*NewFile, error) {
	if err := checkName(name); err != nil {
		return nil, &fs.PathError{Op: "create", Path: d.Join(name), Err: err}
	}
	o, err := d.owner(o)
	if err != nil {
		return nil, err
	}
	step("create", d.Join(name))
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
	nf.f = os.NewFile(uintptr(fd), d.Join(name))
	if err := setOwner(fd, o, perm, d.Join(name)); err != nil {
		nf.Abort()
		return nil, &fs.PathError{Op: "chown", Path: d.Join(name), Err: err}
	}
	return nf, nil
}

// File returns the open file, for writing.
func (nf *NewFile) File() *os.File { return nf.f }

// Unnamed reports whether the file has no name until Link or Replace (an
// O_TMPFILE inode), rather than a temporary name in its directory (a file
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
	nf.f.Close()
	if nf.tmp != "" {
		unix.Unlinkat(nf.d.fd, nf.tmp, 0)
	}
}

// link gives the file the name name in d, failing with EEXIST if taken.
func (nf *NewFile) link(name string) error {
	step("link", nf.d.Join(name))
	var err error
	if nf.tmp != "" {
		err = renameNoReplace(nf.d.fd, nf.tmp, nf.d.fd, name)
		if err == nil {
			nf.tmp = ""
		}
	} else {
		fd := int(nf.f.Fd())
		err = unix.Linkat(unix.AT_FDCWD, fdPath(fd), nf.d.fd, name, unix.AT_SYMLINK_FOLLOW)
		if err == unix.ENOENT && os.Geteuid() == 0 {
			// No /proc: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH.
			err = unix.Linkat(fd, "", nf.d.fd, name, unix.AT_EMPTY_PATH)
		}
	}
	step("linked", nf.d.Join(name))
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
	return nf.f.Close()
}

// Replace fsyncs the file and puts it in the place of name: linked as
// name.NEW (a leftover of that name is removed first, as Cyrus's writers
// do), renamed over name, and the directory fsynced. The caller holds
// whatever lock guards name. The file is closed.
func (nf *NewFile) Replace() error {
	name := nf.name
	if err := nf.f.Sync(); err != nil {
		nf.Abort()
		return &fs.PathError{Op: "fsync", Path: nf.d.Join(name), Err: err}
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
	if err := nf.f.Close(); err != nil {
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
	return nf.f, nil
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
	f, err := d.Create(name, o, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Replace writes a new file with write (mode perm, owner o set first) and
// puts it in the place of name as NewFile.Replace does.
func (d *Dir) Replace(name string, o Owner, perm os.FileMode, write func(*os.File) error) error {
	nf, err := d.NewFile(name+".NEW", o, perm)
	if err != nil {
		return err
	}
	nf.name = name
	if err := write(nf.f); err != nil {
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
	step("rename", nd.Join(newname))
	err = unix.Linkat(d.fd, oldname, nd.fd, newname, 0)
	switch err {
	case nil:
		step("renamed", nd.Join(newname))
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
	_, err = io.CopyBuffer(onlyWriter{nf.f}, onlyReader{in}, buf)
	if err == nil {
		err = Futimens(nf.f, fi.ModTime())
	}
	if err != nil {
		nf.Abort()
		return false, &fs.PathError{Op: "copy", Path: nd.Join(newname), Err: err}
	}
	return true, nf.Link(false)
}

// Futimens sets the access and modification times of the open file f.
func Futimens(f *os.File, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return &fs.PathError{Op: "futimens", Path: f.Name(), Err: e}
	}
	return nil
}

// onlyWriter and onlyReader hide ReadFrom/WriteTo, so CopyBuffer uses the
// buffer given.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }
