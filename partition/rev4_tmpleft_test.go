package partition

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
)

// Without O_TMPFILE, a file of a NewFiles batch waits for Commit under a
// visible temporary name (.mbtool-tmp-<pid>-<hex>) in its final
// directory, for as long as the batch is open. A run killed meanwhile
// leaves it there. In a quota directory Cyrus's quotalegacy foreach
// (lib/cyrusdb_quotalegacy.c scan_qr_dir: every name but . and ..) takes
// it for a quota root. The next run writing into that directory must
// sweep it; only MkdirAll's making of a new child directory sweeps.
func TestRev4KilledBatchTempSwept(t *testing.T) {
	root := t.TempDir()
	tree := cyrusfs.NewTree(root)
	owner := Owner{UID: -1, GID: -1}
	dir := filepath.Join(root, "quota", "u")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The leftover of a killed run (its process gone).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, ".mbtool-tmp-"+strconv.Itoa(cmd.Process.Pid)+"-0123456789ab")
	if err := os.WriteFile(left, []byte("%(S 10) \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := NewFileBatch(func(int) error { return nil })
	if _, err := createIn(b, tree, filepath.Join(dir, "user.bob"), owner, []byte("x"), 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(left); err == nil {
		t.Errorf("a killed run's temporary file %s is still in the quota directory after the next run wrote there", filepath.Base(left))
	}
}
