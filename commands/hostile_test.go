package commands

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

// The hostile-server suite: `dump --server` against a fake sync_server on
// loopback that speaks Cyrus's protocol and lies, stalls or floods in one
// way per case (issue 20). Every case runs mbtool as a real process and
// checks its exit status and error line exactly, its peak RSS (the
// child's rusage) under 64 MiB, and that nothing is left under the output
// name (or, for a run that succeeds, that the dump is there).

// maxHostileRSS is the peak RSS every case must stay under.
const maxHostileRSS = 64 << 20

// hconn is the fake server's side of one connection.
type hconn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	fw   *flate.Writer
	// notify, if set, is closed when the script wants the test to act
	// (send a signal).
	notify chan struct{}
}

func (s *hconn) send(lines ...string) error {
	for _, l := range lines {
		s.w.WriteString(l + "\r\n")
	}
	return s.flush()
}

func (s *hconn) flush() error {
	if s.fw != nil {
		if err := s.w.Flush(); err != nil {
			return err
		}
		return s.fw.Flush()
	}
	return s.w.Flush()
}

// line reads one command line, "" when the client is gone.
func (s *hconn) line() string {
	l, err := s.r.ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimRight(l, "\r\n")
}

// stall waits until the client hangs up.
func (s *hconn) stall() {
	io.Copy(io.Discard, s.r)
}

// open plays the opening: banner, AUTHENTICATE, NOOP, and COMPRESS when
// offered and asked for.
func (s *hconn) open(compress bool) bool {
	banner := []string{"* SASL PLAIN"}
	if compress {
		banner = append(banner, "* COMPRESS DEFLATE")
	}
	banner = append(banner, "* OK hostile Cyrus sync server 3.6.1")
	s.send(banner...)
	if !strings.HasPrefix(s.line(), "AUTHENTICATE PLAIN ") {
		return false
	}
	s.send("OK Success (no protection)")
	if s.line() != "NOOP" {
		return false
	}
	s.send("OK Noop completed")
	if compress {
		if s.line() != "COMPRESS DEFLATE" {
			return false
		}
		s.send("OK DEFLATE active")
		s.r = bufio.NewReader(flate.NewReader(s.conn))
		s.fw, _ = flate.NewWriter(s.conn, flate.BestSpeed)
		s.w = bufio.NewWriterSize(s.fw, 64<<10)
	}
	return true
}

// fakeBox is one mailbox the fake server has.
type fakeBox struct {
	mb    syncrec.Mailbox
	recs  []syncrec.Record
	files map[guid.GUID][]byte
}

// fakeUser is alice as the fake server tells it, before a case changes it.
type fakeUser struct {
	boxes []*fakeBox
	lsub  []string
	// hook, if set, sees each command first; it returns true when it
	// answered it.
	hook func(s *hconn, line string) bool
}

func newFakeUser() *fakeUser {
	msg1 := []byte("From: bob\r\nSubject: one\r\n\r\nThe first message of alice.\r\n")
	msg2 := []byte("From: carol\r\nSubject: two\r\n\r\nThe second message.\r\n")
	g1, g2 := guid.GUID(sha1.Sum(msg1)), guid.GUID(sha1.Sum(msg2))
	b := &fakeBox{
		mb: syncrec.Mailbox{UniqueID: "a1b2c3d4e5f6a7b8c9d0e1f2", Name: "user.alice", LastUID: 2, HighestModseq: 4,
			UIDValidity: 1700000000, Partition: "default", ACL: "alice\tlrswipkxtecdan\t", Options: "P"},
		recs: []syncrec.Record{
			{UID: 1, Modseq: 3, LastUpdated: 1700000001, Flags: []string{`\Seen`}, InternalDate: 1700000001, Size: uint32(len(msg1)), GUID: g1},
			{UID: 2, Modseq: 4, LastUpdated: 1700000002, InternalDate: 1700000002, Size: uint32(len(msg2)), GUID: g2},
		},
		files: map[guid.GUID][]byte{g1: msg1, g2: msg2},
	}
	return &fakeUser{boxes: []*fakeBox{b}, lsub: []string{"user.alice"}}
}

// writeBox writes "* MAILBOX %(...)" with the records, with CRCs that
// match them.
func (s *hconn) writeBox(b *fakeBox, records bool) error {
	mb := b.mb
	var recs []syncrec.Record
	if records {
		recs = b.recs
		crc := syncrec.NewCRC()
		for i := range recs {
			crc.Add(&recs[i])
		}
		mb.SyncCRC, mb.SyncCRCAnnot = crc.Basic, crc.Annot
	}
	w := dlist.NewWriter(s.w)
	i := 0
	err := syncrec.WriteMailbox(w, "*", &mb, func() (*syncrec.Record, error) {
		if i == len(recs) {
			return nil, nil
		}
		i++
		return &recs[i-1], nil
	})
	if err == nil {
		err = w.Flush()
	}
	return err
}

var fetchGUID = regexp.MustCompile(`GUID ([0-9a-f]{40})`)

// serve answers the commands of a dump --server of alice.
func (s *hconn) serve(u *fakeUser) {
	for {
		line := s.line()
		if line == "" {
			return
		}
		if u.hook != nil && u.hook(s, line) {
			continue
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch {
		case line == "EXIT":
			s.send("OK Finished")
			return
		case line == "NOOP":
			s.send("OK Noop completed")
		case verb == "GET" && strings.HasPrefix(arg, "USER "):
			for _, b := range u.boxes {
				s.writeBox(b, false)
			}
			if len(u.lsub) > 0 {
				s.send("* LSUB (" + strings.Join(u.lsub, " ") + ")")
			}
			s.send("OK success")
		case verb == "GET" && strings.HasPrefix(arg, "FULLMAILBOX "):
			name := strings.TrimPrefix(arg, "FULLMAILBOX ")
			found := false
			for _, b := range u.boxes {
				if b.mb.Name == name && !found {
					found = true
					s.writeBox(b, true)
				}
			}
			if !found {
				s.send("NO IMAP_MAILBOX_NONEXISTENT Mailbox does not exist")
				continue
			}
			s.send("OK success")
		case verb == "GET" && strings.HasPrefix(arg, "FETCH "):
			m := fetchGUID.FindStringSubmatch(arg)
			var body []byte
			var g guid.GUID
			if m != nil {
				g, _ = guid.Parse(m[1])
				for _, b := range u.boxes {
					if f, ok := b.files[g]; ok {
						body = f
					}
				}
			}
			if body == nil {
				s.send("NO IMAP_MAILBOX_NONEXISTENT No such file")
				continue
			}
			s.w.WriteString(fmt.Sprintf("* MESSAGE %%{default %s %d}\r\n", g, len(body)))
			s.w.Write(body)
			s.send("", "OK success")
		case verb == "GET" && strings.HasPrefix(arg, "QUOTA "):
			s.send("NO IMAP_QUOTAROOT_NONEXISTENT Quota root does not exist")
		default:
			s.send("BAD IMAP_PROTOCOL_ERROR Unrecognized command")
		}
	}
}

// flood writes prefix, then chunk until the client hangs up.
func (s *hconn) flood(prefix, chunk string) {
	s.w.WriteString(prefix)
	for {
		if _, err := s.w.WriteString(chunk); err != nil {
			return
		}
		if s.w.Buffered() > 32<<10 {
			if err := s.flush(); err != nil {
				return
			}
		}
	}
}

// hostileRun is what one case observed.
type hostileRun struct {
	code   int
	stderr string
	rss    int64
	out    []string // the files in the output directory
}

// runHostile starts the fake server with script and runs mbtool dump
// --server against it; interrupt, when set, is closed by the script to
// have mbtool sent SIGINT.
func runHostile(t *testing.T, script func(s *hconn), interrupt bool, restore string, extra ...string) hostileRun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	notify := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		s := &hconn{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriterSize(conn, 64<<10), notify: notify}
		script(s)
	}()
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "alice.dlist")
	args := append([]string{"dump", "--server", ln.Addr().String(), "--password-file", pw, "--timeout", "2s",
		"--user", "alice", "-q", "-o", out}, extra...)
	if restore != "" {
		args = append([]string{"restore", "--server", ln.Addr().String(), "--password-file", pw, "--timeout", "2s", "-q", restore}, extra...)
	}
	p, rss := startMeasured(t, args...)
	if interrupt {
		select {
		case <-notify:
			time.Sleep(200 * time.Millisecond)
			p.signal(syscall.SIGINT)
		case <-p.done:
		}
	}
	code, stderr := p.wait(2 * time.Minute)
	ln.Close()
	<-served
	run := hostileRun{code: code, stderr: strings.ReplaceAll(stderr, ln.Addr().String(), "$SERVER"), rss: rss()}
	ents, err := os.ReadDir(outDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		run.out = append(run.out, e.Name())
	}
	return run
}

// selfSigned returns a PEM certificate for 127.0.0.1, for --tls-ca.
func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// hostileCase is one way a server misbehaves.
type hostileCase struct {
	name   string
	item   int // of issue 20
	script func(s *hconn)
	// user, for the cases that serve alice with one thing changed.
	user      func(u *fakeUser)
	compress  bool
	interrupt bool
	restore   bool // restore --server of a sample dump of alice, not dump --server
	args      []string
	exit      int
	said      string // the error line, exactly ("" for a run that succeeds)
	kept      bool   // the dump is kept under its name
}

func hostileCases(t *testing.T) []hostileCase {
	mismatch := func(size int) func(u *fakeUser) {
		return func(u *fakeUser) {
			body := bytes.Repeat([]byte("x"), size)
			g := guid.GUID(sha1.Sum(body))
			bad := append([]byte(nil), body...)
			bad[size/2] = 'y'
			b := u.boxes[0]
			b.recs = b.recs[:1]
			b.recs[0].GUID, b.recs[0].Size = g, uint32(size)
			b.mb.LastUID = 1
			b.files = map[guid.GUID][]byte{g: bad}
		}
	}
	box := func(f func(b *fakeBox)) func(u *fakeUser) {
		return func(u *fakeUser) { f(u.boxes[0]) }
	}
	// tlsCA is written where the STARTTLS case finds it.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, selfSigned(t), 0o644); err != nil {
		t.Fatal(err)
	}
	hugeLiteral := strings.Repeat("v", 1<<20)
	long := strings.Repeat("n", 400) // long names fill the budget with fewer lines
	return []hostileCase{
		{name: "a well-behaved server", exit: 0, kept: true},
		{name: "a well-behaved server, compressed", compress: true, exit: 0, kept: true},

		// 1. files whose bytes do not match their GUID
		{name: "a 63-byte file that does not match its GUID", item: 1, user: mismatch(63), exit: 1,
			said: "mbtool: error: mailbox user.alice UID 1: message file 0ddc4e0cccd9a12850deb5abb0853a4425559fec: guid: content hashes to 31a8d9a2e1135203fd5975ca16e9e9ad5fa7924e, expected 0ddc4e0cccd9a12850deb5abb0853a4425559fec"},
		{name: "a 5 MB file that does not match its GUID, compressed", item: 1, user: mismatch(5 << 20), compress: true, exit: 1,
			said: "mbtool: error: mailbox user.alice UID 1: message file 4c7dffd80750fd231e27d71292631f7e9846b020: guid: content hashes to 2225b4eed4b1d05fdeaa198cf15e4f2032198e91, expected 4c7dffd80750fd231e27d71292631f7e9846b020"},

		// 2. names and records restore would refuse
		{name: "a mailbox name with ..", item: 2, user: func(u *fakeUser) {
			b := *u.boxes[0]
			b.mb.Name = "user.alice.^^"
			u.boxes = append(u.boxes, &b)
		}, exit: 1, said: "mbtool: error: reply to GET USER alice: unsafe or invalid name in dump: mailbox name \"user.alice.^^\": empty or dot component"},
		{name: "a mailbox name with /", item: 2, user: func(u *fakeUser) {
			b := *u.boxes[0]
			b.mb.Name = "user.alice.a/b"
			u.boxes = append(u.boxes, &b)
		}, exit: 1, said: "mbtool: error: reply to GET USER alice: unsafe or invalid name in dump: mailbox name \"user.alice.a/b\": contains '/'"},
		{name: "a uniqueid with ..", item: 2, user: box(func(b *fakeBox) { b.mb.UniqueID = "../../etc" }), exit: 1,
			said: "mbtool: error: reply to GET FULLMAILBOX user.alice: mailbox user.alice: unsafe or invalid name in dump: uniqueid \"../../etc\": byte 0x2e"},
		{name: "a partition with /", item: 2, user: box(func(b *fakeBox) { b.mb.Partition = "../p" }), exit: 1,
			said: "mbtool: error: reply to GET FULLMAILBOX user.alice: mailbox user.alice: unsafe or invalid name in dump: partition \"../p\""},
		{name: "an ACL identifier with /", item: 2, user: box(func(b *fakeBox) { b.mb.ACL = "../bob\tlr\t" }), exit: 1,
			said: "mbtool: error: reply to GET FULLMAILBOX user.alice: mailbox user.alice: ACL: unsafe or invalid name in dump: userid \"../bob\": byte 0x2f"},
		{name: "an annotation userid with /", item: 2, user: box(func(b *fakeBox) {
			b.mb.Annotations = []syncrec.Annotation{{Entry: "/comment", UserID: "a/b", Value: []byte("x")}}
		}), exit: 1, said: "mbtool: error: reply to GET FULLMAILBOX user.alice: mailbox user.alice: annotation /comment: unsafe or invalid name in dump: userid \"a/b\": byte 0x2f"},
		{name: "records out of order", item: 2, user: box(func(b *fakeBox) { b.recs[0], b.recs[1] = b.recs[1], b.recs[0] }), exit: 1,
			said: "mbtool: error: reply to GET FULLMAILBOX user.alice: mailbox user.alice UID 1: damaged dump: UID 1 follows UID 2 (UIDs must ascend)"},
		{name: "a record above LAST_UID", item: 2, user: box(func(b *fakeBox) { b.mb.LastUID = 1 }), exit: 1,
			said: "mbtool: error: reply to GET FULLMAILBOX user.alice: mailbox user.alice UID 2: damaged dump: UID 2 is above LAST_UID 1"},
		{name: "a record of SIZE 0", item: 2, user: box(func(b *fakeBox) { b.recs[1].Size = 0 }), exit: 1,
			said: "mbtool: error: reply to GET FULLMAILBOX user.alice: mailbox user.alice UID 2: damaged dump: SIZE 0"},
		{name: "a mailbox listed twice", item: 2, user: func(u *fakeUser) { u.boxes = append(u.boxes, u.boxes[0]) }, exit: 1,
			said: "mbtool: error: GET USER alice: protocol error: the server lists mailbox user.alice twice"},
		{name: "GET FULLMAILBOX user.alice answered with user.bob", item: 2, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if line != "GET FULLMAILBOX user.alice" {
					return false
				}
				b := *u.boxes[0]
				b.mb.Name = "user.bob"
				s.writeBox(&b, true)
				s.send("OK success")
				return true
			}
		}, exit: 1, said: "mbtool: error: reply to GET FULLMAILBOX user.alice: protocol error: the answer is about mailbox user.bob"},

		// 3. memory that follows the server
		{name: "a 270 MB LSUB line", item: 3, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if !strings.HasPrefix(line, "GET USER") {
					return false
				}
				s.writeBox(u.boxes[0], false)
				s.flood("* LSUB (", "user.alice.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ")
				return true
			}
		}, exit: 1, said: "mbtool: error: reply to GET USER alice: protocol error: reply over a limit: the answer holds more than 12 MiB of names and seen records"},
		{name: "a list line that inflates without end from a small compressed stream", item: 3, compress: true, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if !strings.HasPrefix(line, "GET USER") {
					return false
				}
				s.flood("* FOO (", "a a a a a a a a a a a a a a a a ")
				return true
			}
		}, exit: 1, said: "mbtool: error: reading the reply to GET USER alice: protocol error: reply over a limit: a reply line holds more than 16 MiB"},
		{name: "two 60 MB literals in a mailbox", item: 3, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if line != "GET FULLMAILBOX user.alice" {
					return false
				}
				s.w.WriteString("* MAILBOX %(UNIQUEID a1b2c3d4e5f6a7b8c9d0e1f2 MBOXNAME user.alice ANNOTATIONS (%(ENTRY /comment USERID \"\" MODSEQ 1 VALUE {62914560}\r\n")
				for i := 0; i < 60; i++ {
					if _, err := s.w.WriteString(hugeLiteral); err != nil {
						return true
					}
				}
				s.flood(") %(ENTRY /x USERID \"\" MODSEQ 1 VALUE {62914560}\r\n", hugeLiteral)
				return true
			}
		}, exit: 1, said: "mbtool: error: reply to GET FULLMAILBOX user.alice: dlist: line 1, offset 121: literal size: 62914560 exceeds limit 16777216"},
		{name: "endless * LSUB lines", item: 3, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if !strings.HasPrefix(line, "GET USER") {
					return false
				}
				s.writeBox(u.boxes[0], false)
				s.flood("", "* LSUB (user.alice."+long+"a user.alice."+long+"b user.alice."+long+"c)\r\n")
				return true
			}
		}, exit: 1, said: "mbtool: error: reply to GET USER alice: protocol error: reply over a limit: the answer holds more than 12 MiB of names and seen records"},
		{name: "endless * MAILBOX lines", item: 3, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if !strings.HasPrefix(line, "GET USER") {
					return false
				}
				for i := 0; ; i++ {
					b := *u.boxes[0]
					b.mb.Name = fmt.Sprintf("user.alice.%s%d", long, i)
					if s.writeBox(&b, false) != nil || i%1000 == 0 && s.flush() != nil {
						return true
					}
				}
			}
		}, exit: 1, said: "mbtool: error: reply to GET USER alice: protocol error: reply over a limit: the answer holds more than 12 MiB of names and seen records"},
		{name: "a mailbox of 300,000 records", item: 3, user: box(func(b *fakeBox) {
			r := b.recs[1]
			b.recs = make([]syncrec.Record, 300000)
			for i := range b.recs {
				b.recs[i] = r
				b.recs[i].UID = uint32(i + 1)
				b.recs[i].Modseq = 4
			}
			b.mb.LastUID = 300000
		}), exit: 0, kept: true},

		{name: "restore --server: endless * MAILBOX lines", item: 3, restore: true, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if !strings.HasPrefix(line, "GET USER") {
					return false
				}
				for i := 0; ; i++ {
					b := *u.boxes[0]
					b.mb.Name = fmt.Sprintf("user.alice.%s%d", long, i)
					if s.writeBox(&b, false) != nil || i%1000 == 0 && s.flush() != nil {
						return true
					}
				}
			}
		}, exit: 1, said: "mbtool: error: asking the server: reply to GET USER alice: protocol error: reply over a limit: the server lists more than 12 MiB of mailbox names (stopped; the summary above says what was applied)"},

		// 4. servers that stop answering
		{name: "silence after the greeting", item: 4, script: func(s *hconn) {
			s.send("* SASL PLAIN", "* OK hostile Cyrus sync server 3.6.1")
			s.stall()
		}, exit: 1, said: "mbtool: error: $SERVER: connection lost: timed out: the server sent and took nothing for 2s"},
		{name: "silence after login", item: 4, script: func(s *hconn) {
			if s.open(false) {
				s.stall()
			}
		}, exit: 1, said: "mbtool: error: reading the reply to GET USER alice: connection lost: timed out: the server sent and took nothing for 2s"},
		{name: "silence in the middle of a file", item: 4, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if !strings.HasPrefix(line, "GET FETCH") {
					return false
				}
				g, _ := guid.Parse(fetchGUID.FindStringSubmatch(line)[1])
				body := u.boxes[0].files[g]
				s.send(fmt.Sprintf("* MESSAGE %%{default %s %d}", g, len(body)) + "\r\n" + string(body[:len(body)/2]))
				s.stall()
				return true
			}
		}, exit: 1, said: "mbtool: error: mailbox user.alice UID 1: message file b4a588ad692f07a5ca25220a67e550789c9ad09f: dlist: reading file literal at offset 96: connection lost: timed out: the server sent and took nothing for 2s"},
		{name: "silence in the STARTTLS handshake", item: 4, args: []string{"--tls", "--tls-ca", caFile}, script: func(s *hconn) {
			s.send("* SASL PLAIN", "* STARTTLS", "* OK hostile Cyrus sync server 3.6.1")
			if s.line() == "STARTTLS" {
				s.send("OK Begin TLS negotiation now")
				s.stall()
			}
		}, exit: 1, said: "mbtool: error: $SERVER: TLS not available: handshake: timed out: the server sent and took nothing for 2s"},
		{name: "no answer to EXIT", item: 4, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if line != "EXIT" {
					return false
				}
				s.stall()
				return true
			}
		}, exit: 0, kept: true},
		{name: "no answer to EXIT, then Ctrl-C", item: 4, interrupt: true, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if line != "EXIT" {
					return false
				}
				close(s.notify)
				s.stall()
				return true
			}
		}, exit: 130, said: "mbtool: interrupted"},

		// 5. terminal control in server text
		{name: "ESC, BEL and CR in a NO answer", item: 5, user: func(u *fakeUser) {
			u.hook = func(s *hconn, line string) bool {
				if !strings.HasPrefix(line, "GET USER") {
					return false
				}
				s.send("NO IMAP_PERMISSION_DENIED \x1b[2J\x07gone\rOK all good")
				return true
			}
		}, exit: 1, said: `mbtool: error: GET USER alice: server answered NO IMAP_PERMISSION_DENIED \x1b[2J\x07gone\x0dOK all good`},
	}
}

// TestHostileServer runs every case of the hostile-server suite.
func TestHostileServer(t *testing.T) {
	aliceDump := sampleDump(t, t.TempDir(), "alice.dlist", "alice")
	for _, c := range hostileCases(t) {
		t.Run(c.name, func(t *testing.T) {
			script := c.script
			if script == nil {
				u := newFakeUser()
				if c.user != nil {
					c.user(u)
				}
				script = func(s *hconn) {
					if s.open(c.compress) {
						s.serve(u)
					}
				}
			}
			restore := ""
			if c.restore {
				restore = aliceDump
			}
			run := runHostile(t, script, c.interrupt, restore, c.args...)
			said := firstLine(run.stderr, "mbtool: error: ")
			if said == "" {
				said = firstLine(run.stderr, "mbtool: interrupted")
			}
			t.Logf("item %d: exit %d, peak RSS %.1f MiB, said %q", c.item, run.code, float64(run.rss)/(1<<20), said)
			if run.code != c.exit {
				t.Errorf("exit %d, want %d; stderr:\n%s", run.code, c.exit, run.stderr)
			}
			if said != c.said {
				t.Errorf("said %q, want %q", said, c.said)
			}
			if strings.ContainsAny(run.stderr, "\x1b\x07\r") {
				t.Errorf("control characters reached the terminal: %q", run.stderr)
			}
			if run.rss > maxHostileRSS {
				t.Errorf("peak RSS %d MiB, want under %d MiB", run.rss>>20, maxHostileRSS>>20)
			}
			want := []string(nil)
			if c.kept {
				want = []string{"alice.dlist"}
			}
			if strings.Join(run.out, ",") != strings.Join(want, ",") {
				t.Errorf("output directory holds %v, want %v", run.out, want)
			}
		})
	}
}

// TestPasswordFile checks that --password-file refuses a file open to
// group or others, and an empty password, before connecting.
func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, content string
		mode          os.FileMode
		said          string
	}{
		{"open to others", "pw\n", 0o644, "mbtool: error: --password-file $DIR/pw is open to group or others (mode 0644)"},
		{"open to the group", "pw\n", 0o640, "mbtool: error: --password-file $DIR/pw is open to group or others (mode 0640)"},
		{"empty", "\n", 0o600, "mbtool: error: --password-file $DIR/pw: the password (its first line) is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pw := filepath.Join(dir, "pw")
			os.Remove(pw)
			if err := os.WriteFile(pw, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(pw, c.mode); err != nil {
				t.Fatal(err)
			}
			code, stderr := runMbtool(t, procOptions{}, "dump", "--server", "127.0.0.1:1", "--password-file", pw,
				"--user", "alice", "-o", filepath.Join(dir, "out.dlist"))
			said := strings.ReplaceAll(firstLine(stderr, "mbtool: error: "), dir, "$DIR")
			if code != ExitUsage || said != c.said {
				t.Errorf("exit %d, said %q; want %d, %q", code, said, ExitUsage, c.said)
			}
		})
	}
}
