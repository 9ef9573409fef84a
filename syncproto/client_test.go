package syncproto

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
)

// fakeServer is a scripted peer: it greets, then runs script on the
// connection. Its error, if any, fails the test.
type fakeServer struct {
	t      *testing.T
	conn   net.Conn
	r      *bufio.Reader
	w      io.Writer
	fw     *flate.Writer
	closed bool
}

func (s *fakeServer) send(lines ...string) {
	for _, l := range lines {
		io.WriteString(s.w, l+"\r\n")
	}
	if s.fw != nil {
		s.fw.Flush()
	}
}

// expect reads one line and checks it.
func (s *fakeServer) expect(want string) string {
	line, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Errorf("server: reading %q: %v", want, err)
		return ""
	}
	line = strings.TrimSuffix(line, "\r\n")
	if want != "" && line != want {
		s.t.Errorf("server got %q, want %q", line, want)
	}
	return line
}

func (s *fakeServer) compress() {
	s.r = bufio.NewReader(flate.NewReader(s.conn))
	s.fw, _ = flate.NewWriter(s.conn, 1)
	s.w = s.fw
}

// serve starts a fake server and returns a connected client's conn.
func serve(t *testing.T, script func(s *fakeServer)) net.Conn {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sc.Close()
		s := &fakeServer{t: t, conn: sc, r: bufio.NewReader(sc), w: sc}
		script(s)
	}()
	t.Cleanup(func() {
		cc.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("fake server did not finish")
		}
	})
	return cc
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

var syncBanner = []string{"* SASL PLAIN", "* COMPRESS DEFLATE", "* OK test Cyrus sync server 3.6.1"}

// opening plays the server side of a session opening.
func opening(s *fakeServer, compress bool) {
	s.send(syncBanner...)
	s.expect("AUTHENTICATE PLAIN " + plainIR("admin", "pw"))
	s.send("OK Success (no protection)")
	s.expect("NOOP")
	s.send("OK Noop completed")
	if compress {
		s.expect("COMPRESS DEFLATE")
		s.send("OK DEFLATE active")
		s.compress()
	}
}

func TestSession(t *testing.T) {
	body := "hello\r\nworld"
	g := guid.GUID(sha1.Sum([]byte(body)))
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			conn := serve(t, func(s *fakeServer) {
				opening(s, compress)
				s.expect("GET USER alice")
				s.send("* MAILBOX %(UNIQUEID abc MBOXNAME user.alice ACL {6}",
					"a\tlr\tx)",
					fmt.Sprintf("* MESSAGE %%{default %s %d}", g, len(body))+"\r\n"+body,
					"* LSUB (user.alice user.alice.Sent)",
					"OK success")
				s.expect("GET FULLMAILBOX user.nobody")
				s.send("NO IMAP_MAILBOX_NONEXISTENT No Such Mailbox")
				s.expect("APPLY SUB %(USERID alice MBOXNAME {3+}")
				s.expect("\xe4\xf6\xfc)")
				s.send("BAD IMAP_PROTOCOL_ERROR Failed to parse APPLY line")
				s.expect("EXIT")
				s.send("OK Finished")
			})
			c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw", Compress: compress})
			if err != nil {
				t.Fatal(err)
			}
			if caps := c.Capabilities(); caps.Protocol != SyncServer || caps.Compressed != compress || !caps.Compress {
				t.Errorf("capabilities %+v", caps)
			}
			var got []string
			err = c.Line("GET", "USER", dlist.NewAtom("alice"), func(name string, r *dlist.Reader) error {
				if name == "MESSAGE" {
					t, err := r.Next()
					if err != nil {
						return err
					}
					b, err := io.ReadAll(r.Body())
					got = append(got, fmt.Sprintf("MESSAGE %s %q", t.File.GUID, b))
					return err
				}
				v, err := r.ReadValue()
				if err != nil {
					return err
				}
				if name == "MAILBOX" {
					got = append(got, "MAILBOX "+v.Get("MBOXNAME").String()+" "+fmt.Sprintf("%q", v.Get("ACL").String()))
				} else {
					got = append(got, fmt.Sprintf("%s %d", name, len(v.Children)))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{`MAILBOX user.alice "a\tlr\tx"`, fmt.Sprintf("MESSAGE %s %q", g, body), "LSUB 2"}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("data lines\n got %q\nwant %q", got, want)
			}
			err = c.Line("GET", "FULLMAILBOX", dlist.NewAtom("user.nobody"), nil)
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeNonexistent || e.Status != "NO" || !errors.Is(err, ErrRefused) ||
				e.Error() != "GET FULLMAILBOX user.nobody: server answered NO IMAP_MAILBOX_NONEXISTENT No Such Mailbox" {
				t.Errorf("NO answer: %v", err)
			}
			// 8-bit text goes as a non-synchronising literal.
			kv := dlist.NewKVList().Add("USERID", dlist.NewAtom("alice")).Add("MBOXNAME", dlist.NewAtom("\xe4\xf6\xfc"))
			err = c.Line("APPLY", "SUB", kv, nil)
			if CodeOf(err) != CodeProtocolError || !errors.As(err, &e) || e.Status != "BAD" {
				t.Errorf("BAD answer: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := c.Noop(); !errors.Is(err, ErrClosed) {
				t.Errorf("after Close: %v", err)
			}
		})
	}
}

func TestNotAdmin(t *testing.T) {
	conn := serve(t, func(s *fakeServer) {
		s.send(syncBanner...)
		s.expect("")
		s.send("OK Success (no protection)")
		s.expect("NOOP")
		s.send("NO Permission denied")
	})
	_, err := NewClient(context.Background(), conn, Config{AuthName: "bob", Password: "pw"})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "not an admin") {
		t.Errorf("non-admin: %v", err)
	}
}

func TestBadLogin(t *testing.T) {
	conn := serve(t, func(s *fakeServer) {
		s.send(syncBanner...)
		s.expect("")
		s.send("NO authentication failure")
	})
	_, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "x"})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("bad password: %v", err)
	}
}

func TestTLSNotOffered(t *testing.T) {
	conn := serve(t, func(s *fakeServer) { s.send(syncBanner...) })
	_, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw", TLS: &tls.Config{}})
	if !errors.Is(err, ErrTLS) {
		t.Errorf("TLS asked, not offered: %v", err)
	}
}

func TestConnectionLost(t *testing.T) {
	conn := serve(t, func(s *fakeServer) {
		opening(s, false)
		s.expect("GET USER alice")
		s.send("* MAILBOX %(UNIQUEID abc MBOXNAME user.al") // and dies
	})
	c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Line("GET", "USER", dlist.NewAtom("alice"), func(string, *dlist.Reader) error { return nil })
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "GET USER alice") {
		t.Errorf("lost connection: %v", err)
	}
	if err2 := c.Noop(); !errors.Is(err2, ErrConnection) {
		t.Errorf("after the loss: %v", err2)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestIMAPFlavour(t *testing.T) {
	conn := serve(t, func(s *fakeServer) {
		s.send("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN SASL-IR] test Cyrus IMAP 3.6.1 server ready")
		s.expect("S1 AUTHENTICATE PLAIN " + plainIR("admin", "pw"))
		s.send("S1 OK [CAPABILITY IMAP4rev1 LITERAL+ X-REPLICATION COMPRESS=DEFLATE] Success")
		s.expect("S2 SYNCGET MAILBOXES ()") // admins only
		s.send("S2 OK success")
		s.expect("S3 COMPRESS DEFLATE")
		s.send("S3 OK DEFLATE active")
		s.compress()
		s.expect("S4 SYNCGET USER alice")
		s.send("* 3 EXISTS", "* MAILBOX %(MBOXNAME user.alice)", "S4 OK success")
		s.expect("S5 SYNCAPPLY UNMAILBOX user.x")
		s.send("S5 NO IMAP_MAILBOX_NONEXISTENT Mailbox does not exist")
		s.expect("S6 LOGOUT")
		s.send("* BYE LOGOUT received", "S6 OK Completed")
	})
	c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw", Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	if caps := c.Capabilities(); caps.Protocol != IMAP || !caps.Compressed {
		t.Errorf("capabilities %+v", caps)
	}
	var names []string
	err = c.Line("GET", "USER", dlist.NewAtom("alice"), func(name string, r *dlist.Reader) error {
		names = append(names, name)
		return nil
	})
	if err != nil || strings.Join(names, " ") != "MAILBOX" {
		t.Errorf("SYNCGET: %v %v", names, err)
	}
	err = c.Line("APPLY", "UNMAILBOX", dlist.NewAtom("user.x"), nil)
	if CodeOf(err) != CodeNonexistent {
		t.Errorf("SYNCAPPLY: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

func TestLiteralMarker(t *testing.T) {
	tests := []struct {
		line string
		size int64
		ok   bool
		err  bool
	}{
		{"* LSUB (a b)\r\n", 0, false, false},
		{"* X %(A {12}\r\n", 12, true, false},
		{"* X %(A {12+}\r\n", 12, true, false},
		{"* MESSAGE %{default 0123456789012345678901234567890123456789 189}\r\n", 189, true, false},
		{"* X {}\r\n", 0, false, true},
		{"* X {-1}\r\n", 0, false, true},
		{"* X {99999999999}\r\n", 0, false, true},
		{"* X %{nospace}\n", 0, false, true},
		{"}\n", 0, false, false},
	}
	for _, tt := range tests {
		size, ok, err := literalMarker([]byte(tt.line))
		if size != tt.size || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("literalMarker(%q) = %d, %v, %v", tt.line, size, ok, err)
		}
	}
}

func TestFileVerified(t *testing.T) {
	good := []byte("From: a\r\n\r\nbody\r\n")
	g := guid.GUID(sha1.Sum(good))
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 1
	tests := []struct {
		name string
		body []byte
		size int64
		ok   bool
	}{
		{"good", good, int64(len(good)), true},
		{"flipped byte", bad, int64(len(good)), false},
		{"short body", good[:5], int64(len(good)), false},
		{"empty, wrong guid", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			received := make(chan []byte, 1)
			header := fmt.Sprintf("APPLY MESSAGE (%%{default %s %d}\r\n", g, tt.size)
			conn := serve(t, func(s *fakeServer) {
				opening(s, false)
				all := make([]byte, len(header)+int(tt.size)+len(")\r\n"))
				n, err := io.ReadFull(s.r, all) // or until the client closes
				if err == nil {
					s.send("OK success")
				}
				received <- all[:n]
			})
			c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw"})
			if err != nil {
				t.Fatal(err)
			}
			w, err := c.Begin()
			if err != nil {
				t.Fatal(err)
			}
			w.BeginLine("APPLY", "MESSAGE")
			w.BeginList()
			err = c.File("default", g, tt.size, bytes.NewReader(tt.body))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				w.EndList()
				w.EndLine()
				c.Send("APPLY MESSAGE")
				if err := c.Receive(nil); err != nil {
					t.Error(err)
				}
			}
			if !tt.ok {
				if err == nil {
					t.Fatal("File accepted a body that does not match")
				}
				if tt.size > 0 && !errors.Is(err, guid.ErrMismatch) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("error %v", err)
				}
				if c.Err() == nil {
					t.Error("session not broken")
				}
			}
			all := <-received
			switch {
			case tt.ok && !bytes.Equal(all, []byte(header+string(good)+")\r\n")):
				t.Errorf("server received %q", all)
			case !tt.ok && len(all) >= len(header)+int(tt.size) && tt.size > 0:
				t.Errorf("server received a complete literal: %q", all)
			}
		})
	}
}
