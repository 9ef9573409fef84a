package remote

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncproto"
)

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

// view EXAMINEs mailbox and fetches every message.
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

// userState is everything a user sees: each mailbox (by LIST, plus
// extra ones), subscriptions, and the metadata entries asked for.
type userState struct {
	Views    map[string]imapView
	Subs     []string
	Metadata map[string]string
}

func state(t *testing.T, lab *cyruslab.Lab, user string, meta map[string][]string, extra ...string) userState {
	t.Helper()
	c := lab.IMAP(t, user)
	list, err := c.List("", "INBOX*")
	if err != nil {
		t.Fatal(err)
	}
	s := userState{Views: map[string]imapView{}, Metadata: map[string]string{}}
	for _, e := range list {
		s.Views[e.Name] = view(t, c, e.Name)
	}
	for _, m := range extra {
		s.Views[m] = view(t, c, m)
	}
	r, err := c.Command("LSUB", `""`, `"*"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Data {
		if d.Name == "LSUB" && len(d.Fields) > 0 {
			s.Subs = append(s.Subs, d.Fields[len(d.Fields)-1].Text)
		}
	}
	sort.Strings(s.Subs)
	for mbox, entries := range meta {
		got, err := c.GetMetadata(mbox, entries...)
		if err != nil {
			t.Fatalf("GETMETADATA %s: %v", mbox, err)
		}
		for k, v := range got {
			s.Metadata[mbox+" "+k] = v
		}
	}
	return s
}

func compareStates(t *testing.T, who string, got, want userState) {
	t.Helper()
	if !reflect.DeepEqual(sortedKeysV(got.Views), sortedKeysV(want.Views)) {
		t.Errorf("%s sees mailboxes %v, want %v", who, sortedKeysV(got.Views), sortedKeysV(want.Views))
	}
	for name, w := range want.Views {
		g, ok := got.Views[name]
		if !ok {
			continue
		}
		what := who + " " + name
		if g.UIDValidity != w.UIDValidity || g.UIDNext != w.UIDNext || g.HighestModSeq != w.HighestModSeq {
			t.Errorf("%s: UIDVALIDITY %d UIDNEXT %d HIGHESTMODSEQ %d, want %d %d %d", what,
				g.UIDValidity, g.UIDNext, g.HighestModSeq, w.UIDValidity, w.UIDNext, w.HighestModSeq)
		}
		if len(g.Messages) != len(w.Messages) {
			t.Errorf("%s: %d messages, want %d", what, len(g.Messages), len(w.Messages))
			continue
		}
		for i, gm := range g.Messages {
			wm := w.Messages[i]
			if !bytes.Equal(gm.Body, wm.Body) {
				t.Errorf("%s UID %d: body differs", what, gm.UID)
			}
			gm.Body, wm.Body = nil, nil
			if !reflect.DeepEqual(gm, wm) {
				t.Errorf("%s: message\n got %+v\nwant %+v", what, gm, wm)
			}
		}
	}
	if !reflect.DeepEqual(got.Subs, want.Subs) {
		t.Errorf("%s subscriptions %v, want %v", who, got.Subs, want.Subs)
	}
	if !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("%s metadata %v, want %v", who, got.Metadata, want.Metadata)
	}
}

func sortedKeysV(m map[string]imapView) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mbexamine returns mbexamine's report of name with what legitimately
// differs between two copies blanked.
func mbexamine(t *testing.T, lab *cyruslab.Lab, name string) string {
	t.Helper()
	out := lab.Tool(t, "mbexamine", name)
	for _, re := range []string{`(?m)^  Path to mailbox: .*$`, `(?m)^  Unique ID: .*$`,
		`Generation Number: \d+`, `Examining \S+`} {
		out = regexp.MustCompile(re).ReplaceAllString(out, "")
	}
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
	return ""
}

func openSpool(t *testing.T, conf string) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// offlineDump dumps users of lab with package dump.
func offlineDump(t *testing.T, lab *cyruslab.Lab, users ...string) []byte {
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

// dialer returns a Connect to addr as the lab's admin.
func dialer(lab *cyruslab.Lab, addr string) Connect {
	return func(ctx context.Context) (*syncproto.Client, error) {
		return syncproto.Dial(ctx, addr, syncproto.Config{AuthName: lab.Admin, Password: lab.Password, Compress: true})
	}
}

// noConnect fails the test if Restore tries to connect.
func noConnect(t *testing.T) Connect {
	return func(context.Context) (*syncproto.Client, error) {
		t.Error("Restore connected")
		return nil, fmt.Errorf("no connection in this test")
	}
}

func restoreT(t *testing.T, dumped []byte, connect Connect, opts RestoreOptions) *RestoreSummary {
	t.Helper()
	sum, err := Restore(context.Background(), bytes.NewReader(dumped), connect, opts)
	if err != nil {
		t.Fatalf("restore: %v (summary %+v)", err, sum)
	}
	return sum
}

// ownKeys matches mbtool's own keys in an offline dump, which a dump over
// replication cannot have.
var ownKeys = regexp.MustCompile(` MBTOOL_(DELETEDMODSEQ|GENERATION|CACHECRC) \d+| MBTOOL_(USERFLAGS|CACHE) \([^()]*\)`)

// replicationOnly removes mbtool's own keys from an offline dump, leaving
// what a dump over replication carries.
func replicationOnly(b []byte) []byte { return ownKeys.ReplaceAll(b, nil) }

// sel returns the selector of mailbox names.
func sel(t testing.TB, mailboxes ...string) *mboxname.Selector {
	t.Helper()
	s, err := mboxname.NewSelector(nil, mailboxes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
