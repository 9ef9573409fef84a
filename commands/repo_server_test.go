package commands

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// TestRealCyrusRepoServer backs alice up into a repository from one live
// Cyrus and restores her from it into another over the replication
// protocol (restore --repo --server), as a user would.
func TestRealCyrusRepoServer(t *testing.T) {
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	dst := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	t.Setenv(DefaultPasswordEnv, dst.Password)
	dir := filepath.Join(t.TempDir(), "repo")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"mbtool"}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, _, stderr := run("dump", "-C", src.Conf, "--user", "alice", "--user", "bob", "--repo", dir); code != ExitOK {
		t.Fatalf("dump --repo: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := run("restore", "--repo", dir, "--user", "alice", "--server", dst.SyncAddr, "--auth-user", dst.Admin, "--dry-run")
	if code != ExitOK || strings.Count(stdout, "create ") != 7 {
		t.Errorf("restore --repo --server --dry-run: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = run("restore", "--repo", dir, "--user", "alice", "--server", dst.SyncAddr, "--auth-user", dst.Admin)
	if code != ExitOK || !strings.Contains(stderr, "restored 7 mailboxes, 54 messages (7 created") {
		t.Fatalf("restore --repo --server: exit %d\n%s", code, stderr)
	}
	want := src.IMAP(t, "alice")
	got := dst.IMAP(t, "alice")
	for _, box := range []string{"INBOX", "INBOX.Sent", "INBOX.Archive.2019"} {
		w, err := want.Examine(box)
		if err != nil {
			t.Fatal(err)
		}
		g, err := got.Examine(box)
		if err != nil {
			t.Fatalf("%s on the target: %v", box, err)
		}
		if g.UIDValidity != w.UIDValidity || g.Exists != w.Exists || g.UIDNext != w.UIDNext || g.HighestModSeq != w.HighestModSeq {
			t.Errorf("%s: target %+v, source %+v", box, g, w)
		}
	}
}
