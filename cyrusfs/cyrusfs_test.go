package cyrusfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// plant makes a tree root and, beside it, an outside directory holding a
// file, and returns both.
func plant(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func checkOutside(t *testing.T, outside string) {
	t.Helper()
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "victim" {
		t.Errorf("outside directory changed: %v", ents)
	}
	b, err := os.ReadFile(filepath.Join(outside, "victim"))
	if err != nil || string(b) != "precious" {
		t.Errorf("victim changed: %q %v", b, err)
	}
}

func TestSymlinkedDirectoryRefused(t *testing.T) {
	root, outside := plant(t)
	if err := os.Symlink(outside, filepath.Join(root, "user")); err != nil {
		t.Fatal(err)
	}
	tr := NewTree(root)
	o := Owner{UID: -1, GID: -1}
	if _, err := tr.MkdirAll(filepath.Join(root, "user", "a", "b"), o); !errors.Is(err, ErrSymlink) {
		t.Errorf("MkdirAll through a symlink: %v", err)
	}
	if err := tr.Ensure(filepath.Join(root, "user", "x.seen"), o); !errors.Is(err, ErrSymlink) {
		t.Errorf("Ensure through a symlink: %v", err)
	}
	if _, err := tr.Create(filepath.Join(root, "user", "new"), o, 0o600); !errors.Is(err, ErrSymlink) {
		t.Errorf("Create through a symlink: %v", err)
	}
	err := tr.Replace(filepath.Join(root, "user", "victim"), o, 0o600, func(f *os.File) error {
		_, err := f.WriteString("x")
		return err
	})
	if !errors.Is(err, ErrSymlink) {
		t.Errorf("Replace through a symlink: %v", err)
	}
	if _, err := tr.Open(filepath.Join(root, "user", "victim"), os.O_RDWR); !errors.Is(err, ErrSymlink) {
		t.Errorf("Open through a symlink: %v", err)
	}
	checkOutside(t, outside)
}

func TestPlantedFileSymlinks(t *testing.T) {
	root, outside := plant(t)
	victim := filepath.Join(outside, "victim")
	for _, n := range []string{"db", "db.NEW", "lock"} {
		if err := os.Symlink(victim, filepath.Join(root, n)); err != nil {
			t.Fatal(err)
		}
	}
	tr := NewTree(root)
	o := Owner{UID: -1, GID: -1}
	// A planted <name>.NEW is a leftover: removed, not followed.
	err := tr.Replace(filepath.Join(root, "db"), o, 0o600, func(f *os.File) error {
		_, err := f.WriteString("new content")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "db")); err != nil || string(b) != "new content" {
		t.Errorf("db: %q %v", b, err)
	}
	if err := tr.Ensure(filepath.Join(root, "lock"), o); !errors.Is(err, ErrSymlink) {
		t.Errorf("Ensure of a symlink: %v", err)
	}
	if _, err := tr.Open(filepath.Join(root, "lock"), os.O_RDWR); !errors.Is(err, ErrSymlink) {
		t.Errorf("Open of a symlink: %v", err)
	}
	if _, err := tr.Create(filepath.Join(root, "lock"), o, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over a symlink: %v", err)
	}
	checkOutside(t, outside)
}

func TestOutsideRefused(t *testing.T) {
	root, outside := plant(t)
	tr := NewTree(root)
	o := Owner{UID: -1, GID: -1}
	for _, p := range []string{
		filepath.Join(outside, "x"),
		root + "/../outside/x",
		root + "/a/../../outside/x",
		root + "x/y",
	} {
		if _, err := tr.Create(p, o, 0o600); !errors.Is(err, ErrOutside) {
			t.Errorf("Create(%s): %v", p, err)
		}
		if err := tr.Ensure(p, o); !errors.Is(err, ErrOutside) {
			t.Errorf("Ensure(%s): %v", p, err)
		}
	}
	checkOutside(t, outside)
}

func TestOwnerAndMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	root, _ := plant(t)
	tr := NewTree(root)
	o := Owner{UID: 65534, GID: 65534}
	d, err := tr.MkdirAll(filepath.Join(root, "a", "b"), o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := d.Create("file", o, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := tr.Replace(filepath.Join(root, "a", "b", "file"), o, 0o600, func(*os.File) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(root, 123, 456); err != nil {
		t.Fatal(err)
	}
	if err := tr.Ensure(filepath.Join(root, "inherited"), Inherit); err != nil {
		t.Fatal(err)
	}
	want := map[string][3]uint32{
		"a": {65534, 65534, 0o700}, "a/b": {65534, 65534, 0o700},
		"a/b/file": {65534, 65534, 0o600}, "inherited": {123, 456, 0o600},
	}
	for p, w := range want {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
			t.Fatal(err)
		}
		if got := [3]uint32{st.Uid, st.Gid, st.Mode & 0o7777}; got != w {
			t.Errorf("%s: owner, group, mode %o, want %o", p, got, w)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(root, "a", "b"))
	if len(ents) != 1 {
		t.Errorf("leftovers: %v", ents)
	}
}

// TestLinkOrCopyEMLINK fills a file's link count to the file system's
// limit (65000 on ext4) and checks that one more link becomes a copy.
func TestLinkOrCopyEMLINK(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 65000 links")
	}
	root, _ := plant(t)
	tr := NewTree(root)
	o := Owner{UID: -1, GID: -1}
	d, err := tr.MkdirAll(filepath.Join(root, "d"), o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := d.Create("src", o, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("message")
	f.Close()
	copies := 0
	for i := range 70000 {
		copied, err := d.LinkOrCopy("src", d, strconv.Itoa(i), o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if copied {
			copies++
			b, err := os.ReadFile(filepath.Join(root, "d", strconv.Itoa(i)))
			if err != nil || string(b) != "message" {
				t.Fatalf("copy %d: %q %v", i, b, err)
			}
			break
		}
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(root, "d", "src"), &st)
	if copies == 0 {
		t.Skipf("no link limit reached on this file system (nlink %d)", st.Nlink)
	}
}

// TestRootSymlinks: a configured root reached through a symlink is opened
// only if root owns the symlink; one the user Cyrus runs as could have
// planted (a lock directory in a directory that user owns) is refused.
func TestRootSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own symlinks as another user")
	}
	base, outside := plant(t)
	trusted := filepath.Join(filepath.Dir(base), "trusted")
	if err := os.Symlink(base, trusted); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(base, "lock")
	if err := os.Symlink(outside, planted); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(planted, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	o := Owner{UID: -1, GID: -1}
	if err := NewTree(trusted).Ensure(filepath.Join(trusted, "x"), o); err != nil {
		t.Errorf("root-owned symlink to a root: %v", err)
	}
	if err := NewTree(planted).Ensure(filepath.Join(planted, "x"), o); !errors.Is(err, ErrSymlink) {
		t.Errorf("planted symlink as a root: %v", err)
	}
	checkOutside(t, outside)
}

// TestPlantedFIFO: a FIFO planted where a file is opened for reading (a
// staged message the user Cyrus runs as swapped, say) does not block the
// open, and LinkOrCopy's copy refuses it.
func TestPlantedFIFO(t *testing.T) {
	root, _ := plant(t)
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewTree(root).OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	done := make(chan error, 1)
	go func() {
		f, err := d.Open("fifo", os.O_RDONLY)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("Dir.Open of a FIFO: %v, want ErrNotRegular", err)
		}
	case <-time.After(time.Minute):
		if f, err := os.OpenFile(filepath.Join(root, "fifo"), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("Dir.Open of a FIFO still blocked after a minute")
	}
	// A directory where a message or lock file is expected is refused as
	// well: reading it would copy nothing and call that a message.
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if f, err := d.Open("sub", os.O_RDONLY); !errors.Is(err, ErrNotRegular) {
		if f != nil {
			f.Close()
		}
		t.Errorf("Dir.Open of a directory: %v, want ErrNotRegular", err)
	}
}

// TestRootReplacedBySymlink: a root opened once (and so kept open by the
// root cache) that is then moved away and replaced by a symlink planted by
// another user is walked again and refused, not served from the cache;
// the cached descriptor serves only while the path names the same
// directory.
func TestRootReplacedBySymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own symlinks as another user")
	}
	base, outside := plant(t)
	root := filepath.Join(base, "lock")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	o := Owner{UID: -1, GID: -1}
	tree := NewTree(root)
	for i := 0; i < 2; i++ { // the second from the cache
		if err := tree.Ensure(filepath.Join(root, "x"+strconv.Itoa(i)), o); err != nil {
			t.Fatalf("root %d: %v", i, err)
		}
	}
	if err := os.Rename(root, filepath.Join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, root); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(root, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := tree.Ensure(filepath.Join(root, "y"), o); !errors.Is(err, ErrSymlink) {
		t.Errorf("root replaced by a planted symlink after it was cached: %v", err)
	}
	checkOutside(t, outside)
	// A root deleted and made again is the new directory.
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tree.Ensure(filepath.Join(root, "z"), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "z")); err != nil {
		t.Errorf("file in the new root: %v", err)
	}
}

// Open and OpenDir of a root walked before take one openat2 from the
// root's kept descriptor: a symlink planted for a directory on the way or
// for the file itself, a FIFO in the file's place and a ".." are refused
// the same as on the way through the parent directory.
func TestCachedRootRefuses(t *testing.T) {
	root, outside := plant(t)
	tr := NewTree(root)
	if err := os.MkdirAll(filepath.Join(root, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "e", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := tr.Open(filepath.Join(root, "d", "e", "f"), os.O_RDONLY) // walks and keeps the root
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !tr.cached(filepath.Join(root, "d"), func(int, string) {}) {
		t.Fatal("root not kept after a first open")
	}
	if err := os.Symlink(outside, filepath.Join(root, "d", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "d", "e", "flink")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "d", "e", "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{filepath.Join(root, "d", "link", "victim"), ErrSymlink},
		{filepath.Join(root, "d", "e", "flink"), ErrSymlink},
		{filepath.Join(root, "d", "e", "fifo"), ErrNotRegular},
		{filepath.Join(root, "d", "..", "..", "outside", "victim"), ErrOutside},
	} {
		if f, err := tr.Open(tc.path, os.O_RDONLY); !errors.Is(err, tc.want) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open %s: %v, want %v", tc.path, err, tc.want)
		}
	}
	if d, err := tr.OpenDir(filepath.Join(root, "d", "link")); !errors.Is(err, ErrSymlink) {
		d.Close()
		t.Errorf("OpenDir through a symlink: %v", err)
	}
	checkOutside(t, outside)
}

// TestCachedAllocs checks that resolving a path beneath a cached root
// allocates only for the stat of the root (its NUL-ended path and result):
// cached runs for every lock file, mailbox directory and database a dump
// opens, and splitting the path to look for ".." cost a slice, and the
// call into the root cache a closure, each time (3 allocations per call
// before, 2 after). A ".." anywhere still refuses the cached way.
func TestCachedAllocs(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	tr := NewTree(root)
	if d, err := tr.OpenDir(filepath.Join(root, "a")); err != nil { // caches the root
		t.Fatal(err)
	} else {
		d.Close()
	}
	path := filepath.Join(root, "a", "b")
	n := testing.AllocsPerRun(100, func() {
		if !tr.cached(path, func(int, string) {}) {
			t.Fatal("root not cached")
		}
	})
	if n > 2 {
		t.Errorf("cached allocates %.0f times per call; want at most 2", n)
	}
	for _, p := range []string{root + "/a/../a/b", root + "/..", root + "/a/..", "../" + root} {
		if tr.cached(p, func(int, string) {}) {
			t.Errorf("cached took %s, which has a .. component", p)
		}
	}
	if !hasDotDot("..") || hasDotDot("a/..b/c") || hasDotDot("...") || !hasDotDot("x/../y") {
		t.Error("hasDotDot is wrong")
	}
}

// TestPinnedRefusesSymlinks checks that opening from pinned roots keeps
// Tree.OpenFd's rules: no symlinked directory or file is followed, and no
// path leaves its root.
func TestPinnedRefusesSymlinks(t *testing.T) {
	root, outside := plant(t)
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "f"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "user")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "d", "link")); err != nil {
		t.Fatal(err)
	}
	p := NewTree(root).Pin()
	defer p.Close()
	fd, err := p.OpenFd(filepath.Join(root, "d", "f"), os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	for _, path := range []string{filepath.Join(root, "user", "victim"), filepath.Join(root, "d", "link")} {
		if fd, err := p.OpenFd(path, os.O_RDONLY); !errors.Is(err, ErrSymlink) {
			unix.Close(fd)
			t.Errorf("%s: %v, want ErrSymlink", path, err)
		}
	}
	if fd, err := p.OpenFd(root+"/d/../../outside/victim", os.O_RDONLY); !errors.Is(err, ErrOutside) {
		unix.Close(fd)
		t.Errorf("path climbing out: %v, want ErrOutside", err)
	}
	if fd, err := p.OpenFd(filepath.Join(outside, "victim"), os.O_RDONLY); !errors.Is(err, ErrOutside) {
		unix.Close(fd)
		t.Errorf("path outside the roots: %v, want ErrOutside", err)
	}
	checkOutside(t, outside)
}

// MkdirAll fsyncs the parent of each directory it creates, and only
// those: a new directory's name must be durable before what is put in it
// is (a new user's seen db, fsynced with its own directory), and one that
// exists costs no fsync.
func TestMkdirAllSyncsParents(t *testing.T) {
	root := t.TempDir()
	tr := NewTree(root)
	var synced []string
	onSync = func(path string) { synced = append(synced, path) }
	defer func() { onSync = nil }()
	mkdir := func(rel string, want ...string) {
		t.Helper()
		synced = nil
		d, err := tr.MkdirAll(filepath.Join(root, rel), Inherit)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		for i := range want {
			want[i] = filepath.Join(root, want[i])
		}
		if !slices.Equal(synced, want) {
			t.Errorf("MkdirAll(%s) fsynced %q, want %q", rel, synced, want)
		}
	}
	mkdir("a/b/c", "", "a", "a/b")
	mkdir("a/b/c")
	mkdir("a/b/d", "a/b")
	mkdir("a/e/f/g", "a", "a/e", "a/e/f")

	// MkdirAllUnsynced makes the same directories, with the same owner
	// and mode, and fsyncs none.
	synced = nil
	d, err := tr.MkdirAllUnsynced(filepath.Join(root, "h/i/j"), Inherit)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if len(synced) != 0 {
		t.Errorf("MkdirAllUnsynced fsynced %q", synced)
	}
	for _, rel := range []string{"h", "h/i", "h/i/j"} {
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("MkdirAllUnsynced made %s: %v, %v", rel, fi, err)
		}
	}
}

// TestClean checks that Clean returns what filepath.Clean does, for
// clean paths (returned as they are) and unclean ones alike.
func TestClean(t *testing.T) {
	for _, p := range []string{"", "/", "//", "/a", "/a/", "/a//b", "/a/./b", "/a/../b", "/a/b/..", "/a/b/.",
		"/var/spool/cyrus/uuid/8/8/88g5e47j64hbelofehlopa1u", "/a/.b/..c/b..", "a/b", ".", "..", "./a", "/..", "/.",
		"/a/b/c/", "///a"} {
		if got, want := Clean(p), filepath.Clean(p); got != want {
			t.Errorf("Clean(%q) = %q, want %q", p, got, want)
		}
	}
	if !isClean("/var/spool/cyrus/uuid/8/8/x/cyrus.index") || isClean("/var//spool") || isClean("/var/spool/") {
		t.Error("isClean is wrong about a path")
	}
}

// TestCheckedView checks a view of Tree.Checked: it opens beneath its
// roots with a Tree's rules (no symlink followed, nothing outside) but
// without a stat of the root per file (resolving allocates nothing, where
// the stat's path and result cost two allocations); a root replaced after
// the view was made is not noticed by it (it goes on in the directory the
// root was, and follows no symlink planted in the root's place), while a
// view made after the replacement checks the root per file again.
func TestCheckedView(t *testing.T) {
	base, outside := plant(t)
	root := filepath.Join(base, "lock")
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "f"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	tr := NewTree(root)
	if _, ok := tr.Checked().checked.id(root); ok {
		t.Fatal("a root not walked yet was taken as checked")
	}
	if d, err := tr.OpenDir(filepath.Join(root, "d")); err != nil { // caches the root
		t.Fatal(err)
	} else {
		d.Close()
	}
	v := tr.Checked()
	if _, ok := v.checked.id(root); !ok {
		t.Fatal("view does not take the root walked as checked")
	}
	path := filepath.Join(root, "d", "f")
	if n := testing.AllocsPerRun(100, func() {
		if !v.cached(path, func(int, string) {}) {
			t.Fatal("root not cached")
		}
	}); n != 0 {
		t.Errorf("a checked view allocates %.0f times per file (a stat of the root?), want 0", n)
	}
	read := func(tr *Tree) (string, error) {
		f, err := tr.Open(path, os.O_RDONLY)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b := make([]byte, 8)
		n, _ := f.Read(b)
		return string(b[:n]), nil
	}
	if s, err := read(v); err != nil || s != "old" {
		t.Fatalf("view reads %q, %v", s, err)
	}
	if f, err := v.Open(filepath.Join(root, "link", "victim"), os.O_RDONLY); !errors.Is(err, ErrSymlink) {
		if f != nil {
			f.Close()
		}
		t.Errorf("view through a symlink: %v, want ErrSymlink", err)
	}
	// The root replaced: moved away, and a symlink to outside in its
	// place (owned by another user when running as root).
	if err := os.Rename(root, filepath.Join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, root); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(root, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "d"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := read(v); err != nil || s != "old" {
		t.Errorf("view made before the root was replaced reads %q, %v; want the old directory's", s, err)
	}
	if s, err := read(tr.Checked()); err == nil {
		t.Errorf("view made after the root was replaced reads %q through the symlink planted", s)
	}
	if s, err := read(tr); err == nil {
		t.Errorf("tree reads %q through the symlink planted", s)
	}
	checkOutside2(t, outside)
}

// checkOutside2 is checkOutside for an outside directory given a plain
// file "d" as a decoy by the test.
func checkOutside2(t *testing.T, outside string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(outside, "victim"))
	if err != nil || string(b) != "precious" {
		t.Errorf("outside victim: %q, %v", b, err)
	}
}
