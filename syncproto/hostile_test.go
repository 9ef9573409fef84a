package syncproto

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text: ok":          "plain text: ok",
		"\x1b[2J\x07gone\rOK":     `\x1b[2J\x07gone\x0dOK`,
		"caf\u00e9 \u2603":        "caf\u00e9 \u2603",
		"c1 \u009b31m":            `c1 \u009b31m`,
		"bad \xff utf-8":          `bad \xff utf-8`,
		"tab\there":               `tab\x09here`,
		"del\x7f":                 `del\x7f`,
		`a \ backslash is a byte`: `a \ backslash is a byte`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIdleTimeout: a server that stops answering ends the wait with
// ErrTimeout; so does one that never answers EXIT, within the close
// limit.
func TestIdleTimeout(t *testing.T) {
	stall := make(chan struct{})
	conn := serve(t, func(s *fakeServer) {
		opening(s, false)
		s.expect("GET USER alice")
		<-stall // the client gives up and closes
	})
	c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Line("GET", "USER", dlist.NewAtom("alice"), nil)
	close(stall)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrConnection) {
		t.Errorf("stalled server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %s", d)
	}
}

func TestExitNotAnswered(t *testing.T) {
	conn := serve(t, func(s *fakeServer) {
		opening(s, false)
		s.expect("EXIT")
		s.r.ReadString('\n') // until the client hangs up
	})
	c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close waited %s", d)
	}
}

// TestHandlerErrorEndsReply: after a handler's error nothing more of the
// reply is read, however long it would go on.
func TestHandlerErrorEndsReply(t *testing.T) {
	conn := serve(t, func(s *fakeServer) {
		opening(s, false)
		s.expect("GET USER alice")
		for i := 0; i < 1000; i++ {
			if _, err := s.w.Write([]byte("* LSUB (a b c)\r\n")); err != nil {
				return
			}
		}
	})
	c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	boom := errors.New("boom")
	err = c.Line("GET", "USER", dlist.NewAtom("alice"), func(string, *dlist.Reader) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || calls != 1 || !strings.Contains(err.Error(), "reply to GET USER alice") {
		t.Errorf("err %v after %d calls", err, calls)
	}
}

// TestLineHeldLimit: a data line may hold at most MaxHeld, counted after
// inflation; a handler that releases what it spooled is not limited.
func TestLineHeldLimit(t *testing.T) {
	item := strings.Repeat("x", 1000) + " "
	n := (MaxHeld / len(item)) + 10
	for _, release := range []bool{false, true} {
		conn := serve(t, func(s *fakeServer) {
			opening(s, true)
			s.expect("GET USER alice")
			w := s.w
			w.Write([]byte("* LSUB ("))
			for i := 0; i < n; i++ {
				if _, err := w.Write([]byte(item)); err != nil {
					return
				}
			}
			s.send(")", "OK done")
		})
		c, err := NewClient(context.Background(), conn, Config{AuthName: "admin", Password: "pw", Compress: true})
		if err != nil {
			t.Fatal(err)
		}
		items := 0
		err = c.Line("GET", "USER", dlist.NewAtom("alice"), func(name string, r *dlist.Reader) error {
			if _, err := r.Next(); err != nil { // (
				return err
			}
			for {
				tok, err := r.Next()
				if err != nil || tok.Kind == dlist.End {
					return err
				}
				items++
				if release {
					c.Release()
				}
			}
		})
		if release && (err != nil || items != n) {
			t.Errorf("released: %v after %d of %d items", err, items, n)
		}
		if !release && !errors.Is(err, ErrLimit) {
			t.Errorf("held: %v after %d items", err, items)
		}
		c.Close()
	}
}
