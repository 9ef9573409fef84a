package cyrusfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPrivate: a directory made by MkdirPrivate belongs to the user
// running mbtool, mode 0700; the directories and files made beneath it
// (through it and the Dirs made or opened from it) are made under their
// final names, with the owner and mode asked for; a name taken there,
// by a symlink or a file, is refused (fs.ErrExist) and nothing is
// followed or changed.
func TestPrivate(t *testing.T) {
	root, outside := plant(t)
	tr := NewTree(root)
	rd, err := tr.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if rd.Private() {
		t.Fatal("a root is private")
	}
	sd, err := rd.MkdirPrivate(".stage.")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if !sd.Private() {
		t.Fatal("MkdirPrivate's directory is not private")
	}
	o := Owner{UID: -1, GID: -1}
	if os.Geteuid() == 0 {
		o = Owner{UID: 65534, GID: 65534}
	}
	want := func(p string, uid int, mode uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if uid < 0 {
			uid = os.Geteuid()
		}
		if int(st.Uid) != uid || st.Mode&0o7777 != mode {
			t.Errorf("%s: owner %d mode %o, want %d %o", p, st.Uid, st.Mode&0o7777, uid, mode)
		}
	}
	want(sd.Path(), -1, 0o700)

	box, err := sd.Mkdir("box", o)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	if !box.Private() {
		t.Error("a directory made in a private one is not private")
	}
	want(box.Path(), o.UID, 0o700)
	nf, err := box.NewFile("cyrus.index", o, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	// Named at once: nothing else in the directory, no temporary name.
	if ents, _ := os.ReadDir(box.Path()); len(ents) != 1 || ents[0].Name() != "cyrus.index" {
		t.Errorf("entries %v", ents)
	}
	if _, err := nf.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if _, err := nf.WriteAt([]byte("ab"), 0); err != nil {
		t.Fatal(err)
	}
	if err := nf.Link(false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(box.Path(), "cyrus.index")); string(b) != "ab23456789" {
		t.Errorf("content %q", b)
	}
	want(filepath.Join(box.Path(), "cyrus.index"), o.UID, 0o640)

	again, err := sd.OpenDir("box")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Private() {
		t.Error("a directory opened from a private one is not private")
	}
	again.Close()

	// Aborted: gone.
	nf, err = box.NewFile("aborted", o, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	nf.Abort()
	if _, err := os.Lstat(filepath.Join(box.Path(), "aborted")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("aborted file left: %v", err)
	}

	// Replaced whole, no name.NEW left.
	if err := box.Replace("db", o, 0o600, func(f *os.File) error { _, err := f.WriteString("new"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := box.Replace("db", o, 0o600, func(f *os.File) error { _, err := f.WriteString("newer"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(box.Path(), "db")); string(b) != "newer" {
		t.Errorf("replaced content %q", b)
	}
	if _, err := os.Lstat(filepath.Join(box.Path(), "db.NEW")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("db.NEW left: %v", err)
	}

	// Planted: a symlink to a directory and to a file outside, and a
	// foreign file, under names about to be made.
	victim := filepath.Join(outside, "victim")
	for _, l := range []struct{ name, to string }{{"dirlink", outside}, {"filelink", victim}, {"dangling", filepath.Join(outside, "new")}} {
		if err := os.Symlink(l.to, filepath.Join(box.Path(), l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(box.Path(), "foreign"), []byte("theirs"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dirlink", "filelink", "dangling", "foreign"} {
		if d, err := box.Mkdir(name, o); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Mkdir over %s: %v, want fs.ErrExist", name, err)
			d.Close()
		}
		if nf, err := box.NewFile(name, o, 0o600); !errors.Is(err, fs.ErrExist) {
			t.Errorf("NewFile over %s: %v, want fs.ErrExist", name, err)
			if err == nil {
				nf.Abort()
			}
		}
		if f, err := box.Create(name, o, 0o600); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Create over %s: %v, want fs.ErrExist", name, err)
			if err == nil {
				f.Close()
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(box.Path(), "foreign")); string(b) != "theirs" {
		t.Errorf("foreign file changed: %q", b)
	}
	checkOutside(t, outside)
}
