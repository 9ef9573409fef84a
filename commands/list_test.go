package commands

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/fixtures"
)

// TestListDump lists a dump of the sample spool without a configuration:
// its users, one user's mailboxes, a folder's messages with what their
// headers say, as text and as JSON lines.
func TestListDump(t *testing.T) {
	dump := sampleDump(t, t.TempDir(), "all.dlist", "alice", "bob")

	code, out, stderr := run(t, "list", dump)
	if code != ExitOK || !regexp.MustCompile(`(?m)^alice +7 +54 +2\.2 MiB$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^bob +1 +3 +2\.7 KiB$`).MatchString(out) {
		t.Errorf("users: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = run(t, "ls", "--user", "alice", dump)
	if code != ExitOK || !regexp.MustCompile(`(?m)^user\.alice\.Entw&APw-rfe +INBOX/Entwürfe +3 +1\.8 KiB +\d+ +4 *$`).MatchString(out) ||
		strings.Count(out, "\n") != 8 {
		t.Errorf("mailboxes: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "list", dump, "--mailbox", "alice/Entwürfe", "--subject", "draft 1")
	if code != ExitOK || !regexp.MustCompile(`(?m)^user\.alice\.Entw&APw-rfe +2 +2024-05-02 10:00:00Z +641 +\\Draft +alice@example\.org +Draft 1 +<lab-81@example\.org>$`).MatchString(out) ||
		strings.Count(out, "\n") != 2 {
		t.Errorf("messages: exit %d\n%s", code, out)
	}

	code, out, stderr = run(t, "list", "--json", "--user", "alice", "--mailbox", "INBOX", "--message-id", "lab-81@example.org", "--message-id", "<nosuch@x>", dump)
	if code != ExitOK || strings.Count(out, "\n") != 0 && len(jsonLines(t, out)) != 0 {
		t.Fatalf("json: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = run(t, "list", "--json", "--mailbox", "user.alice.*", "--since", "2024-05-02", "--before", "2024-05-03", dump)
	rows := jsonLines(t, out)
	if code != ExitOK || len(rows) != 1 || rows[0]["kind"] != "message" || rows[0]["message_id"] != "<lab-81@example.org>" ||
		rows[0]["uid"] != 2.0 || rows[0]["from"] != "alice@example.org" {
		t.Errorf("json messages: exit %d\n%s", code, out)
	}
	var outcome map[string]any
	if err := json.Unmarshal([]byte(stderr), &outcome); err != nil || outcome["ok"] != true || outcome["messages"] != 1.0 {
		t.Errorf("outcome on stderr: %v\n%s", err, stderr)
	}
	code, out, _ = run(t, "list", "--json", "-u", "bob", dump)
	rows = jsonLines(t, out)
	if code != ExitOK || len(rows) != 1 || rows[0]["mailbox"] != "user.bob" || rows[0]["folder"] != "INBOX" || rows[0]["uidnext"] != 4.0 {
		t.Errorf("json mailboxes: exit %d\n%s", code, out)
	}
}

// TestSelectorTypo: a --mailbox or --user that matches nothing in the dump
// exits 2 naming the nearest names, in list, offline restore and restore
// --server (which never connects: the address is closed).
func TestSelectorTypo(t *testing.T) {
	dump := sampleDump(t, t.TempDir(), "all.dlist", "alice", "bob")
	conf := fixtures.UnpackT(t)
	before := spoolSum(t, filepath.Dir(conf))
	t.Setenv("MBTOOL_PASSWORD", "secret")
	for _, args := range [][]string{
		{"list", "--mailbox", "user.alice.Sentx", dump},
		{"restore", "-C", conf, "--mailbox", "user.alice.Sentx", dump},
		{"restore", "-C", conf, "--dry-run", "--mailbox", "user.alice.Sentx", dump},
		{"restore", "--server", "127.0.0.1:1", "--mailbox", "user.alice.Sentx", dump},
	} {
		code, _, stderr := run(t, args...)
		if code != ExitUsage || !strings.Contains(stderr, "error: --mailbox user.alice.Sentx matches no mailbox in the dump (nearest: user.alice.Sent, ") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	code, _, stderr := run(t, "restore", "-C", conf, "--user", "alcie", dump)
	if code != ExitUsage || !strings.Contains(stderr, "--user alcie matches no user's mailbox in the dump (nearest: alice, ") {
		t.Errorf("--user typo: exit %d\n%s", code, stderr)
	}
	if after := spoolSum(t, filepath.Dir(conf)); after != before {
		t.Errorf("the target changed:\n%s", diffLines(before, after))
	}
}

// TestSelectorForms: Entwürfe, alice/Entwürfe, INBOX.Entw&APw-rfe with
// --user and user.alice.Entw&APw-rfe select the same one mailbox for
// restore; list shows that same mailbox.
func TestSelectorForms(t *testing.T) {
	dump := sampleDump(t, t.TempDir(), "all.dlist", "alice", "bob")
	conf := fixtures.UnpackT(t)
	for _, sel := range [][]string{
		{"--user", "alice", "--mailbox", "Entwürfe"},
		{"--mailbox", "alice/Entwürfe"},
		{"--user", "alice", "--mailbox", "INBOX.Entw&APw-rfe"},
		{"--mailbox", "user.alice.Entw&APw-rfe"},
		{"--mailbox", "user/alice/Entwürfe"},
	} {
		code, out, stderr := run(t, append(append([]string{"restore", "-C", conf, "--dry-run"}, sel...), dump)...)
		var chosen []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, "skip ") {
				chosen = append(chosen, l)
			}
		}
		if code != ExitOK || len(chosen) != 1 || !strings.Contains(chosen[0], " user.alice.Entw&APw-rfe: ") || strings.Count(out, "\n") != 8 {
			t.Errorf("%v: exit %d, selected %q\n%s", sel, code, chosen, stderr)
		}
		code, out, _ = run(t, append(append([]string{"list"}, sel...), dump)...)
		if code != ExitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, "\nuser.alice.Entw&APw-rfe ") {
			t.Errorf("list %v: exit %d\n%s", sel, code, out)
		}
	}
	// The same for Sent, in three forms, for list and restore.
	for _, sel := range []string{"alice/Sent", "user.alice.Sent", "alice.Sent"} {
		code, out, _ := run(t, "list", "--mailbox", sel, dump)
		if code != ExitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, "\nuser.alice.Sent ") {
			t.Errorf("list --mailbox %s: exit %d\n%s", sel, code, out)
		}
		code, out, stderr := run(t, "restore", "-C", conf, "--dry-run", "--mailbox", sel, dump)
		var chosen []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, "skip ") {
				chosen = append(chosen, l)
			}
		}
		if code != ExitOK || len(chosen) != 1 || !strings.Contains(chosen[0], " user.alice.Sent: ") {
			t.Errorf("restore --mailbox %s: exit %d, selected %q\n%s", sel, code, chosen, stderr)
		}
	}
}
