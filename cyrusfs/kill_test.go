package cyrusfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// envChild makes the test binary run work (below) on the root it names
// and exit.
const envChild = "MBTOOL_CYRUSFS_TEST_CHILD"

func TestMain(m *testing.M) {
	if root := os.Getenv(envChild); root != "" {
		if err := work(root); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// kid is the owner work gives everything: nobody, when running as root.
var kid = Owner{UID: 65534, GID: 65534}

// work does one of everything the package does, idempotently, as a
// restore or a rerun of it would: directories, a new file, a replaced
// file, a created-if-missing file, a link and a rename.
func work(root string) error {
	t := NewTree(root)
	// A staging directory as restore makes one, and removes a dead run's.
	rd, err := t.OpenDir(root)
	if err != nil {
		return err
	}
	defer rd.Close()
	ents, _ := rd.ReadDir()
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".stage.") {
			rd.RemoveAll(e.Name())
		}
	}
	sd, err := rd.MkdirPrivate(".stage.")
	if err != nil {
		return err
	}
	defer sd.Close()
	d, err := t.MkdirAll(filepath.Join(root, "uuid", "a", "b"), kid)
	if err != nil {
		return err
	}
	defer d.Close()
	// A mailbox built in the private staging directory, under its final
	// names there, and moved into place unless a run did; then the
	// staging directory goes, as at the end of a restore.
	if _, err := d.Lstat("box"); errors.Is(err, fs.ErrNotExist) {
		box, err := sd.Mkdir("box", kid)
		if err != nil {
			return err
		}
		nf, err := box.NewFile("cyrus.index", kid, 0o600)
		if err == nil {
			_, err = nf.Write([]byte("index"))
			if err == nil {
				err = nf.Link(false)
			}
		}
		box.Close()
		if err == nil {
			err = sd.RenameNoReplace("box", d, "box")
		}
		if err != nil {
			return err
		}
	}
	if err := rd.RemoveAll(filepath.Base(sd.Path())); err != nil {
		return err
	}
	if f, err := d.Create("1.", kid, 0o600); err == nil {
		f.WriteString("message")
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, err := d.Lstat("2."); errors.Is(err, fs.ErrNotExist) {
		if _, err := d.LinkOrCopy("1.", d, "2.", kid, nil); err != nil {
			return err
		}
	}
	if err := t.Ensure(filepath.Join(root, "lock", "x", "name.lock"), Inherit); err != nil {
		return err
	}
	if err := d.Replace("db", kid, 0o600, func(f *os.File) error {
		_, err := f.WriteString("new")
		return err
	}); err != nil {
		return err
	}
	if _, err := d.Lstat("new"); errors.Is(err, fs.ErrNotExist) {
		if f, err := d.Create("tmp", kid, 0o600); err == nil {
			f.Close()
		}
		return d.RenameNoReplace("tmp", d, "new")
	}
	return nil
}

// TestKillAtEveryStep runs work in a subprocess killed (SIGKILL) at each
// of its steps in turn, then reruns it: the rerun completes, and nothing
// is left with the wrong owner or mode or under a temporary name.
func TestKillAtEveryStep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	run := func(root, killAt string) error {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"="+root, EnvKillAt+"="+killAt)
		out, err := cmd.CombinedOutput()
		if err != nil && len(out) > 0 {
			err = fmt.Errorf("%w: %s", err, out)
		}
		return err
	}
	points := 0
	for n := 1; ; n++ {
		root := t.TempDir()
		// uuid/ exists, as in a partition that has mailboxes: nothing
		// else is made in the root but the staging directory.
		for _, d := range []string{root, filepath.Join(root, "uuid"), filepath.Join(root, "lock")} {
			os.Mkdir(d, 0o700)
			if err := os.Chown(d, kid.UID, kid.GID); err != nil {
				t.Fatal(err)
			}
		}
		err := run(root, fmt.Sprint(n))
		if err == nil {
			break
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
			t.Fatalf("step %d: %v", n, err)
		}
		points++
		if err := run(root, "0"); err != nil {
			t.Fatalf("rerun after a kill at step %d: %v", n, err)
		}
		filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if p == root {
				return nil
			}
			fi, _ := e.Info()
			st := fi.Sys().(*syscall.Stat_t)
			perm := fi.Mode().Perm()
			if int(st.Uid) != kid.UID || !(perm == 0o600 || perm == 0o700) {
				t.Errorf("kill at step %d: %s: owner %d mode %v", n, p, st.Uid, fi.Mode())
			}
			if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasSuffix(e.Name(), ".NEW") {
				t.Errorf("kill at step %d: %s left", n, p)
			}
			return nil
		})
	}
	if points < 20 {
		t.Errorf("only %d steps", points)
	}
	t.Logf("%d steps", points)
}
