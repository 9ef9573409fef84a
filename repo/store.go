package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/zeebo/blake3"
)

// Store is where a repository's files live: immutable files named by the
// BLAKE3 digest of their bytes (packs, index files, states, snapshots) and
// a few small ones created exclusively (config, locks). Names are
// slash-separated paths relative to the repository ("packs/3f/3fa4...").
//
// Nothing is ever changed in place: a file is written whole under a
// temporary name and published by Commit, atomically; a reader sees it
// whole or not at all. That is all a local directory or an S3 bucket with
// conditional writes (If-None-Match: *) has to give.
type Store interface {
	// Create starts a new immutable file.
	Create() (FileWriter, error)
	// Open opens a file for reading at any offset.
	Open(name string) (File, error)
	// List calls fn for each file under dir (not recursively into files'
	// names, but through subdirectories), in no particular order.
	List(dir string, fn func(name string, size int64) error) error
	// Remove deletes a file; a file that does not exist is not an error.
	Remove(name string) error
	// PutExclusive writes a small file whole, failing with an error
	// wrapping fs.ErrExist if name exists.
	PutExclusive(name string, data []byte) error
	// Location names the store for messages.
	Location() string
}

// readBinder is a Store whose reads can be bound to a context of their
// own: an object store, whose reads (a GET waiting for its answer, its
// retries) otherwise end only with the context the store was opened
// with, the command's.
type readBinder interface {
	bindReads(ctx context.Context) Store
}

// boundTo returns r with its reads bound to ctx, where its store can be:
// cancelling ctx then ends a read in flight at once, where it would run
// on to its timeout and retries.
func (r *Repo) boundTo(ctx context.Context) *Repo {
	b, ok := r.store.(readBinder)
	if !ok {
		return r
	}
	c := *r
	c.store = b.bindReads(ctx)
	return &c
}

// FileWriter writes a new immutable file and hashes it as it goes.
type FileWriter interface {
	io.Writer
	// Written returns the number of bytes written so far.
	Written() int64
	// Sum returns the BLAKE3-256 digest of the bytes written so far.
	Sum() [32]byte
	// Commit makes the file visible under name, durably. If name exists
	// already it is kept (names are content addresses: same name, same
	// bytes) and Commit succeeds.
	Commit(name string) error
	// Abort discards the file; it is a no-op after Commit.
	Abort()
}

// File is an open immutable file.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

var errNotRegular = errors.New("not a regular file")

// dirStore is a Store in a local directory.
type dirStore struct{ root string }

// OpenDir returns the Store in directory root.
func OpenDir(root string) Store { return &dirStore{root: root} }

func (d *dirStore) Location() string { return d.root }

func (d *dirStore) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(name)), nil
}

// checkName refuses a repository file name that is not a clean relative
// slash path below the repository's root: the one rule of every Store.
func checkName(name string) error {
	if name == "" || name == "." || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "..") {
		return fmt.Errorf("repository file name %q: not a clean relative path", name)
	}
	return nil
}

// mkdirs creates the directories of rel (slash path, below root) one by
// one, refusing symbolic links on the way.
func (d *dirStore) mkdirs(rel string) error {
	p := d.root
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := syncDir(filepath.Dir(p)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory (a symbolic link?)", p)
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func randomName() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (d *dirStore) Create() (FileWriter, error) {
	if err := d.mkdirs("tmp"); err != nil {
		return nil, err
	}
	name := filepath.Join(d.root, "tmp", randomName())
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	return &dirWriter{d: d, f: f, tmp: name, h: blake3.New()}, nil
}

type dirWriter struct {
	d   *dirStore
	f   *os.File
	tmp string
	h   *blake3.Hasher
	n   int64
	buf []byte
	err error
}

const writeBuffer = 256 << 10

func (w *dirWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.h.Write(p)
	w.n += int64(len(p))
	if len(w.buf)+len(p) <= writeBuffer {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if err := w.flush(); err != nil {
		return 0, err
	}
	if len(p) >= writeBuffer {
		if _, err := w.f.Write(p); err != nil {
			w.err = err
			return 0, err
		}
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *dirWriter) flush() error {
	if len(w.buf) > 0 && w.err == nil {
		_, w.err = w.f.Write(w.buf)
		w.buf = w.buf[:0]
	}
	return w.err
}

func (w *dirWriter) Written() int64 { return w.n }

func (w *dirWriter) Sum() [32]byte {
	var s [32]byte
	copy(s[:], w.h.Sum(nil))
	return s
}

func (w *dirWriter) Commit(name string) error {
	if w.f == nil {
		return errors.New("repository file already committed or aborted")
	}
	dst, err := w.d.path(name)
	if err != nil {
		w.Abort()
		return err
	}
	if err := w.flush(); err != nil {
		w.Abort()
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		// The same bytes are there already (a user whose mailboxes did
		// not change): nothing to make durable.
		w.Abort()
		return nil
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return err
	}
	if err := w.f.Chmod(0o400); err != nil {
		w.Abort()
		return err
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		os.Remove(w.tmp)
		return err
	}
	w.f = nil
	defer os.Remove(w.tmp)
	if err := w.d.mkdirs(path.Dir(name)); err != nil {
		return err
	}
	// link, not rename: an existing file (same name, same bytes) stays.
	if err := os.Link(w.tmp, dst); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func (w *dirWriter) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
		os.Remove(w.tmp)
	}
}

// osFile is a File open on this machine: in a directory store, or an S3
// store's spooled copy.
type osFile struct {
	*os.File
	size int64
}

func (f *osFile) Size() int64 { return f.size }

func (d *dirStore) Open(name string) (File, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, errNotRegular)
	}
	return &osFile{File: f, size: fi.Size()}, nil
}

func (d *dirStore) List(dir string, fn func(name string, size int64) error) error {
	p, err := d.path(dir)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := dir + "/" + e.Name()
		switch {
		case e.IsDir():
			if err := d.List(name, fn); err != nil {
				return err
			}
		case e.Type().IsRegular():
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if err := fn(name, fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *dirStore) Remove(name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d *dirStore) PutExclusive(name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := d.mkdirs(path.Dir(name)); err != nil {
		return err
	}
	// Written under a temporary name and linked, so that the file is
	// never seen partly written.
	tmp := p + ".tmp-" + randomName()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}
