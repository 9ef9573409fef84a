package cyruslab

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// readAll parses a server transcript into responses.
func readAll(b []byte) ([]*response, error) {
	w := wireReader{bufio.NewReader(bytes.NewReader(b))}
	var out []*response
	for {
		r, err := w.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// TestWireSession parses a real Cyrus 3.6.1 session (testdata/session.imap,
// captured from a populated lab) and checks the parts the client relies on.
func TestWireSession(t *testing.T) {
	b, err := os.ReadFile("testdata/session.imap")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	find := func(name string, num uint32) *Data {
		for _, r := range rs {
			if r.tag == "*" && r.data.Name == name && r.data.Num == num {
				return &r.data
			}
		}
		t.Fatalf("no * %d %s", num, name)
		return nil
	}
	if g := rs[0]; g.tag != "*" || g.data.Name != "OK" || !strings.HasPrefix(g.data.Code, "CAPABILITY IMAP4rev1") {
		t.Errorf("greeting = %+v", g)
	}
	var names []string
	for _, r := range rs {
		if r.data.Name == "LIST" {
			names = append(names, r.data.Fields[2].Text)
		}
	}
	if len(names) != 9 || names[4] != "INBOX.Old Stuff" || names[3] != "INBOX.Entw&APw-rfe" {
		t.Errorf("LIST names = %q", names)
	}
	if st := find("STATUS", 0); st.Fields[0].Text != "INBOX.Old Stuff" || st.Fields[1].String() != "(MESSAGES 1 UIDNEXT 2 HIGHESTMODSEQ 2)" {
		t.Errorf("STATUS = %v", st.Fields)
	}
	if ex := find("EXISTS", 33); len(ex.Fields) != 0 {
		t.Errorf("EXISTS fields = %v", ex.Fields)
	}

	var m Message
	m.Items = map[string]Field{}
	f3 := find("FETCH", 3)
	if err := m.merge(f3.Fields[0].List); err != nil {
		t.Fatal(err)
	}
	if m.UID != 3 || m.ModSeq != 51 || m.Size != 921 || len(m.Flags) != 0 {
		t.Errorf("FETCH 3 = uid %d modseq %d size %d flags %v", m.UID, m.ModSeq, m.Size, m.Flags)
	}
	if v, ok := m.Annotation("/comment", "value.shared"); !ok || v != "msg note" {
		t.Errorf("annotation = %q %v", v, ok)
	}
	if _, ok := m.Annotation("/comment", "value.priv"); ok {
		t.Error("NIL value.priv reported as present")
	}
	if h := m.Items["BODY[HEADER.FIELDS (SUBJECT)]"]; h.Kind != String || h.Text != "Subject: Delivered via LMTP 2\r\n\r\n" {
		t.Errorf("header literal = %+v", h)
	}
	if env := m.Items["ENVELOPE"]; env.Kind != List || len(env.List) != 10 || env.List[1].Text != "Delivered via LMTP 2" || env.List[6].Kind != Nil {
		t.Errorf("ENVELOPE = %v", env)
	}
	m = Message{Items: map[string]Field{}}
	if err := m.merge(find("FETCH", 4).Fields[0].List); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 2, 1, 8, 0, 0, 0, time.UTC); !m.InternalDate.Equal(want) || !m.HasFlag(`\answered`) {
		t.Errorf("FETCH 4: date %v flags %v", m.InternalDate, m.Flags)
	}
	if md := find("METADATA", 0); md.Fields[1].List[3].Kind != Nil {
		t.Errorf("METADATA = %v", md.Fields)
	}
	last := rs[len(rs)-1]
	if last.tag != "h" || last.data.Name != "OK" || last.data.Text != "Completed" {
		t.Errorf("last = %+v", last)
	}
}

func TestWireErrors(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"unbalanced", "* 1 FETCH (FLAGS ()))\r\n"},
		{"open list", "* 1 FETCH (FLAGS (\r\n"},
		{"bad literal", "* 1 FETCH (BODY[] {x}\r\n"},
		{"huge literal", "* 1 FETCH (BODY[] {999999999999}\r\n"},
		{"short literal", "* 1 FETCH (BODY[] {10}\r\nabc"},
		{"quoted newline", "* LIST () \".\" \"a\r\nb\"\r\n"},
		{"deep", "* X " + strings.Repeat("(", maxListDepth+2) + "\r\n"},
		{"no tag", " OK\r\n"},
		{"eof", "* OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := wireReader{bufio.NewReader(strings.NewReader(tt.in))}
			if r, err := w.next(); err == nil {
				t.Errorf("parsed %+v, want an error", r)
			}
		})
	}
}

// FuzzWire: the reader returns an error or a response for any input, never
// panics, and stops on its limits.
func FuzzWire(f *testing.F) {
	if b, err := os.ReadFile("testdata/session.imap"); err == nil {
		for _, line := range bytes.SplitAfter(b, []byte("\r\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte("* 1 FETCH (BODY[] {3}\r\nabc UID 1)\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w := wireReader{bufio.NewReader(bytes.NewReader(b))}
		for i := 0; i < 100; i++ {
			if _, err := w.next(); err != nil {
				return
			}
		}
	})
}

// fakeServer answers the client's commands on one end of a pipe with
// scripted replies; "TAG" in a reply stands for the command's tag, "+" lines
// make the server wait for the literal that follows.
func fakeServer(t *testing.T, script map[string][]string) *IMAPClient {
	t.Helper()
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	go func() {
		br := bufio.NewReader(srv)
		io.WriteString(srv, "* OK [CAPABILITY IMAP4rev1 CONDSTORE] fake\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			verb, _, _ := strings.Cut(cmd, " ")
			for _, reply := range script[verb] {
				if reply == "+" {
					io.WriteString(srv, "+ go ahead\r\n")
					rest, _ := br.ReadString('\n') // the literal and the rest of the line
					_ = rest
					continue
				}
				io.WriteString(srv, strings.ReplaceAll(reply, "TAG", tag)+"\r\n")
			}
		}
	}()
	c := &IMAPClient{conn: cli, bw: bufio.NewWriter(cli), wr: wireReader{bufio.NewReader(cli)}}
	greet, err := c.wr.next()
	if err != nil {
		t.Fatal(err)
	}
	c.setCaps(greet.data.Code)
	return c
}

func TestClientScripted(t *testing.T) {
	c := fakeServer(t, map[string][]string{
		"UID": {
			"* 2 FETCH (UID 7 FLAGS (\\Seen) MODSEQ (12) BODY[] {5}\r\nhello)",
			"* 2 FETCH (RFC822.SIZE 5 UID 7)",
			"* 3 FETCH (FLAGS (\\Deleted))", // unsolicited: no UID
			"TAG OK done",
		},
		"APPEND": {"+", "TAG OK [APPENDUID 99 42] appended"},
		"CREATE": {"TAG NO [ALREADYEXISTS] Mailbox already exists"},
		"SELECT": {"* 5 EXISTS", "* OK [UIDVALIDITY 99] x", "* OK [HIGHESTMODSEQ 77] x", "TAG OK [READ-WRITE] done"},
	})
	if !c.Caps["CONDSTORE"] {
		t.Fatalf("caps = %v", c.Caps)
	}
	msgs, err := c.UIDFetch("7", "BODY.PEEK[]")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].UID != 7 || string(msgs[0].Body) != "hello" || msgs[0].Size != 5 || msgs[0].ModSeq != 12 {
		t.Errorf("UIDFetch = %+v", msgs)
	}
	uid, err := c.Append("INBOX", []string{`\Seen`}, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), []byte("a\r\nb\r\n"))
	if err != nil || uid != 42 {
		t.Errorf("Append = %d, %v", uid, err)
	}
	err = c.Create("INBOX")
	var ce *CommandError
	if !errors.Is(err, ErrNo) || !errors.As(err, &ce) || ce.Resp.Code != "ALREADYEXISTS" {
		t.Errorf("Create = %v", err)
	}
	mb, err := c.Select("INBOX")
	if err != nil || mb.Exists != 5 || mb.UIDValidity != 99 || mb.HighestModSeq != 77 || mb.ReadOnly {
		t.Errorf("Select = %+v, %v", mb, err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		`INBOX`:        `"INBOX"`,
		`Old Stuff`:    `"Old Stuff"`,
		`\Sent`:        `"\\Sent"`,
		`say "hi"`:     `"say \"hi\""`,
		`Entw&APw-rfe`: `"Entw&APw-rfe"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
		w := wireReader{bufio.NewReader(strings.NewReader("* X " + Quote(in) + "\r\n"))}
		r, err := w.next()
		if err != nil || r.data.Fields[0].Text != in {
			t.Errorf("round trip of %q: %+v, %v", in, r, err)
		}
	}
}
