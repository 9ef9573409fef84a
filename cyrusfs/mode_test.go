package cyrusfs

import (
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPrivateModes: files and directories made beneath MkdirPrivate's
// directory have the mode asked for whatever the umask: where the umask
// leaves the creation mode as it is, without an fchmod (modeGiven), and
// where it takes bits away (0277 leaves 0400 of 0600), with one. It also
// checks that the umask is read as the process has it.
func TestPrivateModes(t *testing.T) {
	for _, mask := range []int{0o022, 0o077, 0o277, 0o377} {
		old := syscall.Umask(mask)
		umask = sync.OnceValue(readUmask)
		func() {
			defer func() { syscall.Umask(old); umask = sync.OnceValue(readUmask) }()
			if got := umask(); got != mask {
				t.Fatalf("umask read as %o, want %o", got, mask)
			}
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
			if !sd.exact {
				t.Skip("the file system reports a default ACL on a fresh directory")
			}
			o := Owner{UID: -1, GID: -1}
			box, err := sd.Mkdir("box", o)
			if err != nil {
				t.Fatal(err)
			}
			defer box.Close()
			if want := mask&0o700 == 0; box.modeGiven(0o700, 0o700) != want {
				t.Errorf("umask %o: modeGiven(0700) = %v, want %v", mask, !want, want)
			}
			nf, err := box.NewFile("f", o, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if err := nf.Link(false); err != nil {
				t.Fatal(err)
			}
			for p, mode := range map[string]uint32{box.Path(): 0o700, box.Join("f"): 0o600} {
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					t.Fatal(err)
				}
				if st.Mode&0o7777 != mode {
					t.Errorf("umask %o: %s has mode %o, want %o", mask, p, st.Mode&0o7777, mode)
				}
			}
		}()
	}
	// Not beneath MkdirPrivate: the mode is always set.
	d := &Dir{}
	if d.modeGiven(0o600, 0o600) {
		t.Error("modeGiven outside a private directory")
	}
}

// TestUmaskFS: modes are trusted to follow the umask only on the file
// systems known to do so; /proc (like NFS or FUSE) is not one of them, and
// a directory there gets every mode set.
func TestUmaskFS(t *testing.T) {
	open := func(p string) int {
		t.Helper()
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	if umaskFS(open("/proc")) {
		t.Errorf("umaskFS(/proc) = true, want false")
	}
	var st unix.Statfs_t
	dir := t.TempDir()
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	switch int64(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		if !umaskFS(open(dir)) {
			t.Errorf("umaskFS(%s) = false on a file system of type %#x", dir, st.Type)
		}
	default:
		t.Logf("%s is on a file system of type %#x: not checked", dir, st.Type)
	}
}
