package cyrusfs

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/mbtool/mbtool/lock"
)

// Errors, for errors.Is.
var (
	// ErrOutside: the path is not beneath any root of the tree, or climbs
	// out of it with "..".
	ErrOutside = errors.New("not beneath a Cyrus directory")
	// ErrNotRegular: a file to be read or copied is a FIFO, device,
	// socket or directory, which nothing under a Cyrus directory should
	// be; it is not read.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSymlink: a component of the path is a symlink (or not a
	// directory where one is needed); it is not followed.
	ErrSymlink = errors.New("symlink in path, not followed")
)

// Owner is the user and group a created file or directory gets. A negative
// UID leaves it to the user running mbtool; Inherit gives it the owner of
// the directory it is created in.
type Owner struct {
	UID, GID int
}

// Inherit is the Owner that copies the owner of the directory a file or
// directory is created in (when running as root).
var Inherit = Owner{UID: inheritUID, GID: inheritUID}

const inheritUID = -2

// Tree is a set of root directories: partitions, the configuration
// directory, the lock directory. Every path given to its methods must lie
// beneath one of them; the longest root that is a prefix of it is the one
// it is resolved from.
type Tree struct {
	roots []string
	// checked are the roots a view made by Checked found still naming
	// the directories cached, for files opened through the view; nil in
	// a Tree of NewTree, which checks a root at every file.
	checked *checkedRoots
}

// checkedRoots are the roots of a view (Tree.Checked) checked so far:
// each at the first file opened beneath it through the view.
type checkedRoots struct {
	mu  sync.Mutex
	ids map[string]rootID // device and inode of the directory cached
}

// id returns the identity of root as the view checked it, checking it
// now (a stat of its path) at the first call for root; ok is false when
// root is not cached or does not name the directory cached, and the
// caller then checks it per file as a Tree does (which caches it).
func (c *checkedRoots) id(root string) (rootID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.ids[root]; ok {
		return id, true
	}
	id, ok := roots.current(root)
	if ok {
		c.ids[root] = id
	}
	return id, ok
}

// rootID is a directory's device and inode.
type rootID struct{ dev, ino uint64 }

// NewTree returns the tree of the given root directories. Empty roots are
// ignored.
func NewTree(roots ...string) *Tree {
	t := &Tree{}
	seen := map[string]bool{}
	for _, r := range roots {
		if r == "" {
			continue
		}
		r = Clean(r)
		if !seen[r] {
			seen[r] = true
			t.roots = append(t.roots, r)
		}
	}
	sort.Slice(t.roots, func(i, j int) bool { return len(t.roots[i]) > len(t.roots[j]) })
	return t
}

// Checked returns a view of t whose roots are checked once rather than
// at every file opened beneath them: at the first file beneath a root,
// the root's path is checked (a stat) to name the directory cached (see
// rootCache), and from then on the view resolves paths beneath it from
// the cached descriptor without the stat a Tree makes per file (the rest
// of the rules stand: no symlink followed beneath the root, nothing
// outside it). A root not cached yet, or replaced since it was cached
// (by this view's or any other tree's walk), is checked per file as
// before until it is cached. What the view does not notice is a root
// replaced after it checked it: it goes on resolving in the directory the
// root was then, so a view serves a short run of opens (one owner's
// mailboxes) and is then replaced by a new one. Only the roots a view is
// used beneath are checked (one or two partitions of many, say). It is
// safe for concurrent use and holds no descriptor of its own.
func (t *Tree) Checked() *Tree {
	return &Tree{roots: t.roots, checked: &checkedRoots{ids: make(map[string]rootID, 2)}}
}

// Roots returns the roots of the tree, longest first.
func (t *Tree) Roots() []string { return t.roots }

// openRootOf opens the longest root that path lies beneath and that
// exists (a lock directory inside the configuration directory, say, may
// not exist yet), and returns it with the rest of path, relative.
func (t *Tree) openRootOf(path string) (*Dir, string, error) {
	if hasDotDot(path) {
		return nil, "", &fs.PathError{Op: "resolve", Path: path, Err: ErrOutside}
	}
	p := Clean(path)
	var missing error
	for _, r := range t.roots {
		rel, ok := relTo(p, r)
		if !ok {
			continue
		}
		d, err := openRoot(r)
		if errors.Is(err, fs.ErrNotExist) {
			missing = err
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return d, rel, nil
	}
	if missing != nil {
		return nil, "", missing
	}
	return nil, "", &fs.PathError{Op: "resolve", Path: path, Err: ErrOutside}
}

// cached calls fn with the cached descriptor of the longest root of t
// that path lies beneath and the rest of path, relative, without the dup
// and close of openRootOf: the descriptor stays valid while fn runs. It
// reports false, without calling fn, when that root is not cached or no
// longer names the directory cached (the caller then takes openRootOf's
// way), or path has a ".." component.
func (t *Tree) cached(path string, fn func(rootfd int, rel string)) bool {
	if hasDotDot(path) {
		return false
	}
	r, rel, ok := t.rootOf(Clean(path))
	if !ok {
		return false
	}
	if t.checked != nil {
		if id, ok := t.checked.id(r); ok && roots.doChecked(r, id, rel, fn) {
			return true
		}
	}
	return roots.do(r, rel, fn)
}

// rootOf returns the longest root of t that the clean path p lies
// strictly beneath, and the rest of p, relative; ok is false when there
// is none, p is that root itself, or the root is not absolute.
func (t *Tree) rootOf(p string) (root, rel string, ok bool) {
	for _, r := range t.roots {
		rel, ok := relTo(p, r)
		if !ok {
			continue
		}
		if rel == "" || !filepath.IsAbs(r) {
			return "", "", false
		}
		return r, rel, true
	}
	return "", "", false
}

// relTo returns the clean path p relative to the root r, "" when p is r,
// and whether p is r or lies beneath it.
func relTo(p, r string) (string, bool) {
	switch {
	case p == r:
		return "", true
	case len(p) > len(r) && p[len(r)] == '/' && strings.HasPrefix(p, r):
		// Not HasPrefix(p, r+"/"): the concatenation allocated, once for
		// every file a dump opens.
		return p[len(r)+1:], true
	case r == "/" && strings.HasPrefix(p, "/"):
		return p[1:], true
	}
	return "", false
}

// Clean is filepath.Clean, with a quick look first: a path that is
// clean already (an absolute path without empty, "." or ".." components
// or a trailing slash, as mbtool builds them) is returned as it is.
// filepath.Clean copies its way through every byte, and a dump cleans
// the paths of several files and directories per mailbox.
func Clean(path string) string {
	if isClean(path) {
		return path
	}
	return filepath.Clean(path)
}

// isClean reports whether filepath.Clean would return the absolute
// path p unchanged; it may say false of a clean path.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if len(p) == 1 {
		return true
	}
	for i := 1; ; {
		j := strings.IndexByte(p[i:], '/')
		c := p[i:]
		if j >= 0 {
			c = p[i : i+j]
		}
		if c == "" || c == "." || c == ".." {
			return false
		}
		if j < 0 {
			return true
		}
		i += j + 1
	}
}

// hasDotDot reports whether path has a ".." component, without the
// slice strings.Split allocates: cached runs for every file a dump opens.
func hasDotDot(path string) bool {
	for path != "" {
		c := path
		if i := strings.IndexByte(path, '/'); i >= 0 {
			c, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		if c == ".." {
			return true
		}
	}
	return false
}

// OpenDir opens the existing directory at path.
func (t *Tree) OpenDir(path string) (*Dir, error) {
	var fd int
	var ferr error
	if t.cached(path, func(rootfd int, rel string) { fd, ferr = resolve(rootfd, rel) }) {
		if ferr != nil {
			return nil, pathErr("open", path, ferr)
		}
		return &Dir{fd: fd, path: Clean(path)}, nil
	}
	rd, rel, err := t.openRootOf(path)
	if err != nil {
		return nil, err
	}
	if rel == "" {
		return rd, nil
	}
	defer rd.Close()
	fd, err = resolve(rd.fd, rel)
	if err != nil {
		return nil, pathErr("open", path, err)
	}
	return &Dir{fd: fd, path: Clean(path)}, nil
}

// MkdirAll opens the directory at path, creating it and its missing
// parents beneath the root (mode 0700, owner o, each made as Dir.Mkdir
// does) first. The parent of each directory it creates is fsynced once
// the new one has its name, so that the new directory survives a crash
// with whatever its caller puts in it and fsyncs (a new user's seen db):
// an fsync of a file or of its directory does not make the directory's
// own name durable in its parent. Directories that exist cost nothing.
func (t *Tree) MkdirAll(path string, o Owner) (*Dir, error) {
	return t.mkdirAll(path, o, true)
}

// MkdirAllUnsynced is MkdirAll without the fsync of each new directory's
// parent: for a caller that flushes the whole file system (syncfs) after
// it, and before anything relies on the directories surviving a crash (a
// restore makes thousands of hashed parents, and flushes once for all of
// them: docs/restore.md, "Crash safety"). Until that flush a crash may
// lose any of the new directories, with whatever was put in them.
func (t *Tree) MkdirAllUnsynced(path string, o Owner) (*Dir, error) {
	return t.mkdirAll(path, o, false)
}

func (t *Tree) mkdirAll(path string, o Owner, sync bool) (*Dir, error) {
	// Most often every directory exists (a restore's hashed parents, made
	// by the first of thousands of mailboxes): one openat2 from the
	// cached root, as OpenDir, rather than one openat per component. On
	// any failure the walk below makes what is missing, or names the
	// component that is a symlink or not a directory.
	if d, err := t.OpenDir(path); err == nil {
		return d, nil
	}
	// Next most often only the last directory is missing (a new user's
	// directory under hashed parents made for earlier users): its
	// parent is opened as the directory was, not walked to.
	// A path that climbs (..) is left to the walk, which refuses it.
	if dir, name := filepath.Split(Clean(path)); !hasDotDot(path) && name != "" && name != "." && name != ".." {
		if pd, err := t.OpenDir(dir); err == nil {
			nd, err := makeDir(pd, name, o, sync)
			pd.Close()
			return nd, err
		}
	}
	d, rel, err := t.openRootOf(path)
	if err != nil {
		return nil, err
	}
	if rel == "" {
		return d, nil
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		nd, err := makeDir(d, c, o, sync)
		d.Close()
		if err != nil {
			return nil, err
		}
		d = nd
	}
	return d, nil
}

// makeDir opens the directory name in d, making it first if missing, as
// mkdirAll makes each of its directories.
func makeDir(d *Dir, name string, o Owner, sync bool) (*Dir, error) {
	// One goroutine of this process at a time makes a directory
	// (mkdirLock): two goroutines writing files into the same new
	// directory (two users' seen dbs under one hashed parent) make it
	// once, and the other opens it, never making it under a temporary
	// name only to find the name taken and remove its own; so the steps
	// of a run do not depend on which goroutine comes first.
	mu := mkdirLock(d.Join(name))
	mu.Lock()
	defer mu.Unlock()
	nd, err := d.OpenDir(name)
	if errors.Is(err, fs.ErrNotExist) {
		nd, err = d.Mkdir(name, o)
		if err == nil {
			d.sweep() // a killed run's temporary directory
			if sync {
				if err = d.Sync(); err != nil {
					nd.Close()
				}
			}
		}
		if errors.Is(err, fs.ErrExist) {
			nd, err = d.OpenDir(name)
		}
	}
	return nd, err
}

// mkdirLocks serialize, within the process, MkdirAll's making of one
// directory (by its path, hashed into a few locks): directories of
// different paths are mostly made at once.
var mkdirLocks [64]sync.Mutex

// mkdirSeed seeds mkdirLock's hash.
var mkdirSeed = maphash.MakeSeed()

// mkdirLock returns the lock of making the directory at path.
func mkdirLock(path string) *sync.Mutex {
	return &mkdirLocks[maphash.String(mkdirSeed, path)%uint64(len(mkdirLocks))]
}

// parent opens the directory holding path and returns it with the last
// component of path.
func (t *Tree) parent(path string) (*Dir, string, error) {
	dir, name := filepath.Split(Clean(path))
	if name == "" || name == ".." || name == "." {
		return nil, "", &fs.PathError{Op: "resolve", Path: path, Err: ErrOutside}
	}
	d, err := t.OpenDir(dir)
	if err != nil {
		return nil, "", err
	}
	return d, name, nil
}

// Create creates the file at path, which must not exist, with mode perm
// and owner o set before it gets its name, in an existing directory.
func (t *Tree) Create(path string, o Owner, perm os.FileMode) (*os.File, error) {
	d, name, err := t.parent(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Create(name, o, perm)
}

// Ensure creates an empty file at path (mode 0600, owner o), and its
// missing directories, unless something exists there already, so that
// Cyrus and mbtool lock the same inode. A symlink at path is an error.
func (t *Tree) Ensure(path string, o Owner) error {
	dir, name := filepath.Split(Clean(path))
	d, err := t.MkdirAll(dir, o)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Ensure(name, o)
}

// OpenEnsured opens the file at path with flag as OpenFd does (one
// openat2 when it exists) and, when nothing is there, makes it first,
// empty, as Ensure does (its missing directories too), and returns the
// descriptor it was made with (open O_RDWR, whatever flag says). A
// symlink there, or anything but a regular file, is an error. That is
// how a lock file is opened, which Cyrus creates when it is missing
// (docs/cyrus/locks.md §2); a missing one costs the failed open, the
// directory's, and the making (O_TMPFILE, fchown, fchmod, linkat), not
// a stat of the name before and an open of the new file after.
func (t *Tree) OpenEnsured(path string, o Owner, flag int) (int, error) {
	fd, err := t.OpenFd(path, flag)
	if !errors.Is(err, fs.ErrNotExist) {
		return fd, err
	}
	dir, name := filepath.Split(Clean(path))
	d, err := t.MkdirAll(dir, o)
	if err != nil {
		return -1, err
	}
	defer d.Close()
	return d.openMade(name, o, flag)
}

// Replace writes a new file with write and puts it in the place of path,
// as Dir.Replace does.
func (t *Tree) Replace(path string, o Owner, perm os.FileMode, write func(*os.File) error) error {
	d, name, err := t.parent(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Replace(name, o, perm, write)
}

// Open opens the existing file at path with flag (no O_CREAT), without
// following symlinks.
func (t *Tree) Open(path string, flag int) (*os.File, error) {
	fd, err := t.OpenFd(path, flag)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), Clean(path)), nil
}

// OpenFd is Open returning the bare descriptor (-1 on an error), as
// Dir.OpenFd.
func (t *Tree) OpenFd(path string, flag int) (int, error) {
	if fd, ok, err := t.openCached(path, flag); ok {
		return fd, err
	}
	d, name, err := t.parent(path)
	if err != nil {
		return -1, err
	}
	defer d.Close()
	return d.OpenFd(name, flag)
}

// OpenLocked opens the existing file at path with flag, without following
// symlinks, and takes its lock (exclusive or shared) with Cyrus's
// reopen-on-replace loop (lock.Reopen), waiting until ctx is done.
func (t *Tree) OpenLocked(ctx context.Context, path string, flag int, exclusive bool) (*os.File, error) {
	return lock.Reopen(ctx, path, func() (*os.File, error) { return t.Open(path, flag) }, exclusive)
}

// Remove removes the file or empty directory at path.
func (t *Tree) Remove(path string) error {
	d, name, err := t.parent(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Remove(name)
}

// openCached is Open in one openat2 from the root's cached descriptor
// (RESOLVE_NO_SYMLINKS covers the file itself too, as O_NOFOLLOW does),
// where the root is cached and the kernel has openat2; ok is false
// otherwise, and Open takes the way through the parent directory.
func (t *Tree) openCached(path string, flag int) (fd int, ok bool, err error) {
	if noOpenat2.Load() || flag&os.O_CREATE != 0 {
		return -1, false, nil
	}
	if _, name := filepath.Split(Clean(path)); checkName(name) != nil {
		return -1, false, nil
	}
	fd = -1
	opened := false
	cached := t.cached(path, func(rootfd int, rel string) {
		fd, opened, err = openBeneath(rootfd, rel, flag, path)
	})
	if !cached || !opened {
		return -1, false, nil
	}
	return fd, true, err
}

// openBeneath opens the existing regular file rel beneath the directory
// rootfd in one openat2 (RESOLVE_NO_SYMLINKS covers the file itself too,
// as O_NOFOLLOW does); ok is false when the kernel lacks openat2 (the
// caller then takes the way through the parent directory). path names
// the file in errors.
func openBeneath(rootfd int, rel string, flag int, path string) (fd int, ok bool, err error) {
	how := &unix.OpenHow{Flags: uint64(flag | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_NONBLOCK),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err = unix.Openat2(rootfd, rel, how)
	for err == unix.EINTR || err == unix.EAGAIN {
		fd, err = unix.Openat2(rootfd, rel, how)
	}
	switch err {
	case nil:
	case unix.ENOSYS, unix.EPERM, unix.E2BIG:
		return -1, false, nil // Open finds out, and falls back for good
	case unix.EXDEV:
		return -1, true, &fs.PathError{Op: "open", Path: path, Err: ErrOutside}
	default:
		return -1, true, pathErr("open", path, err)
	}
	if err := regular(fd); err != nil {
		return -1, true, regularErr(Clean(path), err)
	}
	return fd, true, nil
}

// Pinned opens files beneath the roots of a Tree from descriptors of the
// roots opened once, at the first file beneath each, for a pass of many
// unlocked reads (a dump's estimate of its totals reads the index header
// of every mailbox): it saves the check, a stat per file, that the root
// still names the directory cached. Every file is still opened without
// following a symlink and without leaving its root; what a pass does not
// notice is a root replaced while it runs (it reads on in the directory
// the root was when it began), so a Pinned serves one short pass of reads
// and is then closed. It is not safe for concurrent use.
type Pinned struct {
	t     *Tree
	roots map[string]*Dir
}

// Pin returns a Pinned of t.
func (t *Tree) Pin() *Pinned { return &Pinned{t: t, roots: make(map[string]*Dir, 2)} }

// OpenFd is Tree.OpenFd from the pinned roots.
func (p *Pinned) OpenFd(path string, flag int) (int, error) {
	if noOpenat2.Load() || flag&os.O_CREATE != 0 || hasDotDot(path) {
		return p.t.OpenFd(path, flag)
	}
	clean := Clean(path)
	if _, name := filepath.Split(clean); checkName(name) != nil {
		return p.t.OpenFd(path, flag)
	}
	r, rel, ok := p.t.rootOf(clean)
	if !ok {
		return p.t.OpenFd(path, flag)
	}
	d := p.roots[r]
	if d == nil {
		var err error
		if d, err = openRoot(r); err != nil {
			return p.t.OpenFd(path, flag) // it says why
		}
		p.roots[r] = d
	}
	fd, ok, err := openBeneath(d.fd, rel, flag, path)
	if !ok {
		return p.t.OpenFd(path, flag)
	}
	return fd, err
}

// Close closes the pinned roots.
func (p *Pinned) Close() {
	for r, d := range p.roots {
		d.Close()
		delete(p.roots, r)
	}
}

// openRoot opens a configured root directory. Its path is the operator's
// configuration, so symlinks in it are followed, but only symlinks owned
// by root (or by the user running mbtool): one planted by the user Cyrus
// runs as, in a directory that user owns (a lock directory in /run/cyrus,
// say), is refused.
func openRoot(root string) (*Dir, error) {
	if !filepath.IsAbs(root) {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, err
		}
		root = abs
	}
	fd, err := roots.open(root)
	if err != nil {
		return nil, pathErr("open", root, err)
	}
	return &Dir{fd: fd, path: root}, nil
}

// maxCachedRoots bounds rootCache (a run has a handful of roots; a test
// process may see thousands).
const maxCachedRoots = 64

// rootCache keeps each root open once walked, so that resolving a path
// beneath it costs a stat and a dup (then one openat2) rather than a
// walk from "/" of every component, about ten system calls, for every
// lock file, mailbox directory and database a run opens.
type rootCache struct {
	mu sync.RWMutex
	m  map[string]cachedRoot
}

// cachedRoot is a root directory as walkRoot opened it.
type cachedRoot struct {
	fd       int
	dev, ino uint64
}

var roots = rootCache{m: make(map[string]cachedRoot)}

// open returns a new descriptor of the directory at the absolute path
// root. The cached descriptor serves only while root still names that
// same directory (device and inode; an open descriptor keeps its inode
// from being reused): a root deleted, moved or replaced since, by a
// symlink or anything else, is walked again, with walkRoot's rules.
func (c *rootCache) open(root string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		c.mu.Lock()
		r, ok := c.m[root]
		var fd int
		var err error = unix.ENOENT
		if ok && r.dev == st.Dev && r.ino == st.Ino {
			fd, err = unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
		}
		c.mu.Unlock()
		if err == nil {
			return fd, nil
		}
	}
	fd, err := walkRoot(root)
	if err != nil {
		return -1, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return fd, nil // not cached
	}
	keep, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fd, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[root]; ok {
		unix.Close(old.fd)
	} else if len(c.m) >= maxCachedRoots {
		for p, old := range c.m {
			unix.Close(old.fd)
			delete(c.m, p)
		}
	}
	c.m[root] = cachedRoot{fd: keep, dev: st.Dev, ino: st.Ino}
	return fd, nil
}

// do calls fn with the cached descriptor of the absolute path root (and
// rel, which saves the caller a closure per call), held
// open meanwhile, if root is cached and still names that directory (as
// open checks it); it reports whether it did.
func (c *rootCache) do(root, rel string, fn func(fd int, rel string)) bool {
	id, ok := c.current(root)
	return ok && c.doChecked(root, id, rel, fn)
}

// current returns the identity of the cached descriptor of the absolute
// path root if root is cached and still names that directory (a stat of
// its path, as do checks it).
func (c *rootCache) current(root string) (rootID, bool) {
	if !filepath.IsAbs(root) {
		return rootID{}, false
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return rootID{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.m[root]
	if !ok || r.dev != st.Dev || r.ino != st.Ino {
		return rootID{}, false
	}
	return rootID{r.dev, r.ino}, true
}

// doChecked is do for a root whose path was last found to name the
// directory id (Tree.Checked): fn is called with the cached descriptor,
// without a stat, if that descriptor is still of id.
func (c *rootCache) doChecked(root string, id rootID, rel string, fn func(fd int, rel string)) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.m[root]
	if !ok || r.dev != id.dev || r.ino != id.ino {
		return false
	}
	fn(r.fd, rel)
	return true
}

// walkRoot opens the absolute path one component at a time from "/",
// following only trusted symlinks.
func walkRoot(path string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	cur, err := unix.Open("/", flags, 0)
	if err != nil {
		return -1, err
	}
	comps := strings.Split(strings.TrimPrefix(path, "/"), "/")
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		if c == "" || c == "." {
			continue
		}
		fd, err := unix.Openat(cur, c, flags, 0)
		if err == unix.ELOOP || err == unix.ENOTDIR {
			var st unix.Stat_t
			if serr := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW); serr != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
				unix.Close(cur)
				return -1, err
			}
			if links++; links > 40 || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) {
				unix.Close(cur)
				return -1, unix.ELOOP
			}
			buf := make([]byte, unix.PathMax)
			n, rerr := unix.Readlinkat(cur, c, buf)
			if rerr != nil {
				unix.Close(cur)
				return -1, rerr
			}
			target := string(buf[:n])
			if strings.HasPrefix(target, "/") {
				unix.Close(cur)
				if cur, err = unix.Open("/", flags, 0); err != nil {
					return -1, err
				}
			}
			comps = append(strings.Split(target, "/"), comps...)
			continue
		}
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// noOpenat2 is set once openat2 turned out to be missing (ENOSYS, or
// refused by a seccomp filter).
var noOpenat2 atomic.Bool

// resolve opens the directory rel beneath the directory dirfd without
// following any symlink and without leaving it.
func resolve(dirfd int, rel string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: flags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		for err == unix.EINTR || err == unix.EAGAIN {
			fd, err = unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: flags,
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		}
		switch err {
		case nil:
			return fd, nil
		case unix.ENOSYS, unix.EPERM, unix.E2BIG:
			noOpenat2.Store(true)
		case unix.EXDEV:
			return -1, ErrOutside
		default:
			return -1, err
		}
	}
	cur, err := unix.Dup(dirfd)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			unix.Close(cur)
			return -1, ErrOutside
		}
		fd, err := unix.Openat(cur, c, flags, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// pathErr wraps a system call error, turning ELOOP (a symlink met with
// O_NOFOLLOW or RESOLVE_NO_SYMLINKS) and ENOTDIR into ErrSymlink.
func pathErr(op, path string, err error) error {
	switch err {
	case unix.ELOOP:
		err = ErrSymlink
	case unix.ENOTDIR:
		// O_NOFOLLOW|O_DIRECTORY on a symlink, or a file where a
		// directory should be.
		err = fmt.Errorf("%w, or not a directory", ErrSymlink)
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}
