package partition

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
)

// TestNewFilesParts: writers on several goroutines at once write files
// into parts of one batch (under shared new directories); the parts,
// joined in a fixed order, give the batch its files in that order,
// whichever writer ended first, and nothing is named before the batch's
// Commit, which names them in that order (one crash point each). A part
// dropped names nothing, and a part is never committed itself.
func TestNewFilesParts(t *testing.T) {
	root := t.TempDir()
	tree := cyrusfs.NewTree(root)
	owner := Owner{UID: -1, GID: -1}
	b := NewFileBatch(func(int) error { return nil })
	const n = 40
	parts := make([]*NewFiles, n)
	paths := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		parts[i] = b.Part()
		paths[i] = filepath.Join(root, fmt.Sprintf("d%d", i%3), "sub", fmt.Sprintf("f%02d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte(paths[i])
			done, err := createIn(parts[i], tree, paths[i], owner, data, len(data), func() error {
				t.Errorf("redo of %s", paths[i])
				return nil
			})
			if err != nil || !done {
				t.Errorf("createIn(%s) = %v, %v", paths[i], done, err)
			}
		}()
	}
	wg.Wait()
	if err := parts[0].Commit(); err == nil {
		t.Error("a part committed")
	}
	// Joined in reverse, all but the last written, which is dropped.
	for i := n - 1; i > 0; i-- {
		if err := b.Join(parts[i]); err != nil {
			t.Fatal(err)
		}
		if parts[i].Len() != 0 || !b.Pending(paths[i]) {
			t.Errorf("part %d not moved into the batch", i)
		}
	}
	parts[0].Drop()
	var order []string
	for _, p := range b.pending {
		order = append(order, p.path)
	}
	want := slices.Clone(paths[1:])
	slices.Reverse(want)
	if !slices.Equal(order, want) {
		t.Errorf("batch holds %v, want %v", order, want)
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s visible before Commit: %v", p, err)
		}
	}
	var linked []string
	b.Step = func() {
		for _, p := range want {
			if _, err := os.Lstat(p); err == nil && !slices.Contains(linked, p) {
				linked = append(linked, p)
			}
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(linked, want) {
		t.Errorf("named in order %v, want %v", linked, want)
	}
	for i, p := range paths {
		got, err := os.ReadFile(p)
		if i == 0 {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dropped %s: %q, %v", p, got, err)
			}
			continue
		}
		if err != nil || string(got) != p {
			t.Errorf("%s: %q, %v", p, got, err)
		}
	}
}
