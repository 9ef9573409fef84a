package cyruslab

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/loopback"
)

// TestLab starts a real Cyrus, populates it and checks the result through
// IMAP and Cyrus's own tools, then restarts it on the same directory.
func TestLab(t *testing.T) {
	start := time.Now()
	lab := Start(t, Options{})
	t.Logf("start: %v", time.Since(start))
	fill := time.Now()
	lab.Populate(t)
	t.Logf("populate: %v", time.Since(fill))

	t.Run("ports", func(t *testing.T) {
		pid, ok := lab.runningPID()
		if !ok {
			t.Fatal("not running")
		}
		if owned, known := loopback.ListensOn(pid, lab.IMAPAddr); !known || !owned {
			t.Errorf("listensOn(master, %s) = %v, %v; want true, true", lab.IMAPAddr, owned, known)
		}
		if owned, _ := loopback.ListensOn(pid, "127.0.0.1:1"); owned {
			t.Error("master listens on port 1?")
		}
	})

	t.Run("folders", func(t *testing.T) {
		c := lab.IMAP(t, Admin)
		list, err := c.List("", "*")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range list {
			got = append(got, e.Name)
		}
		var want []string
		for name := range Exists {
			want = append(want, name)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("LIST as admin = %q, want %q", got, want)
		}
		// The admin may list but not read users' mailboxes: ask owners.
		clients := map[string]*IMAPClient{}
		for name, n := range Exists {
			user, mbox := "alice", name
			if rest, ok := strings.CutPrefix(name, "user."); ok {
				user, rest, _ = strings.Cut(rest, ".")
				mbox = strings.TrimSuffix("INBOX."+rest, ".")
			}
			if clients[user] == nil {
				clients[user] = lab.IMAP(t, user)
			}
			st, err := clients[user].Status(mbox, "MESSAGES")
			if err != nil {
				t.Fatal(err)
			}
			if st["MESSAGES"] != uint64(n) {
				t.Errorf("%s: MESSAGES %d, want %d", name, st["MESSAGES"], n)
			}
		}
	})

	t.Run("alice-inbox", func(t *testing.T) {
		c := lab.IMAP(t, "alice")
		mb, err := c.Examine("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if mb.Exists != 33 || mb.UIDNext != 37 || mb.HighestModSeq == 0 || !mb.ReadOnly {
			t.Errorf("EXAMINE INBOX = %+v", mb)
		}
		msgs, err := c.UIDFetch("1:*", "(FLAGS INTERNALDATE RFC822.SIZE MODSEQ DIGEST.SHA1 BODY.PEEK[] ANNOTATION (/comment (value.shared value.priv)))")
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 33 {
			t.Fatalf("fetched %d messages, want 33", len(msgs))
		}
		byUID := map[uint32]*Message{}
		for i := range msgs {
			m := &msgs[i]
			byUID[m.UID] = m
			if int64(len(m.Body)) != m.Size {
				t.Errorf("UID %d: %d body bytes, RFC822.SIZE %d", m.UID, len(m.Body), m.Size)
			}
			sum := sha1.Sum(m.Body)
			if hex.EncodeToString(sum[:]) != m.Digest {
				t.Errorf("UID %d: DIGEST.SHA1 %s, SHA-1 of body %x", m.UID, m.Digest, sum)
			}
			if m.ModSeq == 0 || m.ModSeq > mb.HighestModSeq {
				t.Errorf("UID %d: MODSEQ %d, HIGHESTMODSEQ %d", m.UID, m.ModSeq, mb.HighestModSeq)
			}
		}
		for _, uid := range []uint32{10, 11, 12} {
			if byUID[uid] != nil {
				t.Errorf("expunged UID %d still listed", uid)
			}
		}
		tests := []struct {
			uid  uint32
			flag string
			want bool
		}{
			{4, `\Answered`, true}, {5, `\Seen`, true}, {6, `\Flagged`, true}, {7, "$Label1", false}, {8, "$Label1", true},
			{9, `\Seen`, true}, {9, "Junk", true}, {13, `\Deleted`, true}, {14, `\Deleted`, true},
			{15, `\Deleted`, false}, {34, `\Seen`, true}, {35, `\Flagged`, true}, {1, `\Seen`, false},
		}
		for _, tt := range tests {
			if m := byUID[tt.uid]; m == nil || m.HasFlag(tt.flag) != tt.want {
				t.Errorf("UID %d has %s: want %v (message found: %v)", tt.uid, tt.flag, tt.want, m != nil)
			}
		}
		if m := byUID[34]; m == nil || m.Size < 1_600_000 || !m.InternalDate.Equal(day(2024, 3, 1, 10)) {
			t.Errorf("big message missing, too small or misdated")
		}
		if v, ok := byUID[3].Annotation("/comment", "value.shared"); !ok || v != "msg note" {
			t.Errorf("UID 3 /comment value.shared = %q, %v", v, ok)
		}
		if v, ok := byUID[4].Annotation("/comment", "value.priv"); !ok || v != "alice's private msg note" {
			t.Errorf("UID 4 /comment value.priv = %q, %v", v, ok)
		}
		md, err := c.GetMetadata("INBOX", "/private/comment")
		if err != nil || md["/private/comment"] == "" {
			t.Errorf("GETMETADATA INBOX /private/comment = %v, %v", md, err)
		}
		// The duplicate in Archive.2019 has the same GUID as INBOX UID 36.
		if _, err := c.Examine("INBOX.Archive.2019"); err != nil {
			t.Fatal(err)
		}
		arch, err := c.UIDFetch("1", "DIGEST.SHA1")
		if err != nil || len(arch) != 1 || arch[0].Digest != byUID[36].Digest {
			t.Errorf("Archive.2019 UID 1 digest %v, %v; INBOX UID 36 %s", arch, err, byUID[36].Digest)
		}
	})

	t.Run("bob-view", func(t *testing.T) {
		c := lab.IMAP(t, "bob")
		if _, err := c.Examine("user.alice.team"); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.UIDFetch("1:*", "FLAGS")
		if err != nil {
			t.Fatal(err)
		}
		var seen []uint32
		for _, m := range msgs {
			if m.HasFlag(`\Seen`) {
				seen = append(seen, m.UID)
			}
		}
		if !slices.Equal(seen, []uint32{1, 2}) {
			t.Errorf("bob's seen on user.alice.team = %v, want [1 2]", seen)
		}
	})

	t.Run("tools", func(t *testing.T) {
		out := lab.Tool(t, "mbexamine", "user.alice.Archive.2019")
		if !strings.Contains(out, "Number of Messages: 6") {
			t.Errorf("mbexamine output lacks the message count:\n%s", out)
		}
		js := lab.Tool(t, "ctl_mboxlist", "-d")
		var mboxes map[string]json.RawMessage
		if err := json.Unmarshal([]byte(js), &mboxes); err != nil {
			t.Fatalf("ctl_mboxlist -d: %v\n%s", err, js)
		}
		if len(mboxes) != len(Exists) {
			t.Errorf("ctl_mboxlist -d lists %d mailboxes, want %d", len(mboxes), len(Exists))
		}
		var te *ToolError
		if _, err := lab.RunTool(nil, "mbpath", "user.nobody"); !errors.As(err, &te) {
			t.Errorf("mbpath of a missing mailbox: %v, want a *ToolError", err)
		}
		if _, err := lab.RunTool(nil, "../bin/sh"); !errors.Is(err, ErrToolName) {
			t.Errorf("RunTool(../bin/sh) = %v, want ErrToolName", err)
		}
	})

	t.Run("refill", func(t *testing.T) {
		if err := lab.Fill(); !errors.Is(err, ErrPopulated) {
			t.Errorf("second Fill = %v, want ErrPopulated", err)
		}
	})

	t.Run("restart", func(t *testing.T) {
		lab.Stop(t)
		if lab.Running() {
			t.Fatal("running after Stop")
		}
		if pids := lab.processes(); len(pids) > 0 {
			t.Fatalf("processes %v left after Stop", pids)
		}
		// Offline, the spool is quiescent: the message files are there.
		out := lab.Tool(t, "mbpath", "user.alice")
		dir := strings.TrimSpace(out)
		if _, err := os.Stat(filepath.Join(dir, "34.")); err != nil {
			t.Errorf("mbpath user.alice = %q: %v", dir, err)
		}
		lab.Start(t)
		c := lab.IMAP(t, "alice")
		st, err := c.Status("INBOX", "MESSAGES")
		if err != nil || st["MESSAGES"] != 33 {
			t.Errorf("after restart STATUS INBOX = %v, %v", st, err)
		}
	})
}

// TestDeliverAndLegacy delivers to a lab with legacy directories and a
// sync_server port.
func TestDeliverAndLegacy(t *testing.T) {
	t.Parallel()
	lab := Start(t, Options{LegacyDirs: true, SyncPort: true})
	adm := lab.IMAP(t, Admin)
	if err := adm.Create("user.carol"); err != nil {
		t.Fatal(err)
	}
	msg := MessageSpec{N: 1, Date: day(2024, 1, 1, 10), Subject: "dot stuffing"}.Build(NewRand(1))
	msg = append(msg, ".\r\n..two dots\r\nlast line without CRLF"...)
	lab.Deliver(t, "carol", msg)
	c := lab.IMAP(t, "carol")
	if _, err := c.Examine("INBOX"); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.UIDFetch("1", "BODY.PEEK[]")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v, %v", msgs, err)
	}
	// lmtpd prepends Return-Path and Received; the rest arrives as sent.
	if want := append(msg, "\r\n"...); !bytes.HasSuffix(msgs[0].Body, want) {
		t.Errorf("delivered body does not end with the message:\n%q", msgs[0].Body)
	}
	dir := strings.TrimSpace(lab.Tool(t, "mbpath", "user.carol"))
	if want := filepath.Join(lab.Partition, "c", "user", "carol"); dir != want {
		t.Errorf("legacy path of user.carol = %q, want %q", dir, want)
	}
	if err := lab.SendLMTP("x@example.org", "nosuchuser", msg); !errors.Is(err, ErrRefused) {
		t.Errorf("delivery to a missing user: %v, want ErrRefused", err)
	}
	// sync_server greets with its capabilities, then "* OK ... sync server".
	conn, err := net.DialTimeout("tcp", lab.SyncAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("sync_server banner: %v", err)
		}
		if strings.HasPrefix(line, "* OK") {
			if !strings.Contains(line, "sync server") {
				t.Errorf("sync_server banner %q", line)
			}
			break
		}
	}
}
