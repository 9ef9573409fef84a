package msgsel

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

func TestParseUIDs(t *testing.T) {
	got, err := ParseUIDs("1:40,55, 60:*,9:7")
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{1, 40}, {55, 55}, {60, 1<<32 - 1}, {7, 9}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "0", "a:3", "1:", "4294967296"} {
		if _, err := ParseUIDs(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestMatch(t *testing.T) {
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	g := guid.GUID{1}
	r := &syncrec.Record{UID: 5, GUID: g, InternalDate: day.Add(time.Hour).Unix()}
	mid := func() (string, error) { return " <a@b> ", nil }
	for _, c := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{UIDs: []Range{{1, 4}}}, false},
		{Filter{UIDs: []Range{{1, 4}, {5, 5}}}, true},
		{Filter{GUIDs: map[guid.GUID]bool{{2}: true}}, false},
		{Filter{GUIDs: map[guid.GUID]bool{g: true}, UIDs: []Range{{5, 9}}}, true},
		{Filter{Since: day}, true},
		{Filter{Since: day.Add(2 * time.Hour)}, false},
		{Filter{Before: day.Add(time.Hour)}, false},
		{Filter{Before: day.Add(time.Hour + time.Second)}, true},
		{Filter{MessageIDs: map[string]bool{"a@b": true}}, true},
		{Filter{MessageIDs: map[string]bool{"x@b": true}}, false},
	} {
		got, err := c.f.Match(r, mid)
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.f.String(), got, err, c.want)
		}
	}
}

func TestMessageID(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{"From: a\r\nMessage-ID: <x@y>\r\n\r\nbody", "<x@y>"},
		{"message-id:\r\n <folded@y>\r\nSubject: s\r\n\r\n", "<folded@y>"},
		{"From: a\r\n\r\nMessage-ID: <in-body@y>\r\n", ""},
		{"From: a\r\nMessage-ID: <first@y>\r\nMessage-ID: <second@y>\r\n\r\n", "<first@y>"},
		{"X: " + strings.Repeat("z", 100000) + "\r\nMessage-ID: <after-long@y>\r\n\r\n", "<after-long@y>"},
		{"Message-ID: <no-body@y>", "<no-body@y>"},
	} {
		got, err := MessageID(strings.NewReader(c.msg))
		if err != nil || got != c.want {
			t.Errorf("%.40q: %q %v, want %q", c.msg, got, err, c.want)
		}
	}
}
