package lock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// relock is RelockSize of f with its ID read now.
func relock(ctx context.Context, t *testing.T, f *os.File, path string) (bool, error) {
	t.Helper()
	id, err := IDOf(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	_, ok, err := RelockSize(ctx, f, id, path, false)
	return ok, err
}

// TestRelock: a file kept open is relocked while its path names it, and
// reported replaced after a rename over it or a symlink in its place.
func TestRelock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailboxes.db")
	if err := os.WriteFile(path, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenLocked(path, os.O_RDONLY, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	if same, err := relock(ctx, t, f, path); !same || err != nil {
		t.Fatalf("Relock of the same file = %v, %v", same, err)
	}
	if err := os.WriteFile(path+".NEW", []byte("b"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".NEW", path); err != nil {
		t.Fatal(err)
	}
	if same, err := relock(ctx, t, f, path); same || err != nil {
		t.Fatalf("Relock after a rename over the file = %v, %v", same, err)
	}
	// f was unlocked: another open of its file takes the exclusive lock.
	g, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := TryExclusive(g); err != nil {
		t.Fatalf("the replaced file is still locked: %v", err)
	}
	old := filepath.Join(dir, "old")
	if err := os.Link(path, old); err != nil {
		t.Fatal(err)
	}
	h, err := OpenLocked(path, os.O_RDONLY, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(old, path); err != nil {
		t.Fatal(err)
	}
	if same, err := relock(ctx, t, h, path); same || err != nil {
		t.Fatalf("Relock with a symlink at the path = %v, %v", same, err)
	}
}

// RelockSize stats the path alone, against the ID taken at the open: it
// gives the size of the kept file as it grows, and reports it replaced
// after a rename over it.
func TestRelockSizeByID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailboxes.db")
	if err := os.WriteFile(path, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenLocked(path, os.O_RDONLY, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := IDOf(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := Unlock(f); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("defg"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ctx := context.Background()
	size, ok, err := RelockSize(ctx, f, id, path, false)
	if !ok || err != nil || size != 7 {
		t.Fatalf("RelockSize after an append = %d, %v, %v; want 7, true", size, ok, err)
	}
	Unlock(f)
	if err := os.WriteFile(path+".NEW", []byte("abcdefg"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".NEW", path); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := RelockSize(ctx, f, id, path, false); ok || err != nil {
		t.Fatalf("RelockSize after a rename over the file (same size) = %v, %v", ok, err)
	}
}

// Retake checks that the path still names the kept lock file at every
// take, also once it knows the file's ID (from the first Retake, kept
// with the file by Keep): a file made anew at the path, or a symlink to
// the kept file there, is not the kept file.
func TestRetakeByID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "user.lock")
	ctx := context.Background()
	open := func() int {
		t.Helper()
		if err := os.WriteFile(path, nil, 0o600); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	// Each case takes the lock file, keeps and retakes it twice (the
	// first Retake learns its ID), then replaces the file and checks
	// that a third Retake does not take it.
	for name, replace := range map[string]func(){
		"made anew": func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"symlink": func() {
			old := path + ".old"
			if err := os.Rename(path, old); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(old, path); err != nil {
				t.Fatal(err)
			}
		},
	} {
		os.Remove(path)
		l, err := Take(ctx, open(), path, false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			k, err := l.Keep()
			if err != nil {
				t.Fatal(err)
			}
			if i == 2 {
				replace()
			}
			l, err = Retake(ctx, k, path, false)
			if err != nil {
				t.Fatal(err)
			}
			if i < 2 && l == nil {
				t.Fatalf("%s: Retake %d of the unchanged file: not taken", name, i+1)
			}
			if i == 2 && l != nil {
				t.Errorf("%s: Retake after the file was replaced: taken", name)
				l.Release()
			}
		}
	}
}
