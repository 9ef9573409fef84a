package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestExclusiveExcludesOtherDescriptor(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	os.WriteFile(p, nil, 0o600)
	a, err := OpenFile(context.Background(), p, true)
	if err != nil {
		t.Fatal(err)
	}
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
	a, err := OpenFile(context.Background(), p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := OpenFile(context.Background(), p, false)
	if err != nil {
		t.Fatal(err)
	}
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

func TestOpenFileDoesNotCreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing.lock")
	if _, err := OpenFile(context.Background(), p, false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenFile of a missing lock file: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("OpenFile created the lock file")
	}
}
