package commands

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// A live Cyrus deletes one of alice's folders and renames another over
// IMAP while a dump of alice is under way (blocked writing her INBOX to a
// pipe): both are reported by name, the rest is dumped, exit 3.
func faultDumpCyrusDeletesRenames(t *testing.T) []faultRow {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	c := lab.IMAP(t, "alice")

	p, out := startBlockedDump(t, lab.Conf, "--user", "alice")
	if _, err := c.Command("DELETE", cyruslab.Quote("INBOX.Old Stuff")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command("RENAME", cyruslab.Quote("INBOX.Sent"), cyruslab.Quote("INBOX.Sent Items")); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	code, stderr := p.wait(time.Minute)
	warn := linesWith(stderr, "mbtool: warning:")
	if code != ExitPartial || len(warn) != 2 || !strings.Contains(warn[0], "user.alice.Old Stuff") || !strings.Contains(warn[1], "user.alice.Sent") {
		t.Errorf("mailboxes deleted and renamed mid-dump: exit %d, stderr:\n%s", code, stderr)
	}
	_, boxes, err := dumpCounts(strings.NewReader(string(data)))
	if err != nil || len(boxes) != 5 {
		t.Errorf("dump: %d mailboxes %v, %v", len(boxes), boxes, err)
	}
	dirs := map[string]string{filepath.Clean(lab.Dir): "$SPOOL"}
	return []faultRow{{
		Fault:   "live: Cyrus deletes one folder and renames another (IMAP DELETE, RENAME) while the dump is in the first mailbox",
		Command: "mbtool dump --user alice -o -",
		Exit:    code, Said: sanitize(strings.Join(warn, "; "), dirs),
		State: "dump complete and verified with the other 5 mailboxes",
	}}
}
