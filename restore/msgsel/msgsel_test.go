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

func TestSpill(t *testing.T) {
	var s Spill
	defer s.Close()
	next, err := s.Records()
	if r, err2 := next(); err != nil || err2 != nil || r != nil {
		t.Fatalf("empty spill: %v %v %v", r, err, err2)
	}
	for i := 1; i <= 3; i++ {
		r := &syncrec.Record{UID: uint32(i), GUID: guid.GUID{byte(i)}, Flags: []string{`\Seen`},
			Annotations: []syncrec.Annotation{{Entry: "/comment", Value: []byte("v")}}}
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	for pass := 0; pass < 2; pass++ {
		next, err := s.Records()
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; ; i++ {
			r, err := next()
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				if i != 4 {
					t.Errorf("pass %d: %d records", pass, i-1)
				}
				break
			}
			if r.UID != uint32(i) || r.GUID != (guid.GUID{byte(i)}) || r.Flags[0] != `\Seen` || string(r.Annotations[0].Value) != "v" {
				t.Errorf("pass %d: %+v", pass, r)
			}
		}
	}
}

func TestAppender(t *testing.T) {
	a := NewAppender(10, 100, 12345)
	defer a.Close()
	if err := a.Have(guid.GUID{1}); err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, g := range []byte{1, 2, 3, 2} {
		r := &syncrec.Record{UID: 1, GUID: guid.GUID{g}, Modseq: 5}
		ok, err := a.Next(r)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if r.Modseq != 101 || r.LastUpdated != 12345 || string(r.Annotations[0].Value) != "101" {
				t.Errorf("%+v", r)
			}
			got = append(got, r.UID)
		}
	}
	if len(got) != 2 || got[0] != 11 || got[1] != 12 || a.Added != 2 || a.Present != 2 || a.LastUID() != 12 {
		t.Errorf("UIDs %v, added %d, present %d, last %d", got, a.Added, a.Present, a.LastUID())
	}
}
