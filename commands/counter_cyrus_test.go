package commands

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// TestRealCyrusRestoreUserCounter checks, in both modes, that with
// `conversations: yes` what a restore changes in a mailbox that stays is
// numbered above the user's modseq counter (imap/mboxname.c
// mboxname_nextmodseq), which a JMAP client's state is, and that the
// counter covers it afterwards: alice expunges two messages of her INBOX
// after the dump and changes flags in Sent many times (her counter goes
// far above her INBOX's HIGHESTMODSEQ); an --undelete brings the two
// back, and each must carry a MODSEQ above the counter read before. Then
// she expunges them again, changes more flags, and the other mode brings
// them back. A --replace of Sent from the dump follows, in each mode.
func TestRealCyrusRestoreUserCounter(t *testing.T) {
	lab, m, file := aliceLabWith(t, cyruslab.Options{ExtraConfig: "conversations: 1"})
	c := lab.IMAP(t, "alice")
	counter := func() uint64 {
		t.Helper()
		const entry = "/private/vendor/cmu/cyrus-imapd/usercounters"
		md, err := c.GetMetadata("", entry)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(md[entry]) // version highestmodseq ...
		if len(f) < 2 {
			t.Fatalf("usercounters %q", md[entry])
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// flagSent changes flags in Sent n times: the counter goes up.
	flagSent := func(n int) {
		t.Helper()
		if _, err := c.Select("INBOX.Sent"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			op := map[int]string{0: "+FLAGS", 1: "-FLAGS"}[i%2]
			if err := c.UIDStore("1", op, `(\Flagged)`); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, mode := range []string{"offline", "server"} {
		_, err := c.Select("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := c.UIDFetch("1:*", "(MODSEQ)")
		if err != nil || len(msgs) < 3 {
			t.Fatalf("alice's INBOX: %d messages, %v", len(msgs), err)
		}
		gone := fmt.Sprintf("%d,%d", msgs[0].UID, msgs[1].UID)
		if err := c.UIDStore(gone, "+FLAGS", `(\Deleted)`); err != nil {
			t.Fatal(err)
		}
		if err := c.UIDExpunge(gone); err != nil {
			t.Fatal(err)
		}
		flagSent(30)
		before := counter()
		st, err := c.Status("INBOX", "HIGHESTMODSEQ", "UIDNEXT")
		if err != nil {
			t.Fatal(err)
		}
		if st["HIGHESTMODSEQ"] >= before {
			t.Fatalf("%s: INBOX HIGHESTMODSEQ %d, counter %d: the scenario needs the counter above", mode, st["HIGHESTMODSEQ"], before)
		}
		args := []string{"--undelete", "--mailbox", "user.alice", file}
		if code, out := m.in(mode, args...); code != ExitOK || !strings.Contains(out, "1 merged") {
			t.Fatalf("%s: restore %s: exit %d\n%s", mode, strings.Join(args, " "), code, out)
		}
		if _, err := c.Select("INBOX"); err != nil {
			t.Fatal(err)
		}
		back, err := c.UIDFetch(fmt.Sprintf("%d:*", st["UIDNEXT"]), "(MODSEQ)")
		if err != nil {
			t.Fatal(err)
		}
		var top uint64
		n := 0
		for _, msg := range back {
			if msg.UID < uint32(st["UIDNEXT"]) {
				continue // 1:* names the last message when none is above
			}
			n++
			top = max(top, msg.ModSeq)
			if msg.ModSeq <= before {
				t.Errorf("%s: restored UID %d has MODSEQ %d, not above alice's counter %d: a JMAP client at that state misses it",
					mode, msg.UID, msg.ModSeq, before)
			}
		}
		if n != 2 {
			t.Fatalf("%s: %d messages restored above UID %d, want 2", mode, n, st["UIDNEXT"]-1)
		}
		after := counter()
		if after < top {
			t.Errorf("%s: alice's counter %d after the restore, below the restored MODSEQ %d", mode, after, top)
		}
		t.Logf("%s --undelete: INBOX HIGHESTMODSEQ %d, counter %d before; restored MODSEQ %d; counter %d after", mode, st["HIGHESTMODSEQ"], before, top, after)
	}
	// --replace of Sent from the dump (its flags are changed since).
	for _, mode := range []string{"offline", "server"} {
		flagSent(31) // \Flagged on UID 1, not in the dump
		// Then changes in her INBOX: the counter above Sent's HIGHESTMODSEQ.
		if _, err := c.Select("INBOX"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			op := map[int]string{0: "+FLAGS", 1: "-FLAGS"}[i%2]
			if err := c.UIDStore("1:*", op, `(\Answered)`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Command("UNSELECT"); err != nil {
			t.Fatal(err)
		}
		before := counter()
		if st, err := c.Status("INBOX.Sent", "HIGHESTMODSEQ"); err != nil || st["HIGHESTMODSEQ"] >= before {
			t.Fatalf("%s: Sent HIGHESTMODSEQ %d, counter %d (%v): the scenario needs the counter above", mode, st["HIGHESTMODSEQ"], before, err)
		}
		args := []string{"--replace", "--mailbox", "user.alice.Sent", file}
		if code, out := m.in(mode, args...); code != ExitOK {
			t.Fatalf("%s: restore %s: exit %d\n%s", mode, strings.Join(args, " "), code, out)
		}
		if _, err := c.Select("INBOX.Sent"); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.UIDFetch("1", "(MODSEQ FLAGS)")
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: Sent UID 1: %v, %v", mode, msgs, err)
		}
		if msgs[0].HasFlag(`\Flagged`) || msgs[0].ModSeq <= before {
			t.Errorf("%s: after the replace Sent UID 1 has flags %v, MODSEQ %d; want the dump's flags and a MODSEQ above the counter %d",
				mode, msgs[0].Flags, msgs[0].ModSeq, before)
		}
		after := counter()
		if after < msgs[0].ModSeq {
			t.Errorf("%s: alice's counter %d after the replace, below its MODSEQ %d", mode, after, msgs[0].ModSeq)
		}
		t.Logf("%s --replace: counter %d before; Sent UID 1 MODSEQ %d; counter %d after", mode, before, msgs[0].ModSeq, after)
	}
}
