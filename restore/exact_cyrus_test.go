package restore

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// indexDates returns, by UID, the header size, sentdate and gmtime of
// every record of mailbox name, read from its cyrus.index.
func indexDates(t *testing.T, lab *cyruslab.Lab, name string) map[uint32][3]uint32 {
	t.Helper()
	m := openLabMailbox(t, lab, name)
	defer m.Close()
	out := map[uint32][3]uint32{}
	if err := m.Records(func(r partition.Record) error {
		out[r.UID] = [3]uint32{r.HeaderSize, r.SentDate, r.GMTime}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// dateHeaders are the header blocks of TestRealCyrusExactIndex's messages:
// Date: headers Cyrus 3.6's parser refuses (so it falls back on the
// INTERNALDATE) and ones it accepts in its own way.
var dateHeaders = []string{
	"Subject: no date\r\n",
	"Date: garbage\r\n",
	"Date: Monday, 1 Jan 2024 10:00:00 +0000\r\n",
	"Date: 1 January 2024 10:00:00 +0000\r\n",
	"Date: 2024-01-01T10:00:00Z\r\n",
	"Date: Mon 1 Jan 2024 10:00:00 +0000\r\n",
	"Date: Sat, 1 Jan 1966 10:00:00 +0000\r\n",
	"Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n",
	"Date: Thu, 1 Jan 1970 00:30:00 +0100\r\n",
	"Date: \r\n",
	"Date: Tue, 2 Jan 2024 10:00:00 +0100\r\n",
	"Date: Tue, 2 Jan 2024 23:59:59 -0800\r\n",
	"Date: 2 Jan 2024\r\n",
	"Date: 2 jan 24 3.4.5 EST\r\n",
	"Date: Xyz, 31 Feb 2023 25:61:61 -0130\r\n",
	"Date: 01-Mar-99 12:00 PDT\r\n",
	"Date: 5 Mar 2024 12:00 A\r\n",
	"Date: 5 Mar 2024 12:00 0100\r\n",
	"Date: 5 Mar 2024 12:00 (GMT)\r\n",
	"Date: Tue,\r\n  2 Jan 2024\r\n\t10:00:00 +0000\r\n",
	"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nSubject: two\r\nDATE: Wed, 3 Jan 2024 11:00:00 +0000\r\n",
	"Date: 12345 Jan 2024 10:00:00 +0000\r\n",
	"Date: 9 Sep 12345 10:00:00 +0000\r\n",
}

// TestRealCyrusExactIndex builds issue 15's index cases on a real Cyrus
// (messages with every kind of Date: header, a user flag defined but
// unused in slot 0, a mailbox whose expunged messages cyr_expire purged),
// restores them offline into another, and checks each record's header
// size, sentdate and gmtime against Cyrus's own (case 1), the flag slots
// (case 6), QRESYNC's VANISHED (EARLIER) (case 5) and mbexamine's whole
// report, generation included (case 7); reconstruct finds nothing to
// change.
func TestRealCyrusExactIndex(t *testing.T) {
	src := cyruslab.Start(t, cyruslab.Options{})
	if err := src.IMAP(t, cyruslab.Admin).Create("user.alice"); err != nil {
		t.Fatal(err)
	}
	c := src.IMAP(t, "alice")
	// INTERNALDATEs around midnight, so that the fallback's day depends
	// on the time zone and not just on the date.
	base := time.Date(2023, 6, 30, 23, 30, 0, 0, time.FixedZone("", -7*3600))
	for i, h := range dateHeaders {
		msg := fmt.Sprintf("From: a@example.org\r\n%sMessage-ID: <%d@x>\r\n\r\nbody %d\r\n", h, i, i)
		if _, err := c.Append("INBOX", nil, base.Add(time.Duration(i)*25*time.Hour), []byte(msg)); err != nil {
			t.Fatalf("append %q: %v", h, err)
		}
	}
	want := indexDates(t, src, "user.alice")

	// Case 6: a flag defined and then unused in slot 0, one in use in
	// slot 1 (a restore numbering flags by first use would put it in 0).
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	for _, st := range [][3]string{{"1", "+FLAGS", "(Unused)"}, {"2", "+FLAGS", "(Used $Label2)"}, {"1", "-FLAGS", "(Unused)"}} {
		if err := c.UIDStore(st[0], st[1], st[2]); err != nil {
			t.Fatal(err)
		}
	}
	// Cases 5 and 7: a mailbox whose expunged messages Cyrus has purged
	// (cyr_expire repacks it: deletedmodseq set, generation 1).
	if err := c.Create("INBOX.Empty"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := c.Append("INBOX.Empty", nil, time.Time{}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Select("INBOX.Empty"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1:5", "+FLAGS", `(\Deleted)`); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge("1:5"); err != nil {
		t.Fatal(err)
	}
	src.Tool(t, "cyr_expire", "-X", "0", "-E", "0")
	wantVanished := vanished(t, src, "alice", "INBOX.Empty")
	if wantVanished != "1:5" {
		t.Fatalf("source: VANISHED (EARLIER) %q, want 1:5", wantVanished)
	}
	names := []string{"user.alice", "user.alice.Empty"}
	wantExamine := map[string]string{}
	wantFlags := map[string][]string{}
	for _, n := range names {
		wantExamine[n] = mbexamineAll(t, src, n)
		wantFlags[n] = headerFlags(t, src, n)
	}
	dumped := labDump(t, src, "alice")

	dst := cyruslab.Start(t, cyruslab.Options{})
	sum := labRestore(t, dst, dumped, Options{})
	if len(sum.Problems) > 0 || sum.Count(ActionCreate) != 2 {
		t.Fatalf("restore: %+v %v", sum.Mailboxes, sum.Problems)
	}
	got := indexDates(t, dst, "user.alice")
	for uid := uint32(1); uid <= uint32(len(dateHeaders)); uid++ {
		if got[uid] != want[uid] {
			t.Errorf("UID %d %q: header size, sentdate, gmtime %v, Cyrus wrote %v",
				uid, dateHeaders[uid-1], got[uid], want[uid])
		}
	}
	for _, n := range names {
		if got := headerFlags(t, dst, n); strings.Join(got, " ") != strings.Join(wantFlags[n], " ") {
			t.Errorf("%s: user flags by slot %q, source %q", n, got, wantFlags[n])
		}
		if got := mbexamineAll(t, dst, n); got != wantExamine[n] {
			t.Errorf("mbexamine %s differs:\n%s", n, firstDiff(got, wantExamine[n]))
		}
		// reconstruct finds nothing to fix.
		if out := dst.Tool(t, "reconstruct", "-n", n); strings.TrimSpace(out) != n {
			t.Errorf("reconstruct -n %s: %s", n, out)
		}
	}
	if got := vanished(t, dst, "alice", "INBOX.Empty"); got != wantVanished {
		t.Errorf("VANISHED (EARLIER) %q, source %q", got, wantVanished)
	}
}

// vanished returns what EXAMINE with QRESYNC, from UIDVALIDITY and MODSEQ
// 1, reports in VANISHED (EARLIER).
func vanished(t *testing.T, lab *cyruslab.Lab, user, mailbox string) string {
	t.Helper()
	c := lab.IMAP(t, user)
	m, err := c.Examine(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command("ENABLE", "QRESYNC"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Command("EXAMINE", cyruslab.Quote(mailbox), fmt.Sprintf("(QRESYNC (%d 1))", m.UIDValidity))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range r.Data {
		if strings.EqualFold(d.Name, "VANISHED") {
			for _, f := range d.Fields {
				if f.List == nil {
					out = append(out, f.String())
				}
			}
		}
	}
	return strings.Join(out, " ")
}

// headerFlags returns the user flags of mailbox name by slot, as its
// cyrus.header defines them.
func headerFlags(t *testing.T, lab *cyruslab.Lab, name string) []string {
	t.Helper()
	m := openLabMailbox(t, lab, name)
	defer m.Close()
	return m.Header.UserFlags
}

// openLabMailbox opens mailbox name of lab's spool; the caller closes it.
func openLabMailbox(t *testing.T, lab *cyruslab.Lab, name string) *partition.Mailbox {
	t.Helper()
	sp := openSpool(t, lab.Conf)
	e, err := sp.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sp.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mbexamineAll is mbexamine's report of name but for the path and the
// uniqueid, which differ between two copies of a mailbox: the generation
// number, deletedmodseq and every record field included.
func mbexamineAll(t *testing.T, lab *cyruslab.Lab, name string) string {
	t.Helper()
	out := lab.Tool(t, "mbexamine", name)
	out = regexp.MustCompile(`(?m)^  Path to mailbox: .*$`).ReplaceAllString(out, "")
	out = regexp.MustCompile(`(?m)^  Unique ID: .*$`).ReplaceAllString(out, "")
	return out
}
