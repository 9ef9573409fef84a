package restore

import (
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// TestMergeAfterPlace: a dump holds INBOX (merged back with
// --undelete, one message purged) and INBOX.Twice (deleted, so created
// anew), Twice holding the purged message twice. Phase one places the
// message in Twice's staged directory and remembers it (rs.lastWhere);
// phase two moves Twice into place, then the merge of INBOX links the
// message from where lastWhere says it is.
func TestMergeAfterPlace(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	c := lab.IMAP(t, "alice")
	if err := c.Create("INBOX.Twice"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := c.UIDCopy("1", "INBOX.Twice"); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	dumped := labDump(t, lab, "alice")
	c = lab.IMAP(t, "alice")
	if _, err := c.Command("DELETE", "INBOX.Twice"); err != nil {
		t.Fatal(err)
	}
	lab.Purge(t, "alice", "INBOX", "1")

	sum := labRestore(t, lab, dumped, Options{Undelete: true, Select: sel(t, "user.alice", "user.alice.Twice")})
	for _, m := range sum.Mailboxes {
		t.Logf("%s %v added %d applied %v", m.Name, m.Action, m.Added, m.Applied)
	}
	for _, p := range sum.Problems {
		t.Errorf("problem: %s: %v", p.Item, p.Err)
	}
	for _, m := range sum.Mailboxes {
		if m.Name == "user.alice" && (m.Action != ActionMerge || m.Added != 1 || !m.Applied) {
			t.Errorf("INBOX: %+v", m)
		}
	}
}
