package imapcompare_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/restore"
)

// restoreRun restores dumped into lab's spool, dry or not, and returns
// the summary.
func restoreRun(t *testing.T, lab *cyruslab.Lab, dumped []byte, dry bool) *restore.Summary {
	t.Helper()
	sum, err := restore.Run(context.Background(), openSpool(t, lab), bytes.NewReader(dumped), restore.Options{DryRun: dry})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// plan is a summary's action and reason per mailbox, and its problems.
func plan(sum *restore.Summary) string {
	var out []string
	for _, m := range sum.Mailboxes {
		out = append(out, fmt.Sprintf("%s %s %s", m.Name, m.Action, m.Reason))
	}
	for _, p := range sum.Problems {
		out = append(out, fmt.Sprint(p))
	}
	return strings.Join(out, "\n")
}

// TestRealCyrusConfigs runs the comparison in configurations a Cyrus 3.6
// site runs, one source lab each (the standard content): a dry run
// predicts the offline restore's refusals and warnings exactly; what
// offline restore writes is served as on the source, and so is what
// restore --server writes; where offline restore cannot do the job it
// refuses or warns, saying what to do.
func TestRealCyrusConfigs(t *testing.T) {
	users := []string{"alice", "bob"}
	for _, tc := range []struct {
		name   string
		config func(t *testing.T) string
		// refused: offline restore refuses every mailbox; threads: the
		// users' mail is threaded by conversations.db.
		refused, threads, archive bool
	}{
		{name: "conversations", config: func(*testing.T) string { return "conversations: 1" }, threads: true},
		{name: "archive", config: func(t *testing.T) string {
			dir := cyruslab.TempDir(t)
			if err := cyruslab.Chown(dir); err != nil {
				t.Fatal(err)
			}
			return "archive_enabled: 1\narchivepartition-default: " + dir
		}, archive: true},
		{name: "metapartition", config: func(t *testing.T) string {
			dir := cyruslab.TempDir(t)
			if err := cyruslab.Chown(dir); err != nil {
				t.Fatal(err)
			}
			return "metapartition-default: " + dir + "\nmetapartition_files: header index cache expunge squat annotations"
		}, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each lab gets its own directories (tc.config makes them).
			src := cyruslab.Start(t, cyruslab.Options{ExtraConfig: tc.config(t)})
			src.Populate(t)
			addThread(t, src)
			dumped := offlineDump(t, src)
			want := take(t, src, users...)

			off := cyruslab.Start(t, cyruslab.Options{ExtraConfig: tc.config(t)})
			if tc.threads {
				// Without Cyrus's ctl_conversationsdb the dry run warns,
				// for each user, what to run.
				sum, err := restore.Run(context.Background(), openSpool(t, off), bytes.NewReader(dumped),
					restore.Options{DryRun: true, CyrusBin: t.TempDir()})
				if err != nil || len(sum.Problems) != len(users) || !strings.Contains(plan(sum), "run `ctl_conversationsdb -R bob`") {
					t.Errorf("dry run without ctl_conversationsdb: %v\n%s", err, plan(sum))
				}
			}
			dry := restoreRun(t, off, dumped, true)
			real := restoreRun(t, off, dumped, false)
			if plan(dry) != plan(real) {
				t.Errorf("the dry run said\n%s\nthe restore did\n%s", plan(dry), plan(real))
			}
			switch {
			case tc.refused:
				if real.Count(restore.ActionRefuse) != len(real.Mailboxes) || len(real.Mailboxes) == 0 {
					t.Errorf("offline restore: %s", plan(real))
				}
			default:
				if real.Count(restore.ActionCreate) != len(real.Mailboxes) {
					t.Errorf("offline restore: %s", plan(real))
				}
				switch {
				case tc.archive && (len(real.Problems) != 1 || !strings.Contains(plan(real), "cyr_expire -A 7d")),
					!tc.archive && len(real.Problems) > 0:
					t.Errorf("offline restore's warnings: %v", real.Problems)
				}
				if tc.archive {
					// What the warning says to run archives what Cyrus did.
					off.Tool(t, "cyr_expire", "-A", "7d")
				}
				for _, d := range imapcompare.Diff(take(t, off, users...), want) {
					if !(tc.threads && countersOnly(d)) {
						t.Errorf("offline: %s", d)
					}
				}
				if tc.threads {
					sameConversations(t, "offline", off, src, users)
				}
			}

			srv := cyruslab.Start(t, cyruslab.Options{ExtraConfig: tc.config(t), SyncPort: true})
			restoreServer(t, srv, dumped)
			for _, d := range imapcompare.Diff(take(t, srv, users...), want) {
				if !(tc.threads && countersOnly(d)) {
					t.Errorf("--server: %s", d)
				}
			}
			if tc.threads {
				sameConversations(t, "--server", srv, src, users)
				// A reply delivered after the restore joins its thread,
				// as on the source.
				for _, l := range []*cyruslab.Lab{src, off, srv} {
					if got := replyThread(t, l); got != "joined" {
						t.Errorf("%s: a reply delivered after the restore %s", l.Dir, got)
					}
				}
			}
		})
	}
}

// countersOnly reports whether d is a difference of the user's modseq
// counters (/private/vendor/cmu/cyrus-imapd/usercounters of the server),
// which with conversations count what was done to the user's mailboxes:
// a restore's work, not the source's, after either restore, as after
// Cyrus's own replication.
func countersOnly(d imapcompare.Difference) bool {
	drop := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, "/private/vendor/cmu/cyrus-imapd/usercounters") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	return strings.HasSuffix(d.Section, " GETMETADATA server") && d.Missing == "" && drop(d.A) == drop(d.B)
}

// addThread appends threadMessages to alice's INBOX.Threads.
func addThread(t *testing.T, lab *cyruslab.Lab) {
	t.Helper()
	alice := lab.IMAP(t, "alice")
	if err := alice.Create("INBOX.Threads"); err != nil {
		t.Fatal(err)
	}
	for _, m := range threadMessages {
		if _, err := alice.Append("INBOX.Threads", nil, time.Date(2023, 7, 3, 12, 0, 0, 0, time.UTC), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// msgidLine is a message-id record of ctl_conversationsdb -d: the
// message-id, and the thread (CID) a reply naming it joins, before the
// time it was recorded.
var msgidLine = regexp.MustCompile(`(?m)^(<[^>\t]*>\t\S+ \S+) \d+$`)

// sameConversations compares the conversations databases of users on got
// and on want: as many records, and the same thread for every
// message-id. What else differs is Cyrus's bookkeeping of each server:
// the folder numbers are given in the order Cyrus first meets each folder.
func sameConversations(t *testing.T, what string, got, want *cyruslab.Lab, users []string) {
	t.Helper()
	for _, u := range users {
		g, w := got.Tool(t, "ctl_conversationsdb", "-d", u), want.Tool(t, "ctl_conversationsdb", "-d", u)
		if n, m := strings.Count(g, "\n"), strings.Count(w, "\n"); n != m || n == 0 {
			t.Errorf("%s: conversations of %s: %d records, source %d", what, u, n, m)
		}
		gm, wm := msgidLine.FindAllStringSubmatch(g, -1), msgidLine.FindAllStringSubmatch(w, -1)
		if len(wm) == 0 {
			t.Errorf("source: no message-id records for %s", u)
		}
		var a, b []string
		for _, m := range gm {
			a = append(a, m[1])
		}
		for _, m := range wm {
			b = append(b, m[1])
		}
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("%s: message-id records of %s:\n%s\nsource:\n%s", what, u, strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	}
}

// replyThread delivers a reply to the last message of threadMessages to
// alice and says whether it "joined" the thread (the same THREADID).
func replyThread(t *testing.T, lab *cyruslab.Lab) string {
	t.Helper()
	reply := "From: d@example.org\r\nSubject: Re: plans\r\nMessage-ID: <t4@x>\r\nIn-Reply-To: <t3@x>\r\n" +
		"References: <t1@x> <t2@x> <t3@x>\r\n\r\nfourth\r\n"
	if err := lab.SendLMTP("d@example.org", "alice", []byte(reply)); err != nil {
		t.Fatal(err)
	}
	c := lab.IMAP(t, "alice")
	thread := func(mailbox, msgid string) string {
		if _, err := c.Examine(mailbox); err != nil {
			t.Fatal(err)
		}
		r, err := c.Command("UID", "SEARCH", "HEADER", "Message-ID", cyruslab.Quote(msgid))
		if err != nil || len(r.Data) != 1 || len(r.Data[0].Fields) != 1 {
			t.Fatalf("search %s in %s: %v %+v", msgid, mailbox, err, r)
		}
		r, err = c.Command("UID", "FETCH", r.Data[0].Fields[0].Text, "(THREADID)")
		if err != nil || len(r.Data) != 1 {
			t.Fatalf("THREADID of %s: %v", msgid, err)
		}
		return r.Data[0].Fields[0].String()
	}
	first, reply2 := thread("INBOX.Threads", "<t1@x>"), thread("INBOX", "<t4@x>")
	first = first[strings.Index(first, "THREADID"):]
	reply2 = reply2[strings.Index(reply2, "THREADID"):]
	if first != reply2 || !strings.Contains(first, "(T") {
		return fmt.Sprintf("started a new thread: %s, the thread is %s", reply2, first)
	}
	return "joined"
}
