package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// summarize renders findings as sorted "kind mailbox UID" lines, for
// comparing with what a test expects.
func summarize(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %d", f.Kind, f.Mailbox, f.UID))
	}
	sort.Strings(out)
	return out
}

// messagePath returns the path of the message file of uid in mailbox.
func messagePath(t *testing.T, sp *partition.Spool, mailbox string, uid uint32) string {
	t.Helper()
	e, err := sp.Lookup(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sp.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path := ""
	err = m.Records(func(r partition.Record) error {
		if r.UID == uid {
			path = m.MessagePath(r)
		}
		return nil
	})
	if err != nil || path == "" {
		t.Fatalf("%s UID %d: no message file (%v)", mailbox, uid, err)
	}
	return path
}

// flipFile changes one byte of a file in place, keeping its size, owner
// and modification time: damage that no metadata shows.
func flipFile(t *testing.T, path string, at int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(at)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, int64(at)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// TestAgainstFixture compares dumps of the bundled spool with the spool
// itself, after changes made behind Cyrus's back.
func TestAgainstFixture(t *testing.T) {
	sp := openFixture(t)
	d := dumpSpool(t, sp, false, "alice", "bob")
	res := run(t, bytes.NewReader(d), Options{Spool: sp})
	if res.err != nil || !res.sum.OK() {
		t.Fatalf("unchanged spool: %v", res)
	}
	if res.sum.LiveMailboxes != 8 || res.sum.LiveFiles != 57 {
		// 60 records, 3 of them expunged (alice's INBOX 10-12).
		t.Errorf("compared %d mailboxes and %d files, want 8 and 57", res.sum.LiveMailboxes, res.sum.LiveFiles)
	}

	edits := []struct {
		name string
		edit func(l *dlist.Line) *dlist.Line
		want []string
	}{
		{"mailbox not dumped", func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "MAILBOX" && l.Value.Get("MBOXNAME").String() == "user.alice.Sent" {
				return nil
			}
			return l
		}, []string{"mailbox-new user.alice.Sent 0"}},
		{"mailbox renamed", func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "MAILBOX" && l.Value.Get("MBOXNAME").String() == "user.alice.Sent" {
				set(l.Value, "MBOXNAME", dlist.NewAtom("user.alice.Gone"))
			}
			return l
		}, []string{"mailbox-missing user.alice.Gone 0", "mailbox-new user.alice.Sent 0"}},
		{"uidvalidity", func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "MAILBOX" && l.Value.Get("MBOXNAME").String() == "user.bob" {
				set(l.Value, "UIDVALIDITY", dlist.NewNum(7))
			}
			return l
		}, []string{"uidvalidity user.bob 0"}},
		{"record changed", func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "MAILBOX" && l.Value.Get("MBOXNAME").String() == "user.bob" {
				records(l, func(r *dlist.Value) {
					switch r.Get("UID").String() {
					case "1":
						set(r, "MODSEQ", dlist.NewNum(1))
					case "2":
						set(r, "GUID", dlist.NewAtom(strings.Repeat("0f", 20)))
					}
				})
				// Drop UID 3: the live one is then "added".
				rs := l.Value.Get("RECORD")
				rs.Children = rs.Children[:2]
			}
			return l
		}, []string{"changed user.bob 1", "crc user.bob 0", "crc user.bob 0", "guid-changed user.bob 2",
			"message-added user.bob 3", "no-message user.bob 2"}},
	}
	for _, e := range edits {
		res := run(t, bytes.NewReader(rewrite(t, d, e.edit)), Options{Spool: sp})
		if res.err != nil {
			t.Fatalf("%s: %v", e.name, res.err)
		}
		if got := summarize(res.findings); fmt.Sprint(got) != fmt.Sprint(e.want) {
			t.Errorf("%s: findings %q, want %q\n%v", e.name, got, e.want, res)
		}
	}

	// Damage on disk: one file's bytes, another file gone.
	flipFile(t, messagePath(t, sp, "user.alice.Archive.2019", 3), 100)
	gone := messagePath(t, sp, "user.bob", 2)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	res = run(t, bytes.NewReader(d), Options{Spool: sp})
	want := []string{"bit-rot user.alice.Archive.2019 3", "file-missing user.bob 2"}
	if got := summarize(res.findings); res.err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("damaged files: findings %q, want %q\n%v", got, want, res)
	}
	for _, f := range res.findings {
		if f.Path == "" || f.Offset <= 0 || f.GUID.IsNull() {
			t.Errorf("finding %v lacks its path, offset or GUID", f)
		}
	}
}

// TestAgainstCyrus dumps a real, running Cyrus, changes it through Cyrus
// (a delivery, an expunge, a flag) and behind its back (a message file's
// bytes), and checks that verify --against reports exactly those changes.
func TestAgainstCyrus(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	cfg, err := partition.LoadConfig(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := dumpSpool(t, sp, true, "alice", "bob")
	if res := run(t, bytes.NewReader(d), Options{Spool: sp}); res.err != nil || !res.sum.OK() {
		t.Fatalf("right after the dump: %v", res)
	}

	msg := "From: carol@example.org\r\nTo: alice@example.org\r\nSubject: after the dump\r\n" +
		"Date: Fri, 28 Nov 2025 10:00:00 +0000\r\nMessage-ID: <after@example.org>\r\n\r\nnew\r\n"
	lab.Deliver(t, "alice", []byte(msg)) // INBOX UID 37
	c := lab.IMAP(t, "alice")
	if _, err := c.Select("INBOX.Sent"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("2", "+FLAGS", `(\Deleted)`); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge("2"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("4", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatal(err)
	}
	c.Close()
	flipFile(t, messagePath(t, sp, "user.bob", 1), 50)

	start := time.Now()
	res := run(t, bytes.NewReader(d), Options{Spool: sp})
	t.Logf("verify --against took %v: %+v", time.Since(start), res.sum)
	want := []string{
		"bit-rot user.bob 1",
		"changed user.alice.Sent 4",
		"message-added user.alice 37",
		"message-missing user.alice.Sent 2",
	}
	if got := summarize(res.findings); res.err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("findings %q, want %q\n%v", got, want, res)
	}
	for _, f := range res.findings {
		t.Logf("%v", f)
	}
}

// A live mailbox's directory replaced by the user Cyrus runs as with a
// symlink to a directory of the very same files outside the partition:
// verify --against does not read through it (it would find the files
// intact) but reports the mailbox as one it cannot compare, naming the
// symlink.
func TestAgainstPlantedMailboxDirectory(t *testing.T) {
	sp := openFixture(t)
	d := dumpSpool(t, sp, false, "alice")
	e, err := sp.Lookup("user.alice.Sent")
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := sp.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	fixtures.PlantDirSymlink(t, dir)
	res := run(t, bytes.NewReader(d), Options{Spool: sp})
	if res.err != nil {
		t.Fatal(res.err)
	}
	found := false
	for _, f := range res.findings {
		if f.Mailbox == "user.alice.Sent" && f.Kind == KindLive && strings.Contains(f.Detail, "symlink") {
			found = true
		}
	}
	if !found || res.sum.LiveMailboxes != 6 {
		t.Errorf("findings %v, %d live mailboxes compared: want user.alice.Sent refused as a symlink, the other 6 compared",
			summarize(res.findings), res.sum.LiveMailboxes)
	}
}

// TestAgainstSeenMailboxGone: alice's and bob's seen records for
// shared.team, which the dump does not hold, are findings exactly when no
// real mailbox on the live partition has its uniqueid, however Cyrus 3.6
// left mailboxes.db (docs/cyrus/files.md §7): not when the mailbox was
// deleted with delete_mode: delayed (it lives on under DELETED.*), but when
// it was deleted at once (a tombstone), when its DELETED.* copy was
// removed since (a stale I record), and when no record names it.
func TestAgainstSeenMailboxGone(t *testing.T) {
	sp := openFixture(t)
	d := dumpSpool(t, sp, false, "alice", "bob")
	team, err := sp.Lookup("shared.team")
	if err != nil {
		t.Fatal(err)
	}
	id := team.UniqueID
	const (
		teamKey = "Nshared\x1fteam"
		copyDB  = "DELETED\x1fshared\x1fteam\x1f6B116C4E"
		tomb    = " V 1795882100 C 1 F 5 M 1795882200"
		real    = " P default V 1795882100 C 1 F 5 M 1795882200 A %(anyone lrs)"
		history = " H (%(N shared\x1fteam M 1795882200 V 1795882100 C 1 F 5 T ed))"
	)
	for _, c := range []struct {
		name     string
		records  map[string]string // "" deletes
		findings int
	}{
		{"alive", nil, 0},
		{"deleted, delayed", map[string]string{
			teamKey:      "%(T ed I " + id + tomb + ")",
			"N" + copyDB: "%(T e I " + id + real + ")",
			"I" + id:     "%(T e N " + copyDB + real + history + ")",
		}, 0},
		{"deleted, immediate", map[string]string{
			teamKey:  "%(T ed I " + id + tomb + ")",
			"I" + id: "%(T ed N shared\x1fteam" + tomb + " H ())",
		}, 2},
		{"DELETED.* copy removed", map[string]string{
			teamKey:  "%(T ed I " + id + tomb + ")",
			"I" + id: "%(T e N " + copyDB + real + history + ")",
		}, 2},
		{"in no record", map[string]string{teamKey: "", "I" + id: ""}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			sp := openFixture(t)
			err := sp.UpdateTwoskip(sp.Config.MboxlistPath, false, partition.Owner{UID: -1, GID: -1}, func(tx *partition.TwoskipTx) error {
				for k, v := range c.records {
					if v == "" {
						tx.Delete([]byte(k))
					} else {
						tx.Set([]byte(k), []byte(v))
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			res := run(t, bytes.NewReader(d), Options{Spool: sp})
			if res.err != nil {
				t.Fatal(res.err)
			}
			n := 0
			for _, f := range res.findings {
				if f.Kind == KindSeen && strings.Contains(f.Detail, id) {
					n++
				}
			}
			if n != c.findings || len(res.findings) != n {
				t.Errorf("%d seen findings for %s, want %d\n%v", n, id, c.findings, res)
			}
		})
	}
}

// TestMailboxWalk: the walk of mailboxes.db finds every name Spool.Lookup
// finds, and fails as Lookup fails, in whatever order the names come:
// mailboxes.db order (all found by the walk), reversed, with names that
// are not there, and past the walk's waste limit.
func TestMailboxWalk(t *testing.T) {
	sp := openFixture(t)
	all, err := sp.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 6 {
		t.Fatalf("the fixture has %d mailboxes", len(all))
	}
	var names []string
	for _, e := range all {
		names = append(names, e.Name)
	}
	reversed := make([]string, len(names))
	for i, n := range names {
		reversed[len(names)-1-i] = n
	}
	var absent []string // the real names and names that are not there, in mailboxes.db order
	for _, n := range names {
		absent = append(absent, n+"-", n, n+".zz-not-there")
	}
	sort.Slice(absent, func(i, j int) bool {
		return bytes.Compare(partition.NameKey(absent[i]), partition.NameKey(absent[j])) < 0
	})
	for _, tc := range []struct {
		name   string
		names  []string
		waste  int
		walked int // how many the walk finds
	}{
		{"in order", names, 0, len(names)},
		{"reversed", reversed, 0, 1},
		{"absent names between", absent, 0, len(names)},
		{"sparse", []string{names[0], names[len(names)-1]}, 1, 1},
		{"from the middle", names[len(names)/2:], 0, len(names) - len(names)/2},
	} {
		w := &mboxWalk{sp: sp, waste: tc.waste}
		walked := 0
		for _, n := range tc.names {
			e, ok, err := w.lookup(n)
			want, werr := sp.Lookup(n)
			if (err == nil) != (werr == nil) || err != nil && !errors.Is(err, partition.ErrNoMailbox) ||
				e.Name != want.Name || e.UniqueID != want.UniqueID || e.Partition != want.Partition {
				t.Errorf("%s: %s: walk gives %q %v, Lookup %q %v", tc.name, n, e.Name, err, want.Name, werr)
			}
			if ok {
				walked++
			}
		}
		w.halt()
		if walked != tc.walked {
			t.Errorf("%s: the walk found %d of %d names, want %d", tc.name, walked, len(tc.names), tc.walked)
		}
	}
}
