package msghdr

import (
	"strings"
	"testing"
)

func TestFields(t *testing.T) {
	b := []byte("X: 1\r\nfrom : A\r\n B\r\nSUBJECT: s\r\nMessage-Id:\r\n <id@x>\r\nFrom: second\r\n\r\nSubject: body\r\n")
	got := Fields(b, "from", "subject", "message-id", "date")
	if want := []string{"A B", "s", "<id@x>", ""}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Fields = %q, want %q", got, want)
	}
	long := "X: " + strings.Repeat("z", 100) + "\r\n" + strings.Repeat(" y\r\n", MaxValue) + "Message-ID: <m@x>\r\n\r\n"
	if got := Fields([]byte(long), "x", "message-id"); len(got[0]) > MaxValue+200 || got[1] != "<m@x>" {
		t.Errorf("a long folded field: %d bytes, then %q", len(got[0]), got[1])
	}
}

func TestRead(t *testing.T) {
	msg := "A: 1\r\nB: 2\r\n\r\n" + strings.Repeat("body\r\n", 10000)
	h, err := Read(strings.NewReader(msg), 1<<20)
	if err != nil || !strings.HasPrefix(string(h), "A: 1\r\nB: 2\r\n\r\n") || len(h) > 4<<10 {
		t.Errorf("Read = %d bytes, %v", len(h), err)
	}
	if h, _ := Read(strings.NewReader("A: 1\r\nB: 2"), 1<<20); string(h) != "A: 1\r\nB: 2" {
		t.Errorf("a header without an end: %q", h)
	}
	if h, _ := Read(strings.NewReader(strings.Repeat("X", 9000)), 5000); len(h) != 5000 {
		t.Errorf("limit: %d bytes", len(h))
	}
	if !Ended([]byte("\r\nbody"), 0) || Ended([]byte("A: 1\r\n"), 0) || !Ended([]byte("A: 1\r\n\r\n"), 3) {
		t.Error("Ended")
	}
}
