package partition

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/lock"
)

// TestLockFileMade: a name lock whose file (and hashed directory) is
// missing makes it, owned like the lock directory and mode 0600, and
// locks the file now at its path on the descriptor it was made with:
// another open of the path cannot take the lock while it is held, and
// can once it is released; the next take opens the same file. A
// symlink planted at a lock file's path is refused and not followed,
// and a directory there is refused.
func TestLockFileMade(t *testing.T) {
	s, _ := openFixture(t)
	ctx := context.Background()
	_, uid, gid := lockRoot(t, s)
	e := Entry{Name: "user.alice.made", UniqueID: "q0ni1c6z8yk9p5v3h2w7m4r1", Type: "e"}
	path := s.Config.lockPath(nameLockName(e))
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lock file %s before the test: %v", path, err)
	}
	l, err := s.LockMailboxName(ctx, e, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || fi.Size() != 0 {
		t.Errorf("lock file made as %v, %d bytes; want an empty regular file 0600", fi.Mode(), fi.Size())
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("lock file owned by %d:%d, want the lock directory's %d:%d", st.Uid, st.Gid, uid, gid)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lock.TryShared(f); !errors.Is(err, lock.ErrWouldBlock) {
		t.Errorf("the lock taken is not on the file at its path: another open takes it shared (%v)", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := lock.TryExclusive(f); err != nil {
		t.Errorf("lock still held after Release: %v", err)
	}
	lock.Unlock(f)
	l, err = s.LockMailboxName(ctx, e, false)
	if err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Lstat(path); err != nil || !os.SameFile(fi, fi2) {
		t.Errorf("the lock file was made again (%v)", err)
	}
	l.Release()

	// A symlink planted where a lock file is missing, pointing to a file
	// outside and to nothing; a directory there.
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, target := range []string{outside, outside + ".new"} {
		e := Entry{Name: "user.alice.planted", UniqueID: []string{"a1b2c3d4e5f6g7h8i9j0k1l2", "b1b2c3d4e5f6g7h8i9j0k1l2"}[i], Type: "e"}
		p := s.Config.lockPath(nameLockName(e))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if l, err := s.LockMailboxName(ctx, e, true); !errors.Is(err, cyrusfs.ErrSymlink) {
			l.Release()
			t.Errorf("symlink to %s at the lock file's path: %v, want ErrSymlink", target, err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "precious" {
		t.Errorf("file outside changed: %q %v", b, err)
	}
	if _, err := os.Lstat(outside + ".new"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was made through the dangling symlink: %v", err)
	}
	e = Entry{Name: "user.alice.dir", UniqueID: "c1b2c3d4e5f6g7h8i9j0k1l2", Type: "e"}
	p := s.Config.lockPath(nameLockName(e))
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if l, err := s.LockMailboxName(ctx, e, true); !errors.Is(err, cyrusfs.ErrNotRegular) && !errors.Is(err, syscall.EISDIR) {
		l.Release()
		t.Errorf("directory at the lock file's path: %v, want it refused", err)
	}
}

// TestLockFilesViews: LockFiles makes each lock file missing, owned like
// the lock directory and mode 0600, and checks the lock directory's path
// once a view of lockFilesView files: a lock directory replaced meanwhile
// gets the files of the rest of that view in the hashed directories the
// view opened in the directory it was (never through a symlink), and
// every file after it in the one now at its path. A file there already
// is left as it is.
func TestLockFilesViews(t *testing.T) {
	s, _ := openFixture(t)
	root, uid, gid := lockRoot(t, s)
	m := s.LockFiles()
	defer m.Close()
	// Uniqueids of one hashed directory (views...), whose directory is
	// opened before the lock directory moves.
	entry := func(i int) Entry {
		return Entry{Name: "user.alice.f" + strconv.Itoa(i), UniqueID: fmt.Sprintf("views%019d", i), Type: "e"}
	}
	const before, total = 10, lockFilesView + 100
	for i := range before {
		if err := m.NameLock(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.NamespaceLock("alice"); err != nil {
		t.Fatal(err)
	}
	moved := root + ".old"
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(root, uid, gid); err != nil {
		t.Fatal(err)
	}
	for i := before; i < total; i++ {
		if err := m.NameLock(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The view in use when the directory moved served lockFilesView
	// files in all: the namespace lock's and the first ones.
	renewed := lockFilesView - 1
	for i := range total {
		rel, err := filepath.Rel(root, s.Config.lockPath(nameLockName(entry(i))))
		if err != nil {
			t.Fatal(err)
		}
		inOld := exists(filepath.Join(moved, rel))
		inNew := exists(filepath.Join(root, rel))
		if i == 0 || i == total-1 {
			fi, err := os.Lstat(filepath.Join(map[bool]string{true: moved, false: root}[inOld], rel))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != 0o600 || int(st.Uid) != uid || int(st.Gid) != gid {
				t.Errorf("lock file %d: mode %v owner %d:%d, want 0600 %d:%d", i, fi.Mode(), st.Uid, st.Gid, uid, gid)
			}
		}
		if want := i < renewed; inOld != want || inNew == want {
			t.Fatalf("lock file %d: in the moved directory %v, in the new one %v; want it in the %s one", i, inOld, inNew, map[bool]string{true: "moved", false: "new"}[want])
		}
	}
	// Made again: the files there are kept, whatever they hold.
	p := s.Config.lockPath(nameLockName(entry(total - 1)))
	if err := os.WriteFile(p, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	ns := s.Config.lockPath(namespaceLockName("alice"))
	if err := os.MkdirAll(filepath.Dir(ns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ns, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.NameLock(entry(total - 1)); err != nil {
		t.Fatal(err)
	}
	if err := m.NamespaceLock("alice"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, ns} {
		if b, err := os.ReadFile(f); err != nil || string(b) != "kept" {
			t.Errorf("%s made again: %q, %v", f, b, err)
		}
	}
	// A symlink planted at a lock file's path is not followed.
	target := filepath.Join(t.TempDir(), "target")
	sym := s.Config.lockPath(nameLockName(entry(total)))
	if err := os.MkdirAll(filepath.Dir(sym), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, sym); err != nil {
		t.Fatal(err)
	}
	m.NameLock(entry(total))
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was made through the symlink at %s (%v)", sym, err)
	}
}

// TestLockFilesDirsKept: within a view, each hashed lock directory is
// opened once and kept: a hashed directory moved away after its first
// lock file gets the view's next files of it, as the descriptor kept
// says, rather than a new directory made at its path; a view keeps at
// most lockViewDirs directories, and a new view opens them again.
func TestLockFilesDirsKept(t *testing.T) {
	s, _ := openFixture(t)
	root := s.Config.LockPath
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	m := s.LockFiles()
	defer m.Close()
	e := func(id string) Entry { return Entry{Name: "user.bob." + id, UniqueID: id, Type: "e"} }
	first := s.Config.lockPath(nameLockName(e("k0000000000000000000000a")))
	if err := m.NameLock(e("k0000000000000000000000a")); err != nil {
		t.Fatal(err)
	}
	hashed := filepath.Dir(first)
	if err := os.Rename(hashed, hashed+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := m.NameLock(e("k0000000000000000000000b")); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(hashed+".moved", filepath.Base(s.Config.lockPath(nameLockName(e("k0000000000000000000000b")))))
	if !exists(second) {
		t.Fatalf("the view's second file of %s is not in the directory it opened first", hashed)
	}
	if _, err := os.Lstat(hashed); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s made again within the view (%v)", hashed, err)
	}
	// Many lock directories (a name without a uniqueid hashes by name,
	// each domain's beneath its own): the view is renewed rather than
	// keeping more than lockViewDirs open.
	for i := range 3 * lockViewDirs {
		if err := m.NameLock(Entry{Name: fmt.Sprintf("dom%d.example!user.bob", i), Type: "e"}); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		n := len(m.cur.dirs)
		m.mu.Unlock()
		if n > lockViewDirs {
			t.Fatalf("a view keeps %d directories open, more than %d", n, lockViewDirs)
		}
	}
}

// lockRoot makes s's lock directory and, running as root, gives it to
// another user, as the lock directory belongs to the user Cyrus runs as;
// it returns the directory and its owner.
func lockRoot(t *testing.T, s *Spool) (root string, uid, gid int) {
	t.Helper()
	root = s.Config.LockPath
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid = os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = 65534, 65534
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return root, uid, gid
}

func exists(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}
