package imapcompare_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/partition"
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
		opts   cyruslab.Options                    // besides ExtraConfig
		build  func(t *testing.T, l *cyruslab.Lab) // nil: the standard content and a thread
		// threads: the users' mail is threaded by conversations.db;
		// meta: metadata files are on a metapartition.
		threads, archive, meta bool
		// cannotCarry are the sections that differ after --server
		// because replication has no words for them (docs/restore.md).
		cannotCarry map[string]bool
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
		}, meta: true},
		{name: "altnamespace+unixhierarchysep+virtdomains", config: func(*testing.T) string { return "virtdomains: userid" },
			opts: cyruslab.Options{AltNamespace: true, UnixHierarchySep: true}, build: buildAltNamespace},
		// Expunged messages are purged at once: the index keeps their
		// deletedmodseq and a new generation, which replication cannot
		// carry (QRESYNC's VANISHED (EARLIER) after --server lists nothing).
		{name: "immediate-delete-expunge", config: func(*testing.T) string { return "delete_mode: immediate\nexpunge_mode: immediate" },
			cannotCarry: map[string]bool{"alice INBOX EXAMINE": true, "mbexamine user.alice": true}},
		{name: "improved_mboxlist_sort", config: func(*testing.T) string { return "improved_mboxlist_sort: 1" }},
		// \Seen shared by all users (OPT_IMAP_SHAREDSEEN) and duplicate
		// delivery (OPT_IMAP_DUPDELIVER) for every new mailbox.
		{name: "mailbox_default_options", config: func(*testing.T) string { return "mailbox_default_options: 12" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each lab gets its own directories (tc.config makes them).
			opts := func() cyruslab.Options {
				o := tc.opts
				o.ExtraConfig = tc.config(t)
				return o
			}
			// rep is a replica the source's own sync_client pushes to.
			ro := opts()
			ro.SyncPort = true
			rep := cyruslab.Start(t, ro)
			so := opts()
			so.ExtraConfig += "\n" + syncConfig(rep)
			src := cyruslab.Start(t, so)
			if tc.build != nil {
				tc.build(t, src)
			} else {
				src.Populate(t)
				addThread(t, src)
			}
			dumped := offlineDump(t, src)
			want := take(t, src, users...)
			if tc.build != nil && (!strings.Contains(want["bob LIST"], "Other Users/alice/Archive") ||
				!strings.Contains(want["admin LIST"], "user/dave/Sent@example.com") || want["alice Archive/2019 FETCH"] == "") {
				t.Fatalf("source: the namespace is not the one built:\n%s\n%s", want["bob LIST"], want["admin LIST"])
			}

			off := cyruslab.Start(t, opts())
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
			if real.Count(restore.ActionCreate) != len(real.Mailboxes) {
				t.Errorf("offline restore: %s", plan(real))
			}
			if len(real.Problems) > 0 {
				t.Errorf("offline restore's warnings: %v", real.Problems)
			}
			if tc.archive {
				// The messages Cyrus archived on the source are archived
				// after the restore, on the archive partition, but for
				// the expunged ones kept by delayed expunge (alice's
				// INBOX 10-12): Cyrus's archiving skips expunged records
				// (docs/restore.md).
				got, want := archivedFiles(t, off), archivedFiles(t, src)
				var missing []string
				for f := range want {
					if !got[f] {
						missing = append(missing, filepath.Base(f))
					}
				}
				sort.Strings(missing)
				if len(want) < 10 || len(got)+3 != len(want) || strings.Join(missing, " ") != "10. 11. 12." {
					t.Errorf("offline: %d message files on the archive partition, source %d; not archived: %v", len(got), len(want), missing)
				}
			}
			for _, d := range imapcompare.Diff(take(t, off, users...), want) {
				if !(tc.threads && countersOnly(d)) {
					t.Errorf("offline: %s", d)
				}
			}
			if tc.threads {
				sameConversations(t, "offline", off, src, users)
			}
			if tc.meta {
				// No metadata file stayed in the data directories.
				if err := filepath.WalkDir(off.Partition, func(p string, d fs.DirEntry, err error) error {
					if err == nil && strings.HasPrefix(d.Name(), "cyrus.") {
						t.Errorf("offline: %s is on the data partition", p)
					}
					return err
				}); err != nil {
					t.Error(err)
				}
				// --replace swaps the data and the metadata directories
				// and removes the old ones.
				sum, err := restore.Run(context.Background(), openSpool(t, off), bytes.NewReader(dumped), restore.Options{Replace: true})
				if err != nil || sum.Count(restore.ActionReplace) != len(sum.Mailboxes) || len(sum.Problems) > 0 {
					t.Errorf("--replace: %v\n%s", err, plan(sum))
				}
				for _, d := range imapcompare.Diff(take(t, off, users...), want) {
					t.Errorf("offline, replaced: %s", d)
				}
			}

			srvOpts := opts()
			srvOpts.SyncPort = true
			srv := cyruslab.Start(t, srvOpts)
			restoreServer(t, srv, dumped)
			// restore --server and Cyrus's own sync_client give the same
			// view: the source's, but for what replication cannot carry.
			syncClient(t, src)
			for _, r := range []struct {
				what string
				lab  *cyruslab.Lab
			}{{"--server", srv}, {"sync_client", rep}} {
				differ := map[string]bool{}
				for _, d := range imapcompare.Diff(take(t, r.lab, users...), want) {
					differ[d.Section] = true
					if !(tc.threads && countersOnly(d)) && !tc.cannotCarry[d.Section] {
						t.Errorf("%s: %s", r.what, d)
					}
				}
				for s := range tc.cannotCarry {
					if !differ[s] {
						t.Errorf("%s: %s is the same as on the source, not as expected", r.what, s)
					}
				}
			}
			if tc.threads {
				sameConversations(t, "--server", srv, src, users)
				sameConversations(t, "sync_client", rep, src, users)
				// A reply delivered after the restore joins its thread,
				// as on the source.
				for _, l := range []*cyruslab.Lab{src, off, srv, rep} {
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

// buildAltNamespace fills a lab with altnamespace, unixhierarchysep and
// virtdomains: users in the default domain and in example.com, folders
// made by the users in their own namespace ("Archive/2019", not
// "INBOX.Archive.2019"), a folder shared with another user and a shared
// folder ("Other Users/...", "Shared Folders/..."), \Seen of another user,
// deliveries by LMTP to a user of a domain.
func buildAltNamespace(t *testing.T, lab *cyruslab.Lab) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	admin := lab.IMAP(t, cyruslab.Admin)
	for _, m := range []string{"user/alice", "user/bob", "user/dave@example.com", "user/dave/Sent@example.com", "team"} {
		must(admin.Create(m))
	}
	must(admin.SetACL("team", "anyone", "lrs"))
	must(admin.SetACL("team", "alice", "lrswipd"))
	must(admin.SetQuota("user/dave@example.com", "STORAGE 1000"))
	date := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	for i, rcpt := range []string{"alice", "bob", "dave@example.com", "dave@example.com"} {
		msg := fmt.Sprintf("From: carol@example.org\r\nTo: %s\r\nSubject: delivery %d\r\nDate: %s\r\nMessage-ID: <alt-%d@x>\r\n\r\nbody %d\r\n",
			rcpt, i, date.Format(time.RFC1123Z), i, i)
		must(lab.SendLMTP("carol@example.org", rcpt, []byte(msg)))
	}

	alice := lab.IMAP(t, "alice")
	for _, m := range []string{"Sent", "Archive", "Archive/2019", "Entw&APw-rfe", "a.dot"} {
		must(alice.Create(m))
		must(alice.Subscribe(m))
	}
	must(alice.Subscribe("Shared Folders/team"))
	must(alice.SetMetadata("Sent", "/private/specialuse", `\Sent`))
	must(alice.SetACL("Archive", "bob", "lrs"))
	for i, m := range []string{"Sent", "Archive", "Archive/2019", "Archive/2019", "a.dot", "Shared Folders/team"} {
		msg := fmt.Sprintf("From: alice@example.org\r\nSubject: in %s\r\nDate: %s\r\nMessage-ID: <alt-a%d@x>\r\n\r\nx\r\n",
			m, date.Add(time.Duration(i)*time.Hour).Format(time.RFC1123Z), i)
		_, err := alice.Append(m, []string{`\Seen`, "$Label1"}[i%2:i%2+1], date.Add(time.Duration(i)*time.Hour), []byte(msg))
		must(err)
	}
	_, err := alice.Select("INBOX")
	must(err)
	must(alice.UIDStore("1", "+FLAGS", `(\Flagged)`))

	bob := lab.IMAP(t, "bob")
	must(bob.Subscribe("Other Users/alice/Archive"))
	_, err = bob.Select("Other Users/alice/Archive")
	must(err)
	must(bob.UIDStore("1", "+FLAGS", `(\Seen)`))
	_, err = bob.Select("Shared Folders/team")
	must(err)
	must(bob.UIDStore("1", "+FLAGS", `(\Seen)`))
}

// archivedFiles returns the message files on lab's archive partition,
// relative to it.
func archivedFiles(t *testing.T, lab *cyruslab.Lab) map[string]bool {
	t.Helper()
	cfg, err := partition.LoadConfig(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	root := cfg.ArchivePartitions["default"]
	out := map[string]bool{}
	if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".") {
			out[strings.TrimPrefix(p, root)] = true
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// syncConfig is the imapd.conf of a lab whose sync_client replicates to
// rep's sync_server.
func syncConfig(rep *cyruslab.Lab) string {
	host, port, _ := strings.Cut(rep.SyncAddr, ":")
	return fmt.Sprintf("sync_host: %s\nsync_port: %s\nsync_authname: %s\nsync_password: %s\nsync_try_imap: no\n",
		host, port, rep.Admin, rep.Password)
}

// syncClient replicates every user and shared mailbox of lab with
// Cyrus's own sync_client (-u for the owners, -m for the shared
// mailboxes), to the replica lab's configuration names.
func syncClient(t *testing.T, lab *cyruslab.Lab) {
	t.Helper()
	owners, shared := map[string]bool{}, []string{}
	sp := openSpool(t, lab)
	if err := sp.AllEntries(func(e partition.Entry) error {
		if e.Deleted() || e.Intermediate() || e.Remote() {
			return nil
		}
		if o := sp.Config.NameOwner(e.Name); o != "" {
			owners[o] = true
		} else {
			shared = append(shared, e.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var users []string
	for u := range owners {
		users = append(users, u)
	}
	sort.Strings(users)
	if len(users) > 0 {
		lab.Tool(t, "sync_client", append([]string{"-u"}, users...)...)
	}
	if len(shared) > 0 {
		lab.Tool(t, "sync_client", append([]string{"-m"}, shared...)...)
	}
}
