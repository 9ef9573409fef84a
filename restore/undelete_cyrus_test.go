package restore

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/restore/msgsel"
)

// noRecent drops \Recent from a sorted flag list.
func noRecent(flags string) string {
	var out []string
	for _, f := range strings.Fields(flags) {
		if f != `\Recent` {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// byBody indexes a view's messages by body.
func byBody(v imapView) map[string]imapMessage {
	out := map[string]imapMessage{}
	for _, m := range v.Messages {
		out[string(m.Body)] = m
	}
	return out
}

// TestRealCyrusUndelete: alice expunges messages of her INBOX (purged
// with cyr_expire -X 0) and receives new mail; an additive restore brings
// the expunged ones back above her UIDNEXT with their flags and dates,
// leaves the new mail alone, and a second run adds nothing.
func TestRealCyrusUndelete(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	dumped := labDump(t, lab, "alice")
	before := view(t, lab.IMAP(t, "alice"), "INBOX")

	lab.Purge(t, "alice", "INBOX", "4:9")
	lab.Deliver(t, "alice", []byte("From: carol@example.com\r\nTo: alice@example.com\r\nSubject: after the dump\r\nMessage-ID: <new@example.com>\r\n\r\nnew mail\r\n"))
	mid := view(t, lab.IMAP(t, "alice"), "INBOX")

	// A dry run says what would be merged, and writes nothing.
	sum := labRestore(t, lab, dumped, Options{Undelete: true, Select: sel(t, "user.alice"), DryRun: true})
	if sum.Count(ActionMerge) != 1 {
		t.Fatalf("dry run: %+v", sum.Mailboxes)
	}
	sum = labRestore(t, lab, dumped, Options{Undelete: true, Select: sel(t, "user.alice")})
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
		t.Errorf("after: UIDVALIDITY %d UIDNEXT %d HIGHESTMODSEQ %d; before the merge %d %d %d",
			after.UIDValidity, after.UIDNext, after.HighestModSeq, mid.UIDValidity, mid.UIDNext, mid.HighestModSeq)
	}
	// Every message of the target is untouched (UID, flags, MODSEQ).
	compareViews(t, "the target's own messages", imapView{Messages: after.Messages[:len(mid.Messages)]}, imapView{Messages: mid.Messages})
	// The six are back above the old UIDNEXT, with flags and dates.
	orig := byBody(before)
	for _, m := range after.Messages[len(mid.Messages):] {
		o, ok := orig[string(m.Body)]
		if !ok {
			t.Errorf("UID %d: not a message of the dump", m.UID)
			continue
		}
		if o.UID < 4 || o.UID > 9 {
			t.Errorf("UID %d restored from UID %d, not one of those expunged", m.UID, o.UID)
		}
		if m.UID < mid.UIDNext || noRecent(m.Flags) != o.Flags || m.InternalDate != o.InternalDate || m.ModSeq <= mid.HighestModSeq {
			t.Errorf("restored UID %d %q %s MODSEQ %d from UID %d %q %s", m.UID, m.Flags, m.InternalDate, m.ModSeq, o.UID, o.Flags, o.InternalDate)
		}
	}
	if out := lab.Tool(t, "reconstruct", "-n", "user.alice"); strings.TrimSpace(out) != "user.alice" {
		t.Errorf("reconstruct -n: %s", out)
	}

	// Idempotent: a second run adds nothing and changes nothing.
	sum = labRestore(t, lab, dumped, Options{Undelete: true, Select: sel(t, "user.alice")})
	for _, m := range sum.Mailboxes {
		if m.Name == "user.alice" && (m.Action != ActionMerge || m.Added != 0) {
			t.Errorf("second run: %+v", m)
		}
	}
	compareViews(t, "after a second run", view(t, lab.IMAP(t, "alice"), "INBOX"), after)
}

// TestRealCyrusUndeleteSelect: message selectors restrict what is brought
// back, and a mailbox is restored under another name as a new mailbox.
func TestRealCyrusUndeleteSelect(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	dumped := labDump(t, lab, "alice")
	sent := view(t, lab.IMAP(t, "alice"), "INBOX.Sent")

	uids, err := msgsel.ParseUIDs("2:3")
	if err != nil {
		t.Fatal(err)
	}
	sum := labRestore(t, lab, dumped, Options{Select: sel(t, "user.alice.Sent"), Into: "user.alice.Restored.Sent",
		Messages: &msgsel.Filter{UIDs: uids}})
	if sum.Count(ActionCreate) != 1 || len(sum.Problems) > 0 {
		t.Fatalf("%+v %v", sum.Mailboxes, sum.Problems)
	}
	got := view(t, lab.IMAP(t, "alice"), "INBOX.Restored.Sent")
	if got.UIDValidity == sent.UIDValidity || len(got.Messages) != 2 {
		t.Fatalf("Restored.Sent: UIDVALIDITY %d (Sent has %d), %d messages", got.UIDValidity, sent.UIDValidity, len(got.Messages))
	}
	for i, m := range got.Messages {
		w := sent.Messages[i+1]
		if !bytes.Equal(m.Body, w.Body) || noRecent(m.Flags) != noRecent(w.Flags) || m.InternalDate != w.InternalDate {
			t.Errorf("message %d: UID %d %q %s, want UID %d %q %s", i, m.UID, m.Flags, m.InternalDate, w.UID, w.Flags, w.InternalDate)
		}
	}
	// The rest of Sent, added to it with --undelete: the two are there.
	sum = labRestore(t, lab, dumped, Options{Select: sel(t, "user.alice.Sent"), Into: "user.alice.Restored.Sent", Undelete: true})
	for _, m := range sum.Mailboxes {
		if m.Name == "user.alice.Restored.Sent" && (m.Action != ActionMerge || m.Added != 4 || m.AlreadyThere != 2) {
			t.Fatalf("%+v %v", m, sum.Problems)
		}
	}
	got = view(t, lab.IMAP(t, "alice"), "INBOX.Restored.Sent")
	var a, b []string
	for _, m := range got.Messages {
		a = append(a, string(m.Body))
	}
	for _, m := range sent.Messages {
		b = append(b, string(m.Body))
	}
	sort.Strings(a)
	sort.Strings(b)
	if strings.Join(a, "\x00") != strings.Join(b, "\x00") {
		t.Errorf("Restored.Sent holds %d messages, Sent %d", len(a), len(b))
	}
	c := lab.IMAP(t, "alice")
	acl, err := c.Command("MYRIGHTS", "INBOX.Restored.Sent")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(acl.Data); !strings.Contains(s, "lrswipkxtecdan") {
		t.Errorf("alice's rights on Restored.Sent: %s", s)
	}
	// Its missing parent was created empty, as Cyrus's CREATE (and so
	// restore --server) creates it.
	if r := view(t, c, "INBOX.Restored"); len(r.Messages) != 0 || r.UIDNext != 1 {
		t.Errorf("INBOX.Restored: %+v", r)
	}
	for _, n := range []string{"user.alice.Restored", "user.alice.Restored.Sent", "user.alice.Sent"} {
		if out := lab.Tool(t, "reconstruct", "-n", n); strings.TrimSpace(out) != n {
			t.Errorf("reconstruct -n %s: %s", n, out)
		}
	}
}

// TestRealCyrusUndeleteWhileDelivering: lmtpd delivers into the INBOX
// while the merge runs into it; every delivery and every restored message
// ends up in the INBOX under a UID of its own, and reconstruct finds
// nothing to fix.
func TestRealCyrusUndeleteWhileDelivering(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	dumped := labDump(t, lab, "alice")
	lab.Purge(t, "alice", "INBOX", "4:33")
	const n = 30
	errs := lab.DeliverInBackground("alice", "delivered while merging", n)
	for i := 0; i < 3; i++ {
		labRestore(t, lab, dumped, Options{Undelete: true, Select: sel(t, "user.alice")})
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
		if bytes.Contains(m.Body, []byte("delivered while merging")) {
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

// TestRealCyrusUndeleteNothingToAddRechecked: a merge that has nothing
// of the dump to add (its selectors select no message) still reads its
// target in the real run, as one with messages does, so that a target
// replaced between the reading of the dump and the merge (alice deletes
// her team folder and creates another of the name) is refused as changed,
// not reported merged.
func TestRealCyrusUndeleteNothingToAddRechecked(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	dumped := labDump(t, lab, "alice")
	uids, err := msgsel.ParseUIDs("1000")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Undelete: true, Select: sel(t, "user.alice.team"), Messages: &msgsel.Filter{UIDs: uids}}
	if sum := labRestore(t, lab, dumped, opts); sum.Applied(ActionMerge) != 1 || len(sum.Problems) > 0 {
		t.Fatalf("nothing to add, target unchanged: %+v %v", sum.Mailboxes, sum.Problems)
	}
	SetPhaseHook(func(phase string) {
		if phase != "read" {
			return
		}
		c := lab.IMAP(t, "alice")
		if _, err := c.Command("DELETE", cyruslab.Quote("INBOX.team")); err != nil {
			t.Fatal(err)
		}
		if err := c.Create("INBOX.team"); err != nil {
			t.Fatal(err)
		}
	})
	defer SetPhaseHook(nil)
	sum := labRestore(t, lab, dumped, opts)
	if sum.Applied(ActionMerge) != 0 || len(sum.Problems) != 1 || !strings.Contains(sum.Problems[0].Err.Error(), "changed in the target meanwhile") {
		t.Errorf("target replaced before the merge: %+v %v", sum.Mailboxes, sum.Problems)
	}
}
