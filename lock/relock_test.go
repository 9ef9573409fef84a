package lock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

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
	if same, err := Relock(ctx, f, path, false); !same || err != nil {
		t.Fatalf("Relock of the same file = %v, %v", same, err)
	}
	if err := os.WriteFile(path+".NEW", []byte("b"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".NEW", path); err != nil {
		t.Fatal(err)
	}
	if same, err := Relock(ctx, f, path, false); same || err != nil {
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
	if same, err := Relock(ctx, h, path, false); same || err != nil {
		t.Fatalf("Relock with a symlink at the path = %v, %v", same, err)
	}
}
