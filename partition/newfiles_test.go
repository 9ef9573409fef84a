package partition

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
)

// TestNewFiles writes new files through a batch: none is visible before
// Commit, which flushes the file system twice whatever the number of
// files (before and after the names); the files and their new
// directories are then there, whole. A name taken meanwhile makes Commit
// run the writer's own transaction on the existing file, and a writer of
// a file still pending commits the batch first.
func TestNewFiles(t *testing.T) {
	root := t.TempDir()
	tree := cyrusfs.NewTree(root)
	owner := Owner{UID: -1, GID: -1}
	flushes := 0
	b := NewFileBatch(func(fd int) error { flushes++; return nil })
	steps := 0
	b.Step = func() { steps++ }
	var paths []string
	for _, rel := range []string{"a/b/one", "a/b/two", "a/c/three"} {
		p := filepath.Join(root, rel)
		paths = append(paths, p)
		done, err := createIn(b, tree, p, owner, []byte(rel), len(rel), func() error {
			t.Errorf("redo of %s", rel)
			return nil
		})
		if err != nil || !done {
			t.Fatalf("createIn(%s) = %v, %v", rel, done, err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s visible before Commit: %v", rel, err)
		}
		if !b.Pending(p) {
			t.Errorf("%s not pending", rel)
		}
	}
	// The name of one taken meanwhile (as a Cyrus process would):
	// the writer's transaction runs on it instead.
	taken := filepath.Join(root, "a/d/four")
	done, err := createIn(b, tree, taken, owner, []byte("ours"), 4, func() error {
		return os.WriteFile(taken, []byte("redone"), 0o600)
	})
	if err != nil || !done {
		t.Fatal(done, err)
	}
	if err := os.WriteFile(taken, []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Something at the path already: not the batch's.
	if done, err := createIn(b, tree, taken, owner, []byte("x"), 1, nil); err != nil || done {
		t.Errorf("createIn over an existing file: %v, %v", done, err)
	}
	if flushes != 0 {
		t.Errorf("%d flushes before Commit", flushes)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if flushes != 2 {
		t.Errorf("Commit flushed %d times, want 2 (one file system)", flushes)
	}
	if steps != 2+4 {
		t.Errorf("Commit had %d crash points, want 6", steps)
	}
	for i, p := range paths {
		got, err := os.ReadFile(p)
		if want := []string{"a/b/one", "a/b/two", "a/c/three"}[i]; err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", p, got, err)
		}
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", p, fi, err)
		}
		if b.Pending(p) {
			t.Errorf("%s still pending", p)
		}
	}
	if got, _ := os.ReadFile(taken); string(got) != "redone" {
		t.Errorf("taken name: %q, want the transaction's", got)
	}
	if err := b.Commit(); err != nil || flushes != 2 {
		t.Errorf("an empty Commit: %v, %d flushes", err, flushes)
	}

	// A second write of a pending file commits the batch first, then
	// changes the file by its transaction (here a seen db).
	tx := func(k, v string) func(*TwoskipTx) error {
		return func(tx *TwoskipTx) error { tx.Set([]byte(k), []byte(v)); return nil }
	}
	seen := filepath.Join(root, "user/x/seen")
	if err := updateTwoskipIn(context.Background(), b, tree, seen, true, owner, tx("k1", "v1"), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(seen); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("seen db visible before Commit: %v", err)
	}
	if err := updateTwoskipIn(context.Background(), b, tree, seen, true, owner, tx("k2", "v2"), 4); err != nil {
		t.Fatal(err)
	}
	if flushes != 4 {
		t.Errorf("%d flushes, want 4: the pending seen db committed before its second write", flushes)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(seen)
	if err != nil || !bytes.Contains(got, []byte("k1")) || !bytes.Contains(got, []byte("k2")) {
		t.Errorf("seen db: %q, %v", got, err)
	}
}

// TestNewFilesBound commits a batch when it is full: its descriptors and
// records are bounded, however many files are written.
func TestNewFilesBound(t *testing.T) {
	root := t.TempDir()
	tree := cyrusfs.NewTree(root)
	flushes := 0
	b := NewFileBatch(func(fd int) error { flushes++; return nil })
	n := MaxNewFiles + 10
	for i := range n {
		p := filepath.Join(root, "d", string(rune('a'+i%26)), "f"+strconv.Itoa(i))
		if _, err := createIn(b, tree, p, Owner{UID: -1, GID: -1}, []byte("x"), 1, nil); err != nil {
			t.Fatal(err)
		}
		if len(b.pending) >= MaxNewFiles {
			t.Fatalf("%d files pending", len(b.pending))
		}
	}
	if flushes != 2 || len(b.pending) != 10 {
		t.Errorf("%d flushes, %d pending; want 2 and 10", flushes, len(b.pending))
	}
	// The bytes bound too.
	big := MaxNewFileBytes / 2
	for i := range 2 {
		if _, err := createIn(b, tree, filepath.Join(root, "big"+strconv.Itoa(i)), Owner{UID: -1, GID: -1}, []byte("x"), big, nil); err != nil {
			t.Fatal(err)
		}
	}
	if flushes != 4 || len(b.pending) != 0 {
		t.Errorf("after %d bytes held: %d flushes, %d pending", 2*big, flushes, len(b.pending))
	}
}

// On a file system without O_TMPFILE a new file has a temporary name in
// its directory until it is named, which other programs see (Cyrus takes
// every name in a quota directory for a quota root) and a killed run
// leaves: the batch does not keep such a file, but names it at once,
// flushed first, and flushes the file system after.
func TestNewFilesNamedTempNotKept(t *testing.T) {
	defer cyrusfs.ForceNamedTemp()()
	root := t.TempDir()
	tree := cyrusfs.NewTree(root)
	dir := filepath.Join(root, "quota", "u")
	flushes := 0
	b := NewFileBatch(func(int) error { flushes++; return nil })
	path := filepath.Join(dir, "user.bob")
	done, err := createIn(b, tree, path, Owner{UID: -1, GID: -1}, []byte("%(S 10) \n"), 1, nil)
	if err != nil || !done {
		t.Fatalf("createIn: done %v, %v", done, err)
	}
	if b.Pending(path) || len(b.pending) != 0 {
		t.Fatalf("the batch keeps a file with a temporary name")
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "%(S 10) \n" {
		t.Fatalf("%s: %q, %v; want it named and whole at once", path, got, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("%s holds %d names, want only user.bob", dir, len(ents))
	}
	if flushes != 1 {
		t.Errorf("%d flushes, want 1 (its name and new directories)", flushes)
	}
}
