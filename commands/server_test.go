package commands

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// TestRealCyrusServerCLI runs dump --server and restore --server as a
// user would, between two running labs, and checks exit codes and what
// they print.
func TestRealCyrusServerCLI(t *testing.T) {
	src := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	src.Populate(t)
	dst := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	t.Setenv(DefaultPasswordEnv, src.Password)
	file := filepath.Join(t.TempDir(), "alice.dlist")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"mbtool"}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, _, stderr := run("dump", "--server", src.SyncAddr, "--auth-user", src.Admin, "--user", "alice", "-o", file)
	if code != ExitOK || !strings.Contains(stderr, "mbtool: dumped 7 mailboxes") {
		t.Fatalf("dump --server: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := run("restore", "--server", dst.SyncAddr, "--auth-user", dst.Admin, "--dry-run", file)
	if code != ExitOK || strings.Count(stdout, "create ") != 7 || !strings.Contains(stderr, "would restore 7 mailboxes") {
		t.Errorf("restore --server --dry-run: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = run("restore", "--server", dst.SyncAddr, "--auth-user", dst.Admin, file)
	if code != ExitOK || !strings.Contains(stderr, "restored 7 mailboxes, 54 messages (7 created") {
		t.Errorf("restore --server: exit %d\n%s", code, stderr)
	}
	// Again: everything is there already.
	code, _, stderr = run("restore", "--server", dst.SyncAddr, "--auth-user", dst.Admin, file)
	if code != ExitOK || !strings.Contains(stderr, "7 already present") {
		t.Errorf("restore --server again: exit %d\n%s", code, stderr)
	}
	// A changed mailbox is refused (exit 3) unless --replace.
	c := dst.IMAP(t, "alice")
	if _, err := c.Select("INBOX.Sent"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run("restore", "--server", dst.SyncAddr, "--auth-user", dst.Admin, "--mailbox", "user.alice.Sent", file)
	if code != ExitPartial || !strings.Contains(stderr, "user.alice.Sent: refused: differs from the dump: 1 message has other flags or annotations in the target (use --replace to replace it)") {
		t.Errorf("restore over a changed mailbox: exit %d\n%s", code, stderr)
	}
	code, _, stderr = run("restore", "--server", dst.SyncAddr, "--auth-user", dst.Admin, "--mailbox", "user.alice.Sent", "--replace", file)
	if code != ExitOK || !strings.Contains(stderr, "1 replaced") {
		t.Errorf("restore --replace: exit %d\n%s", code, stderr)
	}
	// A login that is not an admin, and a wrong password.
	t.Setenv(DefaultPasswordEnv, "wrong")
	code, _, stderr = run("restore", "--server", dst.SyncAddr, "--auth-user", dst.Admin, file)
	if code != ExitFailure || !strings.Contains(stderr, "authentication failed") || !strings.Contains(stderr, "mbtool: hint: check --auth-user") {
		t.Errorf("wrong password: exit %d\n%s", code, stderr)
	}
}
