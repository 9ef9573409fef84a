package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// take opens the lock file at path and takes its lock, as a caller of Take
// does.
func take(t *testing.T, p string, exclusive bool) *File {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Take(context.Background(), fd, p, exclusive)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestExclusiveExcludesOtherDescriptor(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	os.WriteFile(p, nil, 0o600)
	a := take(t, p, true)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := TryShared(f); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryShared under exclusive = %v, want ErrWouldBlock", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := Wait(ctx, f, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want deadline exceeded", err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := TryShared(f); err != nil {
		t.Fatalf("TryShared after release = %v", err)
	}
}

func TestSharedLocksCoexist(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.lock")
	os.WriteFile(p, nil, 0o600)
	a := take(t, p, false)
	defer a.Release()
	b := take(t, p, false)
	defer b.Release()
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	defer f.Close()
	if err := TryExclusive(f); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryExclusive under shared = %v", err)
	}
}

func TestOpenLockedFollowsRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "db")
	os.WriteFile(p, []byte("old"), 0o600)
	f, err := OpenLocked(p, os.O_RDONLY, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.WriteFile(p+".NEW", []byte("new"), 0o600)
	os.Rename(p+".NEW", p)
	f, err = OpenLocked(p, os.O_RDONLY, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 3)
	f.Read(b)
	if string(b) != "new" {
		t.Fatalf("read %q, want new", b)
	}
}

// TestOpenLockedContext: a lock held elsewhere is waited for only until
// the context is done, and a symlink at the path is not followed.
func TestOpenLockedContext(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "db")
	os.WriteFile(p, nil, 0o600)
	a := take(t, p, true)
	defer a.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := OpenLockedContext(ctx, p, os.O_RDONLY, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenLockedContext under an exclusive lock: %v", err)
	}
	l := filepath.Join(dir, "link")
	os.Symlink(p, l)
	if _, err := OpenLockedContext(context.Background(), l, os.O_RDONLY, false); err == nil {
		t.Fatal("OpenLockedContext followed a symlink")
	}
}
