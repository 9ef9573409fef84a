package remote

import (
	"bytes"
	"context"
	"errors"
	"github.com/mbtool/mbtool/restore/result"
	"os"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/syncproto"
)

// The tests in this file run against live Cyrus 3.6 instances
// (internal/cyruslab): they skip without Cyrus, or fail when
// MBTOOL_REAL_CYRUS=1.

var aliceNames = []string{"user.alice", "user.alice.Archive", "user.alice.Archive.2019",
	"user.alice.Entw&APw-rfe", "user.alice.Old Stuff", "user.alice.Sent", "user.alice.team"}

// aliceMeta are the metadata entries the lab sets on alice's mailboxes.
var aliceMeta = map[string][]string{
	"INBOX":      {"/private/comment", "/shared/comment"},
	"INBOX.Sent": {"/private/specialuse"},
	"INBOX.team": {"/shared/comment", "/private/comment"},
}

// TestRealCyrusServer restores an offline dump of a populated lab into a
// second, running lab through its sync_server and compares what IMAP
// clients see; then re-runs it (nothing to do), restores alice again as
// carol (new uniqueids), and checks refusal and --replace.
func TestRealCyrusServer(t *testing.T) {
	t.Parallel()
	src := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	src.Populate(t)
	dst := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	defer noCrash(t, src)
	defer noCrash(t, dst)
	dumped := offlineDump(t, src, "alice", "bob")

	wantAlice := state(t, src, "alice", aliceMeta)
	wantBob := state(t, src, "bob", nil, "user.alice.team", "shared.team")
	wantExamine := map[string]string{}
	for _, n := range append(aliceNames, "user.bob") {
		wantExamine[n] = mbexamine(t, src, n)
	}
	wantQuota := quota(t, src, "user.alice")

	sum := restoreT(t, dumped, dialer(dst, dst.SyncAddr), RestoreOptions{})
	if len(sum.Problems) > 0 || sum.Applied() != len(aliceNames)+1 || sum.Count(ActionCreate) != len(aliceNames)+1 {
		t.Fatalf("restore: %+v, problems %v", sum.Mailboxes, sum.Problems)
	}
	if sum.Messages != sum.Dump.Messages || sum.Bytes != sum.Dump.Bytes || sum.Seen == 0 || sum.Subs == 0 || sum.Quotas != 1 {
		t.Errorf("summary: %+v", sum)
	}
	compareStates(t, "alice", state(t, dst, "alice", aliceMeta), wantAlice)
	// bob's view includes his seen state on alice's team folder (his seen
	// db, APPLY SEEN); shared.team is not in the dump.
	delete(wantBob.Views, "shared.team")
	compareStates(t, "bob", state(t, dst, "bob", nil, "user.alice.team"), wantBob)
	for name, want := range wantExamine {
		if got := mbexamine(t, dst, name); got != want {
			t.Errorf("mbexamine %s differs:\n%s", name, firstDiff(got, want))
		}
	}
	if got := quota(t, dst, "user.alice"); got != wantQuota {
		t.Errorf("quota %q, want %q", got, wantQuota)
	}

	t.Run("again", func(t *testing.T) {
		sum := restoreT(t, dumped, dialer(dst, dst.SyncAddr), RestoreOptions{})
		if sum.Count(ActionKeep) != len(aliceNames)+1 || sum.Messages != 0 || len(sum.Problems) > 0 {
			t.Errorf("second run: %+v %v", sum.Mailboxes, sum.Problems)
		}
	})

	t.Run("map-user", func(t *testing.T) {
		sum := restoreT(t, dumped, dialer(dst, dst.SyncAddr), RestoreOptions{
			MapUsers: map[string]string{"alice": "carol"}, Select: sel(t, aliceNamesAs("carol")...)})
		if sum.Applied() != len(aliceNames) || len(sum.Problems) > 0 {
			t.Fatalf("restore as carol: %+v %v", sum.Mailboxes, sum.Problems)
		}
		for _, m := range sum.Mailboxes {
			if m.Applied && m.IDFrom != result.IDNew {
				t.Errorf("%s kept uniqueid %s, which alice's copy uses", m.Name, m.UniqueID)
			}
		}
		// The files are on the server already (alice's): nothing uploaded.
		if sum.Messages != 0 || sum.Present == 0 {
			t.Errorf("uploaded %d, present %d", sum.Messages, sum.Present)
		}
		carolMeta := map[string][]string{}
		for k, v := range aliceMeta {
			carolMeta[k] = v
		}
		got := state(t, dst, "carol", carolMeta)
		compareStates(t, "carol", got, wantAlice)
	})

	t.Run("replace", func(t *testing.T) {
		c := dst.IMAP(t, "alice")
		if _, err := c.Select("INBOX"); err != nil {
			t.Fatal(err)
		}
		if err := c.UIDStore("1", "+FLAGS", `(\Flagged)`); err != nil {
			t.Fatal(err)
		}
		sum := restoreT(t, dumped, dialer(dst, dst.SyncAddr), RestoreOptions{Select: sel(t, "user.alice")})
		if sum.Count(ActionRefuse) != 1 || sum.Applied() != 0 {
			t.Fatalf("without --replace: %+v", sum.Mailboxes)
		}
		before, err := c.Select("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		sum = restoreT(t, dumped, dialer(dst, dst.SyncAddr), RestoreOptions{Select: sel(t, "user.alice"), Replace: true})
		if sum.Count(ActionReplace) != 1 || sum.Applied() != 1 || len(sum.Problems) > 0 {
			t.Fatalf("with --replace: %+v %v", sum.Mailboxes, sum.Problems)
		}
		// The dump's state, but for the one change the replace undid: UID
		// 1's flag, at a MODSEQ above the mailbox's before, which is its
		// HIGHESTMODSEQ now (docs/restore.md, "Invariants").
		want := userState{Views: map[string]imapView{}, Subs: wantAlice.Subs, Metadata: wantAlice.Metadata}
		for k, v := range wantAlice.Views {
			want.Views[k] = v
		}
		inbox := want.Views["INBOX"]
		inbox.Messages = append([]imapMessage(nil), inbox.Messages...)
		inbox.HighestModSeq = before.HighestModSeq + 1
		inbox.Messages[0].ModSeq = before.HighestModSeq + 1
		want.Views["INBOX"] = inbox
		compareStates(t, "alice after replace", state(t, dst, "alice", aliceMeta), want)
	})

	t.Run("dump", func(t *testing.T) {
		c, err := dialer(src, src.SyncAddr)(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var buf bytes.Buffer
		sum, err := Dump(context.Background(), c, &buf, dump.Options{Users: []string{"alice", "bob"}, Host: "lab", Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Problems) > 0 {
			t.Errorf("problems: %v", sum.Problems)
		}
		compareDumps(t, buf.Bytes(), replicationOnly(offlineDump(t, src, "alice", "bob")))
	})

	t.Run("changed between the passes", func(t *testing.T) {
		// The second reading has one record's GUID changed: the APPLY
		// MAILBOX is cut short, so the server applies none of it, and no
		// sync_server process dies.
		changed := append([]byte(nil), dumped...)
		i := bytes.Index(changed, []byte("MBOXNAME user.alice "))
		j := i + bytes.Index(changed[i:], []byte(" GUID ")) + len(" GUID ")
		changed[j] ^= 1
		src := &twoFaced{first: bytes.NewReader(dumped), second: bytes.NewReader(changed)}
		_, err := Restore(context.Background(), src, dialer(dst, dst.SyncAddr),
			RestoreOptions{MapUsers: map[string]string{"alice": "frank"}})
		if !errors.Is(err, ErrChanged) {
			t.Errorf("restore of a dump that changed: %v, want ErrChanged", err)
		}
		if got := listUser(t, dst, "frank"); got != "" {
			t.Errorf("frank on the server: %s", got)
		}
	})

	t.Run("unknown partition", func(t *testing.T) {
		// File literals for a partition the server lacks would make it
		// assert; the first mailbox, created empty, is refused instead,
		// and nothing is sent there.
		sum := restoreT(t, dumped, dialer(dst, dst.SyncAddr), RestoreOptions{
			MapUsers: map[string]string{"alice": "gina"}, Select: sel(t, aliceNamesAs("gina")...), Partition: "nosuch"})
		if sum.Applied() != 0 || sum.Messages != 0 || len(sum.Problems) != len(aliceNames) {
			t.Errorf("restore to partition nosuch: %+v %v", sum.Mailboxes, sum.Problems)
		}
		t.Logf("first problem: %v", sum.Problems[0])
		if got := listUser(t, dst, "gina"); got != "" {
			t.Errorf("gina on the server: %s", got)
		}
	})

	t.Run("damaged", func(t *testing.T) {
		// One byte of a message body changed: refused before connecting,
		// and the server (checked over the protocol) is unchanged.
		bad := append([]byte(nil), dumped...)
		i := bytes.Index(bad, []byte("Subject:"))
		bad[i] = 's'
		before := listUser(t, dst, "bob")
		_, err := Restore(context.Background(), bytes.NewReader(bad), noConnect(t),
			RestoreOptions{MapUsers: map[string]string{"bob": "dave"}})
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("restore of a damaged dump: %v, want ErrDamaged", err)
		}
		if after := listUser(t, dst, "bob"); after != before {
			t.Errorf("server changed:\n%s\n%s", before, after)
		}
		if got := listUser(t, dst, "dave"); got != "" {
			t.Errorf("dave appeared: %s", got)
		}
	})
}

// TestRealCyrusIMAP restores through imapd's X-REPLICATION commands, on a
// lab without a sync_server.
func TestRealCyrusIMAP(t *testing.T) {
	t.Parallel()
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	dst := cyruslab.Start(t, cyruslab.Options{})
	defer noCrash(t, dst)
	dumped := offlineDump(t, src, "alice")
	sum := restoreT(t, dumped, dialer(dst, dst.IMAPAddr), RestoreOptions{})
	if sum.Target != syncproto.IMAP.String() || sum.Applied() != len(aliceNames) || len(sum.Problems) > 0 {
		t.Fatalf("restore via imapd: %v %+v %v", sum.Target, sum.Mailboxes, sum.Problems)
	}
	compareStates(t, "alice", state(t, dst, "alice", aliceMeta), state(t, src, "alice", aliceMeta))

	// dump --server through imapd gives the offline dump too.
	c, err := dialer(src, src.IMAPAddr)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf bytes.Buffer
	if _, err := Dump(context.Background(), c, &buf, dump.Options{Users: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	compareDumps(t, buf.Bytes(), replicationOnly(dumped))
}

// twoFaced reads first until it is rewound, then second.
type twoFaced struct {
	first, second *bytes.Reader
	rewound       bool
}

func (r *twoFaced) Read(p []byte) (int, error) {
	if r.rewound {
		return r.second.Read(p)
	}
	return r.first.Read(p)
}

func (r *twoFaced) Seek(off int64, whence int) (int64, error) {
	r.rewound = true
	return r.second.Seek(off, whence)
}

// noCrash fails the test if the lab's master logged a process killed by
// a signal (a sync_server crash).
func noCrash(t *testing.T, lab *cyruslab.Lab) {
	t.Helper()
	if lab.SyslogFile == "" {
		return
	}
	b, err := os.ReadFile(lab.SyslogFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "signaled") || strings.Contains(l, "assertion failed") {
			t.Errorf("Cyrus: %s", l)
		}
	}
}

func aliceNamesAs(user string) []string {
	var out []string
	for _, n := range aliceNames {
		out = append(out, strings.Replace(n, "user.alice", "user."+user, 1))
	}
	return out
}

// compareDumps compares two dumps apart from their header lines (and the
// trailers' digests, which cover the headers).
func compareDumps(t *testing.T, got, want []byte) {
	t.Helper()
	body := func(b []byte) ([]byte, []byte) {
		b = b[bytes.IndexByte(b, '\n')+1:]
		tr := bytes.LastIndex(b, []byte("MBTOOL TRAILER"))
		trailer := b[tr:]
		trailer = trailer[:bytes.Index(trailer, []byte(" BLAKE3"))]
		return b[:tr], trailer
	}
	gb, gt := body(got)
	wb, wt := body(want)
	if !bytes.Equal(gt, wt) {
		t.Errorf("trailer %q, want %q", gt, wt)
	}
	if !bytes.Equal(gb, wb) {
		n := 0
		for n < len(gb) && n < len(wb) && gb[n] == wb[n] {
			n++
		}
		lo := max(0, n-200)
		t.Errorf("dumps differ at byte %d of the body:\n got %q\nwant %q", n, gb[lo:min(len(gb), n+200)], wb[lo:min(len(wb), n+200)])
	}
}

// listUser returns GET USER's answer for user, one line per item.
func listUser(t *testing.T, lab *cyruslab.Lab, user string) string {
	t.Helper()
	c, err := dialer(lab, lab.SyncAddr)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	err = c.Line("GET", "USER", dlist.NewAtom(user), func(name string, r *dlist.Reader) error {
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		w := dlist.NewWriter(&b)
		w.BeginLine("*", name)
		w.WriteValue(v)
		w.EndLine()
		return w.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func quota(t *testing.T, lab *cyruslab.Lab, root string) string {
	t.Helper()
	r, err := lab.IMAP(t, lab.Admin).Command("GETQUOTA", cyruslab.Quote(root))
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, d := range r.Data {
		parts = append(parts, d.Name+" "+strings.TrimSpace(strings.Join(fieldTexts(d.Fields), " ")))
	}
	return strings.Join(parts, "\n")
}

func fieldTexts(fs []cyruslab.Field) []string {
	var out []string
	for _, f := range fs {
		if f.List != nil {
			out = append(out, "("+strings.Join(fieldTexts(f.List), " ")+")")
			continue
		}
		out = append(out, f.Text)
	}
	return out
}
