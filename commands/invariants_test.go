package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// restoreModes runs the same restore offline (-C the lab's imapd.conf)
// and with --server (the lab's sync_server), and returns each one's exit
// status and output, the run time replaced by "…".
type restoreModes struct {
	t   *testing.T
	lab *cyruslab.Lab
}

var tookRE = regexp.MustCompile(` in [0-9.]+(µs|ms|s|m[0-9.]+s)\b`)

func (m restoreModes) run(args ...string) (code int, out string) {
	var stdout, stderr bytes.Buffer
	code = Main(append([]string{"mbtool"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, tookRE.ReplaceAllString(stdout.String()+stderr.String(), " in …")
}

// both runs `restore ARGS` in both modes and fails the test unless they
// exit with the same status and print the same; it returns them.
func (m restoreModes) both(args ...string) (int, string) {
	m.t.Helper()
	offline := append([]string{"restore", "-C", m.lab.Conf}, args...)
	server := append([]string{"restore", "--server", m.lab.SyncAddr, "--auth-user", m.lab.Admin}, args...)
	c1, o1 := m.run(offline...)
	c2, o2 := m.run(server...)
	if c1 != c2 || o1 != o2 {
		m.t.Errorf("restore %s: offline and --server differ:\noffline: exit %d\n%s--server: exit %d\n%s",
			strings.Join(args, " "), c1, o1, c2, o2)
	}
	return c1, o1
}

// TestRealCyrusRestoreIdentity checks, in both modes against one running
// Cyrus, that a mailbox of the dump that exists in the target is "already
// present" only when identical, and is otherwise refused with the
// difference in words and exit 3; offline, a damaged message file in the
// target is a difference too.
func TestRealCyrusRestoreIdentity(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	lab.Populate(t)
	t.Setenv(DefaultPasswordEnv, lab.Password)
	m := restoreModes{t: t, lab: lab}
	file := filepath.Join(t.TempDir(), "alice.dlist")
	if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "-o", file); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}

	// Nothing changed: every mailbox is already present, in both modes.
	code, out := m.both(file)
	if code != ExitOK || !strings.Contains(out, "(0 created, 0 replaced, 0 merged, 0 refused, 7 already present, 0 skipped)") {
		t.Fatalf("rerun into the source: exit %d\n%s", code, out)
	}
	code, out = m.both("--dry-run", file)
	if code != ExitOK || strings.Count(out, "keep    user.alice") != 7 || !strings.Contains(out, "already present, identical to the dump's") {
		t.Errorf("dry run into the source: exit %d\n%s", code, out)
	}

	// alice receives a message, flags one in Sent, expunges one in Trash.
	lab.Deliver(t, "alice", []byte("From: carol@example.org\r\nSubject: after the dump\r\n\r\nnew\r\n"))
	c := lab.IMAP(t, "alice")
	if _, err := c.Select("INBOX.Sent"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1:2", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatal(err)
	}
	code, out = m.both(file)
	for _, want := range []string{
		"mbtool: warning: user.alice: refused: differs from the dump: 1 in the target is not in the dump (use --replace to replace it)\n",
		"mbtool: warning: user.alice.Sent: refused: differs from the dump: 2 messages have other flags or annotations in the target (use --replace to replace it)\n",
		"(0 created, 0 replaced, 0 merged, 2 refused, 5 already present, 0 skipped)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after changes: missing %q in\n%s", want, out)
		}
	}
	if code != ExitPartial {
		t.Errorf("after changes: exit %d, want %d", code, ExitPartial)
	}
	// The dry run says the same, mailbox by mailbox.
	code, out = m.both("--dry-run", "--mailbox", "user.alice", file)
	if code != ExitPartial || !strings.Contains(out, "refuse  user.alice: differs from the dump: 1 in the target is not in the dump") {
		t.Errorf("dry run after changes: exit %d\n%s", code, out)
	}

	// Offline, a message file that rotted in the target is a difference.
	const drafts = "user.alice.Entw&APw-rfe"
	code, out = m.run("restore", "-C", lab.Conf, "--mailbox", drafts, file)
	if code != ExitOK {
		t.Fatalf("drafts before the damage: exit %d\n%s", code, out)
	}
	damageOneMessage(t, lab, drafts)
	code, out = m.run("restore", "-C", lab.Conf, "--mailbox", drafts, file)
	if code != ExitPartial || !strings.Contains(out, drafts+": refused: differs from the dump: 1 message file in the target is missing or damaged") {
		t.Errorf("damaged file: exit %d\n%s", code, out)
	}
}

// damageOneMessage flips a byte in message file UID 1 of mailbox name in
// the lab's spool.
func damageOneMessage(t *testing.T, lab *cyruslab.Lab, name string) {
	t.Helper()
	spool, err := openSpoolOf(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	e, err := spool.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := spool.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "1.")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
