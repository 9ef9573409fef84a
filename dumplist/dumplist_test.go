package dumplist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/syncrec"
)

type msg struct {
	data []byte
	g    guid.GUID
}

func newMsg(i int, from, subject string) msg {
	data := []byte(fmt.Sprintf("From: %s\r\nSubject: %s\r\n\tcontinued\r\nMessage-ID: <m%d@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nFrom: not a header\r\nbody %d\r\n", from, subject, i, i))
	g, _, _ := guid.Of(bytes.NewReader(data))
	return msg{data, g}
}

// build writes a dump. Each step is either a list of messages (an APPLY
// MESSAGE line) or a mailbox (name and the messages its records refer to).
type step struct {
	files []msg
	box   string
	recs  []msg
}

func build(t *testing.T, steps ...step) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := dumpfile.NewWriter(&buf, dumpfile.Header{Created: time.Unix(1700000000, 0), Host: "h", Version: "v"}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dl := w.DL()
	var c dumpfile.Counts
	for k, s := range steps {
		if s.box == "" {
			dl.BeginLine("APPLY", "MESSAGE")
			dl.BeginList()
			for _, m := range s.files {
				if err := dl.File("default", m.g, int64(len(m.data)), bytes.NewReader(m.data)); err != nil {
					t.Fatal(err)
				}
				c.Messages++
				c.Bytes += int64(len(m.data))
			}
			dl.EndList()
			if err := dl.EndLine(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mb := &syncrec.Mailbox{UniqueID: fmt.Sprintf("uniqueid%016d", k), Name: s.box, LastUID: uint32(len(s.recs)),
			HighestModseq: 9, UIDValidity: 1700000000 + uint32(k), Partition: "default"}
		i := 0
		if err := syncrec.WriteMailbox(dl, "APPLY", mb, func() (*syncrec.Record, error) {
			if i == len(s.recs) {
				return nil, nil
			}
			m := s.recs[i]
			i++
			flags := []string{`\Seen`}
			if i == 2 {
				flags = []string{`\Expunged`}
			}
			return &syncrec.Record{UID: uint32(i), Modseq: 5, Flags: flags,
				InternalDate: 1700000000 + int64(i)*86400, Size: uint32(len(m.data)), GUID: m.g}, nil
		}); err != nil {
			t.Fatal(err)
		}
		c.Mailboxes++
	}
	if err := w.Close(c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func scan(t *testing.T, dump []byte, o Options) ([]*User, []*Mailbox, []*Message, error) {
	t.Helper()
	var us []*User
	var ms []*Mailbox
	var msgs []*Message
	o.User = func(u *User) error { us = append(us, u); return nil }
	o.Mailbox = func(m *Mailbox) error { ms = append(ms, m); return nil }
	o.Message = func(m *Message) error { msgs = append(msgs, m); return nil }
	_, err := Scan(context.Background(), bytes.NewReader(dump), o)
	return us, ms, msgs, err
}

func TestUsersAndMailboxes(t *testing.T) {
	a, b, c := newMsg(1, "bob@example.org", "hello"), newMsg(2, "carol@example.org", "=?utf-8?q?Gr=C3=BC=C3=9Fe?="), newMsg(3, "x", "y")
	dump := build(t,
		step{files: []msg{a, b, c}},
		step{box: "user.alice", recs: []msg{a, b, c}},
		step{box: "user.alice.Sent", recs: []msg{a}},
		step{box: "DELETED.user.alice.Gone.6B0F37A3", recs: []msg{b}},
		step{box: "user.bob", recs: []msg{c}},
		step{box: "shared.news", recs: []msg{a}},
	)
	us, ms, _, err := scan(t, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(len(us), *us[0], *us[1], *us[2])
	want := fmt.Sprint(3, User{"alice", 3, 1, 4, 1, int64(2*len(a.data) + len(c.data) + len(b.data))},
		User{"bob", 1, 0, 1, 0, int64(len(c.data))}, User{"", 1, 0, 1, 0, int64(len(a.data))})
	if got != want {
		t.Errorf("users:\n%s\nwant\n%s", got, want)
	}
	if len(ms) != 5 || !ms[2].Deleted || ms[2].Original != "user.alice.Gone" || ms[2].Owner != "alice" || ms[0].UIDNext != 4 || ms[0].Expunged != 1 {
		t.Errorf("mailboxes: %+v", ms)
	}
}

func TestMessages(t *testing.T) {
	a, b, c := newMsg(1, "Bob <bob@example.org>", "hello"), newMsg(2, "carol@example.org", "=?utf-8?q?Gr=C3=BC=C3=9Fe?="), newMsg(3, "x", "y")
	late := newMsg(4, "late@example.org", "after its mailbox")
	dump := build(t,
		step{files: []msg{a, b, c}},
		step{box: "user.alice.Sent", recs: []msg{c}},
		step{box: "user.alice", recs: []msg{a, b, c, late}},
		step{files: []msg{late}},
	)
	sel, _ := mboxname.NewSelector([]string{"alice"}, []string{"INBOX"})
	_, ms, msgs, err := scan(t, dump, Options{Select: sel, Messages: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "user.alice" {
		t.Fatalf("mailboxes: %v", ms)
	}
	var lines []string
	for _, m := range msgs {
		lines = append(lines, fmt.Sprintf("%d %s|%s|%s late=%v", m.UID, m.From, m.Subject, m.MessageID, m.Late))
	}
	want := []string{
		"1 Bob <bob@example.org>|hello continued|<m1@example.org> late=false",
		"3 x|y continued|<m3@example.org> late=false",
		"4 late@example.org|after its mailbox continued|<m4@example.org> late=true",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("messages:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// Expunged records on request; UID 2's subject decoded.
	_, _, msgs, _ = scan(t, dump, Options{Select: sel, Messages: true, Filter: Filter{Expunged: true, Subject: "grüße"}})
	if len(msgs) != 1 || msgs[0].UID != 2 || !msgs[0].Expunged || msgs[0].Subject != "Grüße continued" {
		t.Errorf("expunged: %+v", msgs)
	}
	for _, c := range []struct {
		f    Filter
		uids string
	}{
		{Filter{From: "BOB"}, "1"},
		{Filter{Messages: &msgsel.Filter{MessageIDs: map[string]bool{"m3@example.org": true, "m4@example.org": true}}}, "3 4"},
		{Filter{Messages: &msgsel.Filter{Since: time.Unix(1700000000+3*86400, 0)}}, "3 4"},
		{Filter{Messages: &msgsel.Filter{Before: time.Unix(1700000000+3*86400, 0)}}, "1"},
		{Filter{Messages: &msgsel.Filter{UIDs: []msgsel.Range{{First: 3, Last: 3}}}}, "3"},
		{Filter{Messages: &msgsel.Filter{GUIDs: map[guid.GUID]bool{c.g: true}}, From: "x"}, "3"},
	} {
		_, _, msgs, err := scan(t, dump, Options{Select: sel, Messages: true, Filter: c.f})
		var uids []string
		for _, m := range msgs {
			uids = append(uids, fmt.Sprint(m.UID))
		}
		if err != nil || strings.Join(uids, " ") != c.uids {
			t.Errorf("%+v: %v %v, want %s", c.f, uids, err, c.uids)
		}
	}
}

// TestSpilled: with the table's memory bound lowered, every header is
// found again from its files.
func TestSpilled(t *testing.T) {
	old := guidtable.DefaultMemLimit
	guidtable.DefaultMemLimit = 1
	defer func() { guidtable.DefaultMemLimit = old }()
	var files []msg
	for i := range 300 {
		files = append(files, newMsg(i, fmt.Sprintf("u%d@example.org", i), fmt.Sprint("s", i)))
	}
	dump := build(t, step{files: files}, step{box: "user.alice", recs: files})
	_, _, msgs, err := scan(t, dump, Options{Messages: true})
	if err != nil || len(msgs) != 299 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if want := fmt.Sprintf("u%d@example.org", m.UID-1); m.From != want {
			t.Fatalf("UID %d: From %q, want %q", m.UID, m.From, want)
		}
	}
}

func TestNoMatch(t *testing.T) {
	a := newMsg(1, "a", "b")
	dump := build(t, step{files: []msg{a}}, step{box: "user.alice.Sent", recs: []msg{a}})
	sel, _ := mboxname.NewSelector(nil, []string{"alice/Snet"})
	_, _, _, err := scan(t, dump, Options{Select: sel})
	var nm *mboxname.NoMatchError
	if !errors.As(err, &nm) || nm.Terms[0].Nearest[0] != "user.alice.Sent" {
		t.Errorf("err = %v", err)
	}
	// A damaged dump is an error, not a short listing.
	bad := bytes.Replace(dump, []byte("MBTOOL TRAILER"), []byte("MBTOOL TRAILEX"), 1)
	if _, _, _, err := scan(t, bad, Options{}); err == nil {
		t.Error("damaged dump listed without an error")
	}
}

func TestParseHeader(t *testing.T) {
	h := parseHeader([]byte("X: 1\r\nfrom : A\r\n B\r\nSUBJECT: =?iso-8859-1?q?caf=E9?= \x1b[31m\r\nMessage-Id:\r\n <id@x>\r\nFrom: second\r\n\r\nSubject: body\r\n"))
	if h.From != "A B" || h.Subject != "café  [31m" || h.MessageID != "<id@x>" {
		t.Errorf("%+v", h)
	}
}
