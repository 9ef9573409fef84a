package restore

import (
	"bytes"
	"context"
	"fmt"
	"github.com/mbtool/mbtool/restore/result"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// The tests in this file run against live Cyrus 3.6 instances
// (internal/cyruslab): they skip without Cyrus, or fail when
// MBTOOL_REAL_CYRUS=1.

// imapView is what an IMAP client sees of one mailbox.
type imapView struct {
	UIDValidity, UIDNext uint32
	HighestModSeq        uint64
	Messages             []imapMessage
}

type imapMessage struct {
	UID          uint32
	Flags        string
	InternalDate string
	Size         int64
	ModSeq       uint64
	Body         []byte
}

// view EXAMINEs mailbox as user and fetches every message.
func view(t *testing.T, c *cyruslab.IMAPClient, mailbox string) imapView {
	t.Helper()
	m, err := c.Examine(mailbox)
	if err != nil {
		t.Fatalf("EXAMINE %s: %v", mailbox, err)
	}
	v := imapView{UIDValidity: m.UIDValidity, UIDNext: m.UIDNext, HighestModSeq: m.HighestModSeq}
	if m.Exists == 0 {
		return v
	}
	msgs, err := c.UIDFetch("1:*", "(FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[])")
	if err != nil {
		t.Fatalf("FETCH %s: %v", mailbox, err)
	}
	for _, msg := range msgs {
		flags := append([]string(nil), msg.Flags...)
		sort.Strings(flags)
		v.Messages = append(v.Messages, imapMessage{UID: msg.UID, Flags: strings.Join(flags, " "),
			InternalDate: msg.InternalDate.String(), Size: msg.Size, ModSeq: msg.ModSeq, Body: msg.Body})
	}
	return v
}

func compareViews(t *testing.T, what string, got, want imapView) {
	t.Helper()
	if got.UIDValidity != want.UIDValidity || got.UIDNext != want.UIDNext || got.HighestModSeq != want.HighestModSeq {
		t.Errorf("%s: UIDVALIDITY %d UIDNEXT %d HIGHESTMODSEQ %d, want %d %d %d", what,
			got.UIDValidity, got.UIDNext, got.HighestModSeq, want.UIDValidity, want.UIDNext, want.HighestModSeq)
	}
	if len(got.Messages) != len(want.Messages) {
		t.Errorf("%s: %d messages, want %d", what, len(got.Messages), len(want.Messages))
		return
	}
	for i, g := range got.Messages {
		w := want.Messages[i]
		if !bytes.Equal(g.Body, w.Body) {
			t.Errorf("%s UID %d: body differs", what, g.UID)
		}
		g.Body, w.Body = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: message\n got %+v\nwant %+v", what, g, w)
		}
	}
}

// userViews returns the view of every mailbox the user sees (by LIST),
// keyed by the name relative to the user, plus views of extra mailboxes.
func userViews(t *testing.T, lab *cyruslab.Lab, user string, extra ...string) map[string]imapView {
	t.Helper()
	c := lab.IMAP(t, user)
	list, err := c.List("", "INBOX*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]imapView{}
	for _, e := range list {
		out[e.Name] = view(t, c, e.Name)
	}
	for _, m := range extra {
		out[m] = view(t, c, m)
	}
	return out
}

// mbexamine returns the record part of mbexamine's report of name, with
// what legitimately differs between two copies of a mailbox blanked: the
// path and the generation (Cyrus bumps it when it repacks the restored
// index).
func mbexamine(t *testing.T, lab *cyruslab.Lab, name string) string {
	t.Helper()
	out := lab.Tool(t, "mbexamine", name)
	out = regexp.MustCompile(`(?m)^  Path to mailbox: .*$`).ReplaceAllString(out, "")
	out = regexp.MustCompile(`(?m)^  Unique ID: .*$`).ReplaceAllString(out, "")
	out = regexp.MustCompile(`Generation Number: \d+`).ReplaceAllString(out, "")
	out = regexp.MustCompile(`Examining \S+`).ReplaceAllString(out, "")
	return out
}

func labDump(t *testing.T, lab *cyruslab.Lab, users ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	sum, err := dump.Run(context.Background(), openSpool(t, lab.Conf), &buf, dump.Options{Users: users, Host: "lab", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("dump: %v", sum.Problems)
	}
	return buf.Bytes()
}

func labRestore(t *testing.T, lab *cyruslab.Lab, dump []byte, opts Options) *Summary {
	t.Helper()
	sum, err := Run(context.Background(), openSpool(t, lab.Conf), bytes.NewReader(dump), opts)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func quotaLines(t *testing.T, lab *cyruslab.Lab, root string) string {
	t.Helper()
	out := lab.Tool(t, "quota", root)
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, root) {
			keep = append(keep, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(keep, "\n")
}

// TestRealCyrusRoundTrip dumps alice and bob from a populated lab,
// restores them into a second, fresh and running lab, and compares what
// IMAP clients, mbexamine and quota see.
func TestRealCyrusRoundTrip(t *testing.T) {
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	dumped := labDump(t, src, "alice", "bob")
	aliceNames := []string{"user.alice", "user.alice.Archive", "user.alice.Archive.2019",
		"user.alice.Entw&APw-rfe", "user.alice.Old Stuff", "user.alice.Sent", "user.alice.team"}
	wantAlice := userViews(t, src, "alice")
	wantBob := userViews(t, src, "bob", "user.alice.team")
	wantExamine := map[string]string{}
	for _, n := range append(aliceNames, "user.bob") {
		wantExamine[n] = mbexamine(t, src, n)
	}
	wantQuota := quotaLines(t, src, "user.alice")

	dst := cyruslab.Start(t, cyruslab.Options{})
	sum := labRestore(t, dst, dumped, Options{})
	if len(sum.Problems) > 0 || sum.Count(ActionCreate) != len(aliceNames)+1 {
		t.Fatalf("restore: %+v %v", sum.Mailboxes, sum.Problems)
	}
	compareAll(t, "alice", userViews(t, dst, "alice"), wantAlice)
	compareAll(t, "bob", userViews(t, dst, "bob", "user.alice.team"), wantBob)
	for name, want := range wantExamine {
		if got := mbexamine(t, dst, name); got != want {
			t.Errorf("mbexamine %s differs:\n%s", name, firstDiff(got, want))
		}
	}
	if got := quotaLines(t, dst, "user.alice"); got != wantQuota {
		t.Errorf("quota: %q, want %q", got, wantQuota)
	}
	// reconstruct finds nothing to fix (it would bump MODSEQs if it did).
	for _, n := range aliceNames {
		if out := dst.Tool(t, "reconstruct", "-n", n); strings.TrimSpace(out) != n {
			t.Errorf("reconstruct -n %s: %s", n, out)
		}
	}
	compareAll(t, "alice after reconstruct -n", userViews(t, dst, "alice"), wantAlice)

	// The same dump into the source lab, alice renamed to carol: new
	// uniqueids, bob's mailbox left alone (it is there with its uniqueid),
	// bob's seen state re-keyed.
	sum = labRestore(t, src, dumped, Options{MapUsers: map[string]string{"alice": "carol"}})
	if sum.Count(ActionCreate) != len(aliceNames) || sum.Count(ActionKeep) != 1 {
		t.Fatalf("map-user restore: %+v", sum.Mailboxes)
	}
	for _, m := range sum.Mailboxes {
		if m.Action == ActionCreate && (m.IDFrom != result.IDNew || !strings.HasPrefix(m.Name, "user.carol")) {
			t.Errorf("%+v", m)
		}
	}
	compareAll(t, "carol", userViews(t, src, "carol"), wantAlice)
	bobTeam := view(t, src.IMAP(t, "bob"), "user.carol.team")
	compareViews(t, "bob's user.carol.team", bobTeam, wantBob["user.alice.team"])
	c := src.IMAP(t, "carol")
	acl, err := c.Command("GETACL", "INBOX.team")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(acl.Data); !strings.Contains(s, "carol") || strings.Contains(s, "alice") {
		t.Errorf("ACL of carol's team: %s", s)
	}
}

func compareAll(t *testing.T, who string, got, want map[string]imapView) {
	t.Helper()
	if !reflect.DeepEqual(keys(got), keys(want)) {
		t.Errorf("%s sees mailboxes %v, want %v", who, keys(got), keys(want))
	}
	for name, w := range want {
		if g, ok := got[name]; ok {
			compareViews(t, who+" "+name, g, w)
		}
	}
}

func keys(m map[string]imapView) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n got %q\nwant %q", i+1, a, b)
		}
	}
	return "(equal)"
}

var _ = partition.FileIndex

// TestRealCyrusLegacyDirs restores into a lab with mailbox_legacy_dirs:
// yes, where a mailbox's directory holds its children's: first one deep
// folder and its parent, with Cyrus stopped (the INBOX's directory, which
// holds theirs, does not exist yet; the parent comes from the dump, else
// it would be created empty, as Cyrus does, and the full restore would
// then refuse the dump's), then the rest with Cyrus running.
func TestRealCyrusLegacyDirs(t *testing.T) {
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	dumped := labDump(t, src, "alice", "bob")
	wantAlice := userViews(t, src, "alice")
	wantBob := userViews(t, src, "bob", "user.alice.team")

	dst := cyruslab.Start(t, cyruslab.Options{LegacyDirs: true})
	dst.Stop(t)
	sum := labRestore(t, dst, dumped, Options{Select: sel(t, "user.alice.Archive.2019", "user.alice.Archive")})
	if sum.Count(ActionCreate) != 2 {
		t.Fatalf("%+v", sum.Mailboxes)
	}
	dst.Start(t)
	sum = labRestore(t, dst, dumped, Options{})
	if sum.Count(ActionCreate) != 6 || sum.Count(ActionKeep) != 2 || len(sum.Problems) > 0 {
		t.Fatalf("%+v %v", sum.Mailboxes, sum.Problems)
	}
	compareAll(t, "alice", userViews(t, dst, "alice"), wantAlice)
	compareAll(t, "bob", userViews(t, dst, "bob", "user.alice.team"), wantBob)
	mbs, err := openSpool(t, dst.Conf).Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range mbs {
		if !e.LegacyDirs() {
			t.Errorf("%s: type %q", e.Name, e.Type)
		}
		if got := strings.TrimSpace(dst.Tool(t, "mbpath", e.Name)); !strings.Contains(got, "/user/") {
			t.Errorf("mbpath %s: %s", e.Name, got)
		}
	}
}
