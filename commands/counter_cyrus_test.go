package commands

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
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

// labSpool opens the lab's spool as mbtool reads it.
func labSpool(t *testing.T, lab *cyruslab.Lab) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return spool
}

// TestRealCyrusRestoreUserCounterUntouched checks, offline with
// `conversations: yes`, that alice's modseq counters file is left byte
// for byte as it was by a restore that fails (a --replace whose dump's
// trailer does not match, read to its end after the replace of her
// mailboxes was worked out: "returns an error, with the target
// unchanged") and by an --undelete that has nothing to add (a rerun: a
// JMAP client must not see a change where there is none); --server sends
// nothing then either.
func TestRealCyrusRestoreUserCounterUntouched(t *testing.T) {
	lab, m, file := aliceLabWith(t, cyruslab.Options{ExtraConfig: "conversations: 1"})
	spool := labSpool(t, lab)
	path, ok, err := spool.CountersPath("user.alice")
	if err != nil || !ok {
		t.Fatalf("alice's counters file: %v %v", ok, err)
	}
	read := func() []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// alice expunges two messages of her INBOX and flags one in Sent: a
	// --replace of either changes records, numbered above her counter.
	c := lab.IMAP(t, "alice")
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1:2", "+FLAGS", `(\Deleted)`); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge("1:2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX.Sent"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command("UNSELECT"); err != nil {
		t.Fatal(err)
	}

	// The dump with a trailer that counts one mailbox more.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tag := []byte("MBTOOL TRAILER %(MAILBOXES ")
	i := bytes.LastIndex(data, tag)
	if i < 0 {
		t.Fatal("no trailer in the dump")
	}
	j := i + len(tag) + bytes.IndexByte(data[i+len(tag):], ' ')
	n, err := strconv.Atoi(string(data[i+len(tag) : j]))
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), "trailer.dlist")
	bad := append(append(append([]byte(nil), data[:i+len(tag)]...), strconv.Itoa(n+1)...), data[j:]...)
	if err := os.WriteFile(damaged, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	before := read()
	if code, out := m.in("offline", "--replace", damaged); code != ExitFailure {
		t.Fatalf("restore --replace of a dump whose trailer does not match: exit %d, want %d\n%s", code, ExitFailure, out)
	}
	if !bytes.Equal(read(), before) {
		t.Error("a --replace that failed changed alice's counters file")
	}

	// --undelete brings the two back; a rerun adds nothing and leaves the
	// counters file as it is, in both modes.
	args := []string{"--undelete", "--mailbox", "user.alice", file}
	if code, out := m.in("offline", args...); code != ExitOK || !strings.Contains(out, "1 merged") {
		t.Fatalf("restore %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	for _, mode := range []string{"offline", "server"} {
		before := read()
		if code, out := m.in(mode, args...); code != ExitOK {
			t.Fatalf("%s: rerun of restore %s: exit %d\n%s", mode, strings.Join(args, " "), code, out)
		}
		if !bytes.Equal(read(), before) {
			t.Errorf("%s: an --undelete that added nothing changed alice's counters file", mode)
		}
	}

	// A counters file mbtool cannot read (a damaged CRC) refuses the
	// mailbox whose changes it would number, in the dry run and the real
	// run; the run goes on (exit 3), the file stays as it is.
	damagedCounters := read()
	damagedCounters[20] ^= 0x01
	if err := os.WriteFile(path, damagedCounters, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		args := []string{"--replace", file}
		if dry {
			args = append([]string{"--dry-run"}, args...)
		}
		code, out := m.in("offline", args...)
		if code != ExitPartial || !strings.Contains(out, "modseq counter cannot be read") {
			t.Errorf("restore %s with a damaged counters file: exit %d, want %d and the mailbox refused\n%s", strings.Join(args, " "), code, ExitPartial, out)
		}
		if !bytes.Equal(read(), damagedCounters) {
			t.Errorf("restore %s changed a counters file it cannot read", strings.Join(args, " "))
		}
	}
}
