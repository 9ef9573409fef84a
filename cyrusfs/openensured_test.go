package cyrusfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sameInode reports whether the descriptor fd and the path (not
// followed) name one file.
func sameInode(t *testing.T, fd int, path string) bool {
	t.Helper()
	var fst, pst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(path, &pst); err != nil {
		t.Fatal(err)
	}
	return fst.Dev == pst.Dev && fst.Ino == pst.Ino
}

// TestOpenEnsured: a missing file (and its missing directory) is made
// empty, owned as asked (the directory's owner for Inherit) and mode
// 0600 before it has its name, and handed back on the descriptor it was
// made with, which names the file now at the path and is open for
// writing; an existing file is opened as it is; a symlink at the path
// is refused and not followed, anything but a regular file refused. The
// same with temporary names, as on a file system without O_TMPFILE.
func TestOpenEnsured(t *testing.T) {
	for _, named := range []bool{false, true} {
		if named {
			defer ForceNamedTemp()()
		}
		root, outside := plant(t)
		tr := NewTree(root)
		o := Owner{UID: -1, GID: -1}
		if os.Geteuid() == 0 {
			o = Inherit
			if err := os.Chown(root, kid.UID, kid.GID); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(root, "q", "name.lock")
		fd, err := tr.OpenEnsured(path, o, os.O_RDWR)
		if err != nil {
			t.Fatalf("named %v: missing file: %v", named, err)
		}
		if !sameInode(t, fd, path) {
			t.Errorf("named %v: the descriptor returned is not the file at the path", named)
		}
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_ACCMODE != unix.O_RDWR {
			t.Errorf("named %v: made file open with flags %#x (%v), want O_RDWR", named, fl, err)
		}
		unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != 0o600 || st.Size != 0 {
			t.Errorf("named %v: made file mode %o size %d, want a regular empty file 0600", named, st.Mode, st.Size)
		}
		if os.Geteuid() == 0 && (int(st.Uid) != kid.UID || int(st.Gid) != kid.GID) {
			t.Errorf("named %v: made file owned by %d:%d, want the directory's %d:%d", named, st.Uid, st.Gid, kid.UID, kid.GID)
		}
		ents, _ := os.ReadDir(filepath.Dir(path))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				t.Errorf("named %v: temporary name left: %s", named, e.Name())
			}
		}

		// Existing: opened, left as it is.
		if err := os.WriteFile(path, []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		fd, err = tr.OpenEnsured(path, o, os.O_RDONLY)
		if err != nil {
			t.Fatalf("named %v: existing file: %v", named, err)
		}
		if !sameInode(t, fd, path) {
			t.Errorf("named %v: existing file: another file opened", named)
		}
		unix.Close(fd)
		if b, _ := os.ReadFile(path); string(b) != "kept" {
			t.Errorf("named %v: existing file changed to %q", named, b)
		}

		// A symlink at the path, to a file outside and to nothing.
		for _, target := range []string{filepath.Join(outside, "victim"), filepath.Join(outside, "new")} {
			p := filepath.Join(root, "q", "planted.lock")
			os.Remove(p)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			if fd, err := tr.OpenEnsured(p, o, os.O_RDWR); !errors.Is(err, ErrSymlink) {
				if err == nil {
					unix.Close(fd)
				}
				t.Errorf("named %v: symlink to %s at the path: %v, want ErrSymlink", named, target, err)
			}
		}
		checkOutside(t, outside)

		// A directory at the path.
		p := filepath.Join(root, "q", "dir.lock")
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		// Refused by the open itself (EISDIR) for writing, by the
		// check of what was opened for reading.
		for _, flag := range []int{os.O_RDWR, os.O_RDONLY} {
			if fd, err := tr.OpenEnsured(p, o, flag); !errors.Is(err, ErrNotRegular) && !errors.Is(err, unix.EISDIR) {
				if err == nil {
					unix.Close(fd)
				}
				t.Errorf("named %v: directory at the path, flag %#x: %v, want ErrNotRegular or EISDIR", named, flag, err)
			}
		}
	}
}

// TestOpenMadeTaken: when the name is taken between the failed open and
// the link (a Cyrus process creating the lock file with O_CREAT), the
// file made is dropped and the one there opened: a regular file, and
// never a symlink.
func TestOpenMadeTaken(t *testing.T) {
	for _, named := range []bool{false, true} {
		if named {
			defer ForceNamedTemp()()
		}
		root, outside := plant(t)
		d, err := NewTree(root).OpenDir(root)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		o := Owner{UID: -1, GID: -1}
		if err := os.WriteFile(filepath.Join(root, "cyrus.lock"), nil, 0o666); err != nil {
			t.Fatal(err)
		}
		fd, err := d.openMade("cyrus.lock", o, os.O_RDWR)
		if err != nil {
			t.Fatalf("named %v: %v", named, err)
		}
		if !sameInode(t, fd, filepath.Join(root, "cyrus.lock")) {
			t.Errorf("named %v: the file made meanwhile was not the one opened", named)
		}
		unix.Close(fd)
		if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "planted.lock")); err != nil {
			t.Fatal(err)
		}
		if fd, err := d.openMade("planted.lock", o, os.O_RDWR); !errors.Is(err, ErrSymlink) {
			if err == nil {
				unix.Close(fd)
			}
			t.Errorf("named %v: symlink planted meanwhile: %v, want ErrSymlink", named, err)
		}
		checkOutside(t, outside)
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				t.Errorf("named %v: temporary name left: %s", named, e.Name())
			}
		}
	}
}
