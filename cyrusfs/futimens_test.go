package cyrusfs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNewFileFutimens: a NewFile's times set through its descriptor
// (after its bytes, which set the mtime to now) are the times it has
// under its name, in a private directory (named at once) and elsewhere
// (named at Link).
func TestNewFileFutimens(t *testing.T) {
	root := t.TempDir()
	rd, err := NewTree(root).OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	sd, err := rd.MkdirPrivate(".stage.")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	when := time.Unix(1700000000, 0)
	for _, d := range []*Dir{rd, sd} {
		nf, err := d.NewFile("1.", Owner{UID: -1, GID: -1}, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nf.Write([]byte("body\r\n")); err != nil {
			t.Fatal(err)
		}
		if err := nf.Futimens(when); err != nil {
			t.Fatal(err)
		}
		if err := nf.Link(false); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(d.Path(), "1."))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(when) || fi.Mode().Perm() != 0o600 || fi.Size() != 6 {
			t.Errorf("%s: mtime %v mode %v size %d; want %v 0600 6", d.Path(), fi.ModTime(), fi.Mode(), fi.Size(), when)
		}
	}
}
