package cyrusfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// tmpPrefix starts the temporary names the package gives directories
// (and files, where O_TMPFILE is missing) before renaming them into place.
// Cyrus never makes names starting with a dot in its trees.
const tmpPrefix = ".mbtool-tmp-"

// Dir is an open directory beneath a root of a Tree. Names given to its
// methods are single path components, resolved without following
// symlinks.
type Dir struct {
	fd   int
	path string
	// private: the directory lies beneath a directory made by
	// MkdirPrivate, which no other user can enter, so that what is made
	// in it gets its final name at once (see MkdirPrivate).
	private bool
	// exact: what is made in d gets exactly the mode it is created with
	// less the process umask: d is on a file system that does so
	// (umaskFS), has no default ACL and no set-group-ID bit, and no
	// other user can give it either (see modeGiven).
	exact bool
}

// Path returns the directory's path, for messages.
func (d *Dir) Path() string { return d.path }

// Join returns the path of name in d, for messages.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

// Close closes the directory.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// onSync, when set (by this package's tests), is called with the path of
// each directory Sync fsyncs.
var onSync func(path string)

// Sync fsyncs the directory, making creations and renames in it durable.
func (d *Dir) Sync() error {
	if onSync != nil {
		onSync(d.path)
	}
	if err := unix.Fsync(d.fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// Stat returns the directory's own attributes.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return st, &fs.PathError{Op: "stat", Path: d.path, Err: err}
	}
	return st, nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return ErrOutside
	}
	return nil
}

// OpenDir opens the existing directory name in d.
func (d *Dir) OpenDir(name string) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.Join(name), Err: err}
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, pathErr("open", d.Join(name), err)
	}
	return &Dir{fd: fd, path: d.Join(name), private: d.private}, nil
}

// Private reports whether d lies beneath a directory made by
// MkdirPrivate (see there).
func (d *Dir) Private() bool { return d.private }

// Open opens the existing regular file name in d with flag (O_CREAT is
// refused), without following a symlink, and without blocking if it is a
// FIFO (O_NONBLOCK, which changes nothing for regular files and locks).
// Anything but a regular file is refused with ErrNotRegular.
func (d *Dir) Open(name string, flag int) (*os.File, error) {
	fd, err := d.OpenFd(name, flag)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.Join(name)), nil
}

// OpenFd is Open returning the bare descriptor (-1 on an error), for a
// file that is only locked, read at offsets (FdReader) and closed:
// os.NewFile costs an fcntl(F_GETFL).
func (d *Dir) OpenFd(name string, flag int) (int, error) {
	if err := checkName(name); err != nil || flag&os.O_CREATE != 0 {
		if err == nil {
			err = unix.EINVAL
		}
		return -1, &fs.PathError{Op: "open", Path: d.Join(name), Err: err}
	}
	fd, err := unix.Openat(d.fd, name, flag|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, pathErr("open", d.Join(name), err)
	}
	if err := regular(fd); err != nil {
		return -1, regularErr(d.Join(name), err)
	}
	return fd, nil
}

// RegularFile returns the open descriptor fd of the file at path as an
// *os.File if it is a regular file; anything else is refused with
// ErrNotRegular. fd is closed on an error.
func RegularFile(fd int, path string) (*os.File, error) {
	if err := checkRegular(fd, path); err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkRegular refuses fd, and closes it, unless it is a regular file.
func checkRegular(fd int, path string) error {
	if err := regular(fd); err != nil {
		return regularErr(path, err)
	}
	return nil
}

// regular is checkRegular without the path: it returns the fstat's
// error or ErrNotRegular, for regularErr, so that a caller names the
// file (a path to build) only when it is refused.
func regular(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return ErrNotRegular
	}
	return nil
}

// regularErr is checkRegular's error for path from regular's.
func regularErr(path string, err error) error {
	if err == ErrNotRegular {
		return &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	return pathErr("open", path, err)
}

// Owner returns the owner what d makes for o gets: o itself, or for
// Inherit d's owner now (when running as root). A caller making many
// files in d with Inherit resolves it once, rather than a stat of d per
// file.
func (d *Dir) Owner(o Owner) (Owner, error) { return d.owner(o) }

// owner resolves Inherit to the owner of d.
func (d *Dir) owner(o Owner) (Owner, error) {
	if o.UID != inheritUID {
		return o, nil
	}
	if os.Geteuid() != 0 {
		return Owner{UID: -1, GID: -1}, nil
	}
	st, err := d.Stat()
	if err != nil {
		return o, err
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid)}, nil
}

// setOwner gives the open descriptor fd the owner o and mode perm.
func setOwner(fd int, o Owner, perm os.FileMode, path string) error {
	step("chown", path)
	if err := chown(fd, o, perm); err != nil {
		return err
	}
	step("owned", path)
	return nil
}

// setOwnerAt is setOwner of name in d, its path joined only for the
// testing hooks.
// created is the mode fd was created with (before the umask): the
// mode is set only where that does not give perm already (modeGiven).
func setOwnerAt(fd int, o Owner, perm, created os.FileMode, d *Dir, name string) error {
	if d.modeGiven(created, perm) {
		perm = 0
	}
	if !tracing() {
		return chown(fd, o, perm)
	}
	return setOwner(fd, o, perm, d.Join(name))
}

// chown gives fd the owner o, and the mode perm unless perm is 0 (the
// mode it has already).
func chown(fd int, o Owner, perm os.FileMode) error {
	if o.UID >= 0 {
		if err := unix.Fchown(fd, o.UID, o.GID); err != nil {
			return err
		}
	}
	if perm == 0 {
		return nil
	}
	return unix.Fchmod(fd, uint32(perm.Perm()))
}

// modeGiven reports whether what is created in d with mode created has
// the mode perm from its creation, so that no fchmod is needed: d's
// modes are exact (no default ACL, whose mask would apply instead of the
// umask, and no set-group-ID bit, which a directory made in it would
// inherit; only directories beneath MkdirPrivate's are known to be so),
// and created less the process umask is perm. A chown by root, which
// may clear set-user-ID and set-group-ID bits, leaves these modes as
// they are.
func (d *Dir) modeGiven(created, perm os.FileMode) bool {
	if !d.exact {
		return false
	}
	m := umask()
	return m >= 0 && perm == created&^os.FileMode(m)
}

// umask returns the process umask, read once from /proc/self/status
// (reading it with umask(2) would change it for a moment, for every
// goroutine); -1 where it cannot be read, and then every mode is set.
// mbtool never changes its umask.
var umask = sync.OnceValue(readUmask)

func readUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil || n > 0o777 {
				return -1
			}
			return int(n)
		}
	}
	return -1
}

// umaskFS reports whether the directory fd is on a file system known to
// give what is created in it the mode asked for less the umask, unless a
// POSIX default ACL says otherwise (which noDefaultACL checks): ext2/3/4,
// XFS, Btrfs and tmpfs. Elsewhere (NFS with NFSv4 ACLs, CIFS, FUSE) the
// server or the driver may decide the mode its own way, and every mode is
// set.
func umaskFS(fd int) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false
	}
	switch int64(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return true
	}
	return false
}

// noDefaultACL reports whether the directory fd has no default ACL
// (its system.posix_acl_default attribute is missing, or the file system
// has no ACLs).
func noDefaultACL(fd int) bool {
	_, err := unix.Fgetxattr(fd, "system.posix_acl_default", nil)
	return err == unix.ENODATA || err == unix.EOPNOTSUPP
}

// tmpName returns a fresh temporary name: the prefix, the process ID and
// random characters, so that sweep can tell a dead run's.
func tmpName() string {
	var b [6]byte
	rand.Read(b[:])
	return tmpPrefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// sweep removes from d what a run killed between making a directory (or,
// without O_TMPFILE, a file) under a temporary name and renaming it into
// place left behind: the temporary names of processes that no longer
// exist. Such a directory is empty, and nothing but this package uses the
// names.
func (d *Dir) sweep() {
	ents, err := d.ReadDir()
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tmpPrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if err != nil || n <= 0 || n == os.Getpid() || unix.Kill(n, 0) != unix.ESRCH {
			continue
		}
		if e.IsDir() {
			unix.Unlinkat(d.fd, e.Name(), unix.AT_REMOVEDIR)
		} else {
			unix.Unlinkat(d.fd, e.Name(), 0)
		}
	}
}

// Mkdir creates the directory name in d with mode 0700 and owner o, and
// opens it. The directory is made under a temporary name, given its owner
// and mode through its descriptor and then renamed into place without
// replacing anything, so it never has its name with the wrong owner. It
// fails with an error wrapping fs.ErrExist if the name is taken.
//
// In a private directory (MkdirPrivate) it is made under its name at
// once and then given its owner and mode through its descriptor: no
// other user can see it before, and a run killed in between leaves it
// where only the next run's removal of the private directory finds it.
func (d *Dir) Mkdir(name string, o Owner) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, &fs.PathError{Op: "mkdir", Path: d.Join(name), Err: err}
	}
	o, err := d.owner(o)
	if err != nil {
		return nil, err
	}
	// Elsewhere made under a temporary name and renamed; in a private
	// directory under its name (a name taken, by anything, fails with
	// EEXIST: nothing is followed).
	made := name
	if !d.private {
		made = tmpName()
	}
	stepAt("mkdir", d, name)
	if err := unix.Mkdirat(d.fd, made, 0o700); err != nil {
		return nil, pathErr("mkdir", d.Join(name), err)
	}
	fd, err := unix.Openat(d.fd, made, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err == nil {
		err = setOwnerAt(fd, o, 0o700, 0o700, d, name)
		if err == nil && !d.private {
			stepAt("link", d, name)
			err = renameNoReplace(d.fd, made, d.fd, name)
		}
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		unix.Unlinkat(d.fd, made, unix.AT_REMOVEDIR)
		if err == unix.EEXIST || err == unix.ENOTEMPTY {
			err = unix.EEXIST
		}
		return nil, pathErr("mkdir", d.Join(name), err)
	}
	if !d.private {
		stepAt("linked", d, name)
	}
	// Made by this process in a private directory whose modes are
	// exact, with its mode: exact too (another user cannot reach it to
	// give it an ACL).
	return &Dir{fd: fd, path: d.Join(name), private: d.private, exact: d.private && d.exact}, nil
}

// MkdirPrivate creates a fresh directory named prefix followed by random
// characters in d, as MkdirTemp does, but owned by the user running
// mbtool (root, when it runs as root) with mode 0700, and returns it
// marked private: no other user can enter it, or look up, create,
// rename or remove anything beneath it, so directories and files made
// beneath it through the returned Dir (and the Dirs made or opened from
// it) are made under their final names at once, their owner and mode set
// through their descriptors before they leave it (docs/safety.md). Its
// owner and mode are checked on its descriptor, and it must be empty.
//
// Whoever renames a directory out of it (a staged mailbox put into
// place) must not go on making things in it through a Dir opened while
// it was beneath: those would get their names before their owners where
// others can see them.
func (d *Dir) MkdirPrivate(prefix string) (*Dir, error) {
	nd, err := d.MkdirTemp(prefix, Owner{UID: -1, GID: -1})
	if err != nil {
		return nil, err
	}
	st, err := nd.Stat()
	if err == nil && (int(st.Uid) != os.Geteuid() || st.Mode&0o7777 != 0o700) {
		err = &fs.PathError{Op: "mkdir", Path: nd.path, Err: fmt.Errorf("owner %d, mode %#o: not private", st.Uid, st.Mode&0o7777)}
	}
	if err == nil {
		var ents []fs.DirEntry
		if ents, err = nd.ReadDir(); err == nil && len(ents) > 0 {
			err = &fs.PathError{Op: "mkdir", Path: nd.path, Err: fmt.Errorf("not empty: %s", ents[0].Name())}
		}
	}
	if err != nil {
		nd.Close()
		return nil, err
	}
	nd.private = true
	// Its mode was checked above: 0700, no set-group-ID bit.
	nd.exact = umaskFS(nd.fd) && noDefaultACL(nd.fd)
	return nd, nil
}

// MkdirTemp creates a fresh directory named prefix followed by random
// characters in d, as Mkdir does, and returns it.
func (d *Dir) MkdirTemp(prefix string, o Owner) (*Dir, error) {
	for range 100 {
		var b [4]byte
		rand.Read(b[:])
		// Decimal, as os.MkdirTemp names them.
		n := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		nd, err := d.Mkdir(prefix+strconv.FormatUint(n, 10), o)
		if err == nil {
			d.sweep() // a killed run's temporary directory
		}
		if !errors.Is(err, fs.ErrExist) {
			return nd, err
		}
	}
	return nil, &fs.PathError{Op: "mkdir", Path: d.Join(prefix + "*"), Err: fs.ErrExist}
}

// renameNoReplace renames without replacing an existing name (EEXIST).
func renameNoReplace(olddirfd int, oldname string, newdirfd int, newname string) error {
	err := unix.Renameat2(olddirfd, oldname, newdirfd, newname, unix.RENAME_NOREPLACE)
	if err != unix.EINVAL && err != unix.ENOSYS {
		return err
	}
	// File systems without RENAME_NOREPLACE: link then unlink for files;
	// for directories, check then rename (the window is the caller's
	// own temporary name, so at worst an empty directory is replaced).
	var st unix.Stat_t
	if err := unix.Fstatat(olddirfd, oldname, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := unix.Fstatat(newdirfd, newname, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			return unix.EEXIST
		}
		return unix.Renameat(olddirfd, oldname, newdirfd, newname)
	}
	if err := unix.Linkat(olddirfd, oldname, newdirfd, newname, 0); err != nil {
		return err
	}
	return unix.Unlinkat(olddirfd, oldname, 0)
}

// Rename renames oldname in d to newname in nd, replacing a file there.
func (d *Dir) Rename(oldname string, nd *Dir, newname string) error {
	if err := checkNames(oldname, newname); err != nil {
		return &fs.PathError{Op: "rename", Path: d.Join(oldname), Err: err}
	}
	stepAt("rename", nd, newname)
	if err := unix.Renameat(d.fd, oldname, nd.fd, newname); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(oldname), New: nd.Join(newname), Err: err}
	}
	stepAt("renamed", nd, newname)
	return nil
}

// RenameNoReplace renames oldname in d to newname in nd, failing with an
// error wrapping fs.ErrExist if newname exists.
func (d *Dir) RenameNoReplace(oldname string, nd *Dir, newname string) error {
	if err := checkNames(oldname, newname); err != nil {
		return &fs.PathError{Op: "rename", Path: d.Join(oldname), Err: err}
	}
	stepAt("rename", nd, newname)
	if err := renameNoReplace(d.fd, oldname, nd.fd, newname); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(oldname), New: nd.Join(newname), Err: err}
	}
	stepAt("renamed", nd, newname)
	return nil
}

// Exchange swaps oldname in d and newname in nd atomically
// (RENAME_EXCHANGE); both must exist.
func (d *Dir) Exchange(oldname string, nd *Dir, newname string) error {
	if err := checkNames(oldname, newname); err != nil {
		return &fs.PathError{Op: "rename", Path: d.Join(oldname), Err: err}
	}
	stepAt("rename", nd, newname)
	if err := unix.Renameat2(d.fd, oldname, nd.fd, newname, unix.RENAME_EXCHANGE); err != nil {
		return &os.LinkError{Op: "exchange", Old: d.Join(oldname), New: nd.Join(newname), Err: err}
	}
	stepAt("renamed", nd, newname)
	return nil
}

func checkNames(names ...string) error {
	for _, n := range names {
		if err := checkName(n); err != nil {
			return err
		}
	}
	return nil
}

// Remove removes the file, symlink or empty directory name in d (a
// symlink itself, never what it points to).
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	err := unix.Unlinkat(d.fd, name, 0)
	if err == unix.EISDIR || err == unix.EPERM {
		err = unix.Unlinkat(d.fd, name, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	return nil
}

// RemoveAll removes name in d and everything below it, never following a
// symlink. A missing name is not an error.
func (d *Dir) RemoveAll(name string) error {
	if err := checkName(name); err != nil {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	err := d.Remove(name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	sub, oerr := d.OpenDir(name)
	if oerr != nil {
		return err
	}
	ents, rerr := sub.ReadDir()
	for _, e := range ents {
		if err := sub.RemoveAll(e.Name()); err != nil {
			sub.Close()
			return err
		}
	}
	sub.Close()
	if rerr != nil {
		return rerr
	}
	return d.Remove(name)
}

// ReadDir lists the directory.
func (d *Dir) ReadDir() ([]fs.DirEntry, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.ReadDir(-1)
}

// Lstat returns the attributes of name in d, not following a symlink.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := checkName(name); err != nil {
		return st, &fs.PathError{Op: "lstat", Path: d.Join(name), Err: err}
	}
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &fs.PathError{Op: "lstat", Path: d.Join(name), Err: err}
	}
	return st, nil
}

// SetMtime sets the access and modification times of name in d to t,
// not following a symlink.
func (d *Dir) SetMtime(name string, t time.Time) error {
	if err := checkName(name); err != nil {
		return &fs.PathError{Op: "utimes", Path: d.Join(name), Err: err}
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNanoAt(d.fd, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: d.Join(name), Err: err}
	}
	return nil
}

// Fd returns the directory's descriptor, for *at system calls.
func (d *Dir) Fd() int { return d.fd }

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// FdReader reads a bare descriptor (from OpenFd) at offsets.
type FdReader int

// Size is the file's size (fstat).
func (fd FdReader) Size() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(fd), &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// ReadAt reads len(b) bytes at off, as io.ReaderAt does.
func (fd FdReader) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(int(fd), b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}
