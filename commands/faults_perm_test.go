package commands

import (
	"bytes"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures"
)

// unprivileged returns the credentials of the user nobody and a fresh 0755
// directory it can reach, holding a copy of the mbtool binary; it skips
// the test when not running as root (then permissions are tested as they
// are) or when there is no such user.
func unprivileged(t *testing.T) (*syscall.Credential, string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run mbtool as the user nobody")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "mbtool-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "mbtool")
	b, err := os.ReadFile(mbtoolPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, dir, exe
}

// Run as an unprivileged user on a copy of the spool it can read, except
// for one mailbox directory (0700, root's) or one message file (0600):
// the mailbox or message is reported by name, the rest dumped, exit 3.
func faultDumpPermissionDenied(t *testing.T) []faultRow {
	cred, dir, exe := unprivileged(t)
	var rows []faultRow
	for _, tc := range []struct {
		what  string
		fault string
		lock  func(conf string) string // makes something unreadable; returns the mailbox
		boxes int
	}{
		{"directory", "a mailbox directory the dumping user may not read (0700, another owner)", func(conf string) string {
			d := mailboxDir(t, conf, "user.alice.Sent")
			if err := os.Chmod(d, 0o700); err != nil {
				t.Fatal(err)
			}
			return "user.alice.Sent"
		}, 6},
		{"file", "a message file the dumping user may not read (0600, another owner)", func(conf string) string {
			p, _, _ := messageFile(t, conf, "user.alice.Archive.2019")
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return "user.alice.Archive.2019"
		}, 7},
	} {
		conf, err := fixtures.Unpack(filepath.Join(dir, "spool-"+tc.what))
		if err != nil {
			t.Fatal(err)
		}
		// The dumping user takes Cyrus's shared locks, so it needs to open
		// (and create) lock files: as a Cyrus admin user would.
		run := filepath.Join(filepath.Dir(conf), "run")
		filepath.Walk(run, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				err = os.Chown(p, int(cred.Uid), int(cred.Gid))
			}
			return err
		})
		box := tc.lock(conf)
		dirs := map[string]string{filepath.Dir(conf): "$SPOOL"}
		var out bytes.Buffer
		p := startExe(t, exe, procOptions{stdout: &out, cred: cred}, "dump", "-C", conf, "-q", "--user", "alice", "-o", "-")
		code, stderr := p.wait(time.Minute)
		warn := linesWith(stderr, "mbtool: warning:")
		if code != ExitPartial || len(warn) != 1 || !strings.Contains(warn[0], box) || !strings.Contains(warn[0], "permission denied") {
			t.Errorf("%s: exit %d, stderr:\n%s", tc.what, code, stderr)
		}
		_, boxes, err := dumpCounts(io.Reader(&out))
		if err != nil || len(boxes) != tc.boxes {
			t.Errorf("%s: dump has %d mailboxes, want %d (%v)", tc.what, len(boxes), tc.boxes, err)
		}
		rows = append(rows, faultRow{
			Fault:   tc.fault,
			Command: "mbtool dump --user alice -o - (as nobody)",
			Exit:    code, Said: sanitize(firstOr(warn), dirs),
			State: "dump complete with " + strconv.Itoa(len(boxes)) + " of 7 mailboxes",
		})
	}
	return rows
}
