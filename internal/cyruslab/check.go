package cyruslab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// Listing returns a checksum listing of the tree at dir, one line per
// entry: path relative to dir, type and mode, owner, and the SHA-256 of a
// file's content or a symlink's target. Comparing two listings shows any
// change at all below dir.
func Listing(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += " " + hex.EncodeToString(h.Sum(nil))
		}
		out = append(out, line)
		return nil
	})
	slices.Sort(out)
	return out, err
}

// CheckServes checks that Cyrus serves every mailbox of users: each logs
// in, lists its mailboxes and EXAMINEs every selectable one, and
// `reconstruct -n` (report, change nothing) of each of the user's own
// mailboxes names the mailbox and reports nothing else. It expects the
// lab's namespace (altnamespace and unixhierarchysep off). It returns how
// many mailboxes were examined.
func (l *Lab) CheckServes(t testing.TB, users ...string) int {
	t.Helper()
	n := 0
	for _, u := range users {
		c, err := l.Login(u)
		if err != nil {
			t.Errorf("LOGIN %s: %v", u, err)
			continue
		}
		list, err := c.List("", "*")
		if err != nil {
			t.Errorf("%s: LIST: %v", u, err)
		}
		for _, e := range list {
			if slices.Contains(e.Attrs, `\Noselect`) || slices.Contains(e.Attrs, `\NonExistent`) {
				continue
			}
			if _, err := c.Examine(e.Name); err != nil {
				t.Errorf("%s: EXAMINE %s: %v", u, e.Name, err)
			}
			n++
			if e.Name != "INBOX" && !strings.HasPrefix(e.Name, "INBOX.") {
				continue
			}
			name := "user." + u + strings.TrimPrefix(e.Name, "INBOX")
			out, err := l.RunTool(nil, "reconstruct", "-n", name)
			if err != nil {
				t.Errorf("reconstruct -n %s: %v", name, err)
			} else if s := strings.TrimSpace(out); s != name {
				t.Errorf("reconstruct -n %s reports:\n%s", name, s)
			}
		}
		c.Close()
	}
	return n
}
