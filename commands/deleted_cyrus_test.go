package commands

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// TestRealCyrusDumpDeleted: a folder alice deleted (delete_mode: delayed)
// is dumped with her and counted in the summary, left out with
// --no-deleted, dumpable by name, and restorable under its old name with
// --into.
func TestRealCyrusDumpDeleted(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{ExtraConfig: "delete_mode: delayed"})
	lab.Populate(t)
	if _, err := lab.IMAP(t, "alice").Command("DELETE", cyruslab.Quote("INBOX.Old Stuff")); err != nil {
		t.Fatal(err)
	}
	spool := labSpool(t, lab)
	mbs, err := spool.UserMailboxes("alice")
	if err != nil {
		t.Fatal(err)
	}
	deleted := ""
	for _, e := range mbs {
		if strings.HasPrefix(e.Name, "DELETED.user.alice.Old Stuff.") {
			deleted = e.Name
		}
	}
	if deleted == "" {
		t.Fatalf("no deleted folder among %v", mbs)
	}
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"mbtool"}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stderr.String()
	}
	dir := t.TempDir()
	code, out := run("dump", "-C", lab.Conf, "--user", "alice", "-o", filepath.Join(dir, "a"))
	if code != ExitOK || !strings.Contains(out, "dumped 7 mailboxes (1 of them deleted folders, DELETED.*)") {
		t.Errorf("dump --user: exit %d\n%s", code, out)
	}
	code, out = run("dump", "-C", lab.Conf, "--user", "alice", "--no-deleted", "-o", filepath.Join(dir, "b"))
	if code != ExitOK || !strings.Contains(out, "dumped 6 mailboxes (1 deleted folders left out)") {
		t.Errorf("dump --no-deleted: exit %d\n%s", code, out)
	}
	code, out = run("dump", "-C", lab.Conf, "-o", filepath.Join(dir, "c"), deleted)
	if code != ExitOK || !strings.Contains(out, "dumped 1 mailboxes") {
		t.Errorf("dump %s: exit %d\n%s", deleted, code, out)
	}
	code, out = run("restore", "-C", lab.Conf, "--mailbox", deleted, "--into", "user.alice.Old Stuff", filepath.Join(dir, "c"))
	if code != ExitOK || !strings.Contains(out, "1 created") {
		t.Fatalf("restore --into: exit %d\n%s", code, out)
	}
	m, err := lab.IMAP(t, "alice").Examine("INBOX.Old Stuff")
	if err != nil || m.Exists != 1 {
		t.Errorf("INBOX.Old Stuff after the restore: %+v %v", m, err)
	}
}

// TestRealCyrusRestoreDeletedFolderContinues: a folder got mail after the
// dump and was then deleted (delayed delete); restored from the dump under
// its name, offline and with --server, it keeps its UIDVALIDITY but
// continues the deleted copy's numbering, so the next message does not
// get the UID the lost one had.
func TestRealCyrusRestoreDeletedFolderContinues(t *testing.T) {
	for _, server := range []bool{false, true} {
		lab := cyruslab.Start(t, cyruslab.Options{SyncPort: server, ExtraConfig: "delete_mode: delayed"})
		lab.Populate(t)
		file := filepath.Join(t.TempDir(), "alice.dlist")
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"mbtool", "dump", "-C", lab.Conf, "--user", "alice", "-o", file}, strings.NewReader(""), &stdout, &stderr); code != ExitOK {
			t.Fatalf("dump: %s", stderr.String())
		}
		c := lab.IMAP(t, "alice")
		before, err := c.Examine("INBOX.Old Stuff")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Append("INBOX.Old Stuff", nil, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), []byte("Subject: after the dump\r\n\r\nlost\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Command("DELETE", cyruslab.Quote("INBOX.Old Stuff")); err != nil {
			t.Fatal(err)
		}
		args := []string{"mbtool", "restore", "-C", lab.Conf, "--mailbox", "user.alice.Old Stuff", file}
		if server {
			t.Setenv(DefaultPasswordEnv, lab.Password)
			args = []string{"mbtool", "restore", "--server", lab.SyncAddr, "--auth-user", lab.Admin, "--mailbox", "user.alice.Old Stuff", file}
		}
		stdout.Reset()
		stderr.Reset()
		if code := Main(args, strings.NewReader(""), &stdout, &stderr); code != ExitOK {
			t.Fatalf("server %v: restore: exit %d\n%s", server, code, stderr.String())
		}
		after, err := c.Examine("INBOX.Old Stuff")
		if err != nil {
			t.Fatal(err)
		}
		if after.UIDValidity != before.UIDValidity || after.Exists != before.Exists || after.UIDNext != before.UIDNext+1 {
			t.Errorf("server %v: restored with UIDVALIDITY %d, %d messages, UIDNEXT %d; the dump had %d, %d, %d and the deleted copy UIDNEXT %d",
				server, after.UIDValidity, after.Exists, after.UIDNext, before.UIDValidity, before.Exists, before.UIDNext, before.UIDNext+1)
		}
	}
}

// TestRealCyrusRestoreDeletedSharedFolderContinues: the same for a shared
// mailbox, whose deleted copy (DELETED.shared.team.<hex>) belongs to no
// user: restored offline from an older dump, it continues the deleted
// copy's numbering too.
func TestRealCyrusRestoreDeletedSharedFolderContinues(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{ExtraConfig: "delete_mode: delayed"})
	lab.Populate(t)
	file := filepath.Join(t.TempDir(), "team.dlist")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"mbtool", "dump", "-C", lab.Conf, "-o", file, "shared.team"}, strings.NewReader(""), &stdout, &stderr); code != ExitOK {
		t.Fatalf("dump: %s", stderr.String())
	}
	c := lab.IMAP(t, lab.Admin)
	if err := c.SetACL("shared.team", lab.Admin, "lrswipkxtecda"); err != nil {
		t.Fatal(err)
	}
	before, err := c.Examine("shared.team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append("shared.team", nil, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), []byte("Subject: after the dump\r\n\r\nlost\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command("DELETE", cyruslab.Quote("shared.team")); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := Main([]string{"mbtool", "restore", "-C", lab.Conf, "--mailbox", "shared.team", file}, strings.NewReader(""), &stdout, &stderr); code != ExitOK {
		t.Fatalf("restore: exit %d\n%s", code, stderr.String())
	}
	after, err := c.Examine("shared.team")
	if err != nil {
		t.Fatal(err)
	}
	if after.UIDValidity != before.UIDValidity || after.Exists != before.Exists || after.UIDNext != before.UIDNext+1 {
		t.Errorf("restored with UIDVALIDITY %d, %d messages, UIDNEXT %d; the dump had %d, %d, %d and the deleted copy UIDNEXT %d",
			after.UIDValidity, after.Exists, after.UIDNext, before.UIDValidity, before.Exists, before.UIDNext, before.UIDNext+1)
	}
}
