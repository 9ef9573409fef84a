package cyrusfs

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestMkdirAllConcurrentMakesOnce: goroutines of one process making the
// same missing directories at once (a restore's workers writing two
// users' files under one new hashed parent) make each directory once,
// under one temporary name renamed into place, and the others open it:
// none makes it under a temporary name only to find the name taken, so
// the steps of a run (the kill tests count them) do not depend on which
// goroutine came first.
func TestMkdirAllConcurrentMakesOnce(t *testing.T) {
	root := t.TempDir()
	saved := trace
	trace = filepath.Join(t.TempDir(), "trace")
	defer func() { trace = saved }()
	tree := NewTree(root)
	o := Owner{UID: -1, GID: -1}
	const rounds, workers = 20, 8
	for r := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Each its own leaf under shared new parents.
				d, err := tree.MkdirAllUnsynced(filepath.Join(root, "r"+string(rune('a'+r)), "x", "y", "w"+string(rune('0'+w))), o)
				if err != nil {
					t.Error(err)
					return
				}
				d.Close()
			}()
		}
		close(start)
		wg.Wait()
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if kind, rest, _ := strings.Cut(line, " "); kind == "mkdir" {
			_, path, _ := strings.Cut(rest, " ")
			made[path]++
		}
	}
	if want := rounds * (3 + workers); len(made) != want {
		t.Errorf("%d directories made, want %d", len(made), want)
	}
	for path, n := range made {
		if n != 1 {
			t.Errorf("%s made %d times, want once", path, n)
		}
	}
}
