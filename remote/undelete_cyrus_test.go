package remote

import (
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/restore/msgsel"
)

// TestRealCyrusServerUndelete: alice expunges messages (purged) and gets
// new mail; restore --server --undelete brings the expunged ones back
// above UIDNEXT with their flags and dates, leaves the rest alone, and a
// second run adds nothing. --into restores Sent, two messages of it, as a
// new mailbox.
func TestRealCyrusServerUndelete(t *testing.T) {
	t.Parallel()
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	defer noCrash(t, lab)
	lab.Populate(t)
	dumped := offlineDump(t, lab, "alice")
	before := view(t, lab.IMAP(t, "alice"), "INBOX")
	sent := view(t, lab.IMAP(t, "alice"), "INBOX.Sent")

	lab.Purge(t, "alice", "INBOX", "4:9")
	lab.Deliver(t, "alice", []byte("From: carol@example.com\r\nSubject: after the dump\r\n\r\nnew mail\r\n"))
	mid := view(t, lab.IMAP(t, "alice"), "INBOX")

	connect := dialer(lab, lab.SyncAddr)
	sum := restoreT(t, dumped, connect, RestoreOptions{Undelete: true, Select: sel(t, "user.alice")})
	var res MailboxResult
	for _, m := range sum.Mailboxes {
		if m.Name == "user.alice" {
			res = m
		}
	}
	if res.Action != ActionMerge || res.Added != 6 || !res.Applied || len(sum.Problems) > 0 {
		t.Fatalf("merge: %+v %v", res, sum.Problems)
	}
	after := view(t, lab.IMAP(t, "alice"), "INBOX")
	if after.UIDValidity != mid.UIDValidity || after.UIDNext != mid.UIDNext+6 || after.HighestModSeq <= mid.HighestModSeq {
		t.Errorf("after: %d %d %d; before the merge %d %d %d", after.UIDValidity, after.UIDNext, after.HighestModSeq,
			mid.UIDValidity, mid.UIDNext, mid.HighestModSeq)
	}
	for i, m := range mid.Messages {
		if a := after.Messages[i]; a.UID != m.UID || a.ModSeq != m.ModSeq || a.Flags != m.Flags || string(a.Body) != string(m.Body) {
			t.Errorf("UID %d changed", m.UID)
		}
	}
	orig := map[string]imapMessage{}
	for _, m := range before.Messages {
		orig[string(m.Body)] = m
	}
	for _, m := range after.Messages[len(mid.Messages):] {
		o, ok := orig[string(m.Body)]
		flags := strings.TrimSpace(strings.ReplaceAll(m.Flags, `\Recent`, ""))
		flags = strings.Join(strings.Fields(flags), " ")
		if !ok || o.UID < 4 || o.UID > 9 || flags != o.Flags || m.InternalDate != o.InternalDate || m.UID < mid.UIDNext {
			t.Errorf("restored UID %d %q %s from UID %d %q %s", m.UID, m.Flags, m.InternalDate, o.UID, o.Flags, o.InternalDate)
		}
	}
	if out := lab.Tool(t, "reconstruct", "-n", "user.alice"); strings.TrimSpace(out) != "user.alice" {
		t.Errorf("reconstruct -n: %s", out)
	}
	sum = restoreT(t, dumped, connect, RestoreOptions{Undelete: true, Select: sel(t, "user.alice")})
	for _, m := range sum.Mailboxes {
		if m.Name == "user.alice" && (m.Action != ActionMerge || m.Added != 0 || m.AlreadyThere != 33) {
			t.Errorf("second run: %+v", m)
		}
	}

	uids, _ := msgsel.ParseUIDs("2:3")
	sum = restoreT(t, dumped, connect, RestoreOptions{Select: sel(t, "user.alice.Sent"), Into: "user.alice.Restored.Sent",
		Messages: &msgsel.Filter{UIDs: uids}})
	if sum.Applied(ActionCreate) != 1 || len(sum.Problems) > 0 {
		t.Fatalf("%+v %v", sum.Mailboxes, sum.Problems)
	}
	got := view(t, lab.IMAP(t, "alice"), "INBOX.Restored.Sent")
	if got.UIDValidity == sent.UIDValidity || len(got.Messages) != 2 || string(got.Messages[0].Body) != string(sent.Messages[1].Body) {
		t.Fatalf("Restored.Sent: UIDVALIDITY %d (Sent %d), %d messages", got.UIDValidity, sent.UIDValidity, len(got.Messages))
	}
	acl, err := lab.IMAP(t, "alice").Command("MYRIGHTS", "INBOX.Restored.Sent")
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(fieldTexts(acl.Data[0].Fields), " "); !strings.Contains(s, "lrswipkxtecdan") {
		t.Errorf("alice's rights on Restored.Sent: %s", s)
	}
}

// TestRealCyrusServerUndeleteWhileDelivering: lmtpd delivers into the
// INBOX while restore --server merges into it; no delivery is lost or
// overwritten (sync_server refuses a merge that raced with one, and
// mbtool retries from a fresh state), and reconstruct finds nothing.
func TestRealCyrusServerUndeleteWhileDelivering(t *testing.T) {
	t.Parallel()
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	defer noCrash(t, lab)
	lab.Populate(t)
	dumped := offlineDump(t, lab, "alice")
	lab.Purge(t, "alice", "INBOX", "4:33")
	const n = 30
	errs := lab.DeliverInBackground("alice", "delivered while merging", n)
	connect := dialer(lab, lab.SyncAddr)
	for i := 0; i < 3; i++ {
		sum := restoreT(t, dumped, connect, RestoreOptions{Undelete: true, Select: sel(t, "user.alice")})
		if len(sum.Problems) > 0 {
			t.Errorf("run %d: %v", i, sum.Problems)
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	v := view(t, lab.IMAP(t, "alice"), "INBOX")
	seen := map[string]bool{}
	during := 0
	for _, m := range v.Messages {
		if seen[string(m.Body)] {
			t.Errorf("UID %d: a second copy", m.UID)
		}
		seen[string(m.Body)] = true
		if strings.Contains(string(m.Body), "delivered while merging") {
			during++
		}
	}
	if during != n || len(v.Messages) != 33+n {
		t.Errorf("INBOX holds %d messages, %d of them delivered during the merges; want %d and %d", len(v.Messages), during, 33+n, n)
	}
	if out := lab.Tool(t, "reconstruct", "-n", "user.alice"); strings.TrimSpace(out) != "user.alice" {
		t.Errorf("reconstruct -n: %s", out)
	}
}

// TestRealCyrusServerUndeleteNothingToAddRechecked: a merge that has
// nothing of the dump to add (its selectors select no message) still
// reads the server's mailbox in the real run, as the dry run does and as
// a merge with messages does, so that a mailbox replaced after planning
// (alice deletes her team folder and creates another of the name) is
// refused as changed, not reported merged; the offline restore does the
// same (restore's TestRealCyrusUndeleteNothingToAddRechecked).
func TestRealCyrusServerUndeleteNothingToAddRechecked(t *testing.T) {
	// Not parallel: phaseHook is the package's.
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	defer noCrash(t, lab)
	lab.Populate(t)
	dumped := offlineDump(t, lab, "alice")
	connect := dialer(lab, lab.SyncAddr)
	uids, err := msgsel.ParseUIDs("1000")
	if err != nil {
		t.Fatal(err)
	}
	opts := RestoreOptions{Undelete: true, Select: sel(t, "user.alice.team"), Messages: &msgsel.Filter{UIDs: uids}}
	if sum := restoreT(t, dumped, connect, opts); sum.Applied(ActionMerge) != 1 || len(sum.Problems) > 0 {
		t.Fatalf("nothing to add, mailbox unchanged: %+v %v", sum.Mailboxes, sum.Problems)
	}
	phaseHook = func(phase string) {
		if phase != "reserved" {
			return
		}
		c := lab.IMAP(t, "alice")
		if _, err := c.Command("DELETE", cyruslab.Quote("INBOX.team")); err != nil {
			t.Fatal(err)
		}
		if err := c.Create("INBOX.team"); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { phaseHook = nil }()
	sum := restoreT(t, dumped, connect, opts)
	if sum.Applied(ActionMerge) != 0 || len(sum.Problems) != 1 || !strings.Contains(sum.Problems[0].Err.Error(), "changed") {
		t.Errorf("mailbox replaced before the merge: %+v %v", sum.Mailboxes, sum.Problems)
	}
}
