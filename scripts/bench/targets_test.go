package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Every run gets a directory of its own, none is removed before
// removeAll, and a full disk makes next remove the kept ones first. The
// targets an interrupted run left are removed when the run starts, all of
// them, not as their names come round again between timed runs.
func TestTargets(t *testing.T) {
	dir := t.TempDir()
	var left []string
	for _, n := range []string{"target-1", "target-7"} {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Join(p, "spool"), 0o755); err != nil {
			t.Fatal(err)
		}
		left = append(left, p)
	}
	settle = 0
	tg := newTargets(dir)
	settle = defaultSettle
	if tg.leftovers != 2 {
		t.Fatalf("%d leftover targets removed, want 2", tg.leftovers)
	}
	for _, p := range left {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("leftover target %s not removed at the start: %v", p, err)
		}
	}
	a := tg.next(1)
	if a != left[0] {
		t.Fatalf("first target %s, want %s", a, left[0])
	}
	b := tg.next(1)
	if a == b {
		t.Fatalf("two runs got the same target %s", a)
	}
	for _, p := range []string{a, b} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	settle, freeSpace = 0, func(string) (int64, bool) { return 1 << 30, true }
	defer func() { settle, freeSpace = defaultSettle, free }()
	c := tg.next(1 << 30) // needs 3 GiB free: a and b go first
	if tg.warned != 1 {
		t.Fatalf("warned %d times, want 1", tg.warned)
	}
	for _, p := range []string{a, b} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s kept on a full disk: %v", p, err)
		}
	}
	if err := os.MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	tg.removeAll()
	if _, err := os.Stat(c); !os.IsNotExist(err) {
		t.Fatalf("%s left after removeAll: %v", c, err)
	}
}
