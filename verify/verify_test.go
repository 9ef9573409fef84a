package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mbtool/mbtool/guidtable"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
)

func TestFixtureOK(t *testing.T) {
	plain, zstd := fixture(t)
	for _, tt := range []struct {
		name string
		in   []byte
		opts Options
	}{
		{"plain", plain, Options{}},
		{"zstd", zstd, Options{}},
		{"one worker", plain, Options{Workers: 1}},
		{"smallest budget", plain, Options{Workers: 3, Budget: 1}},
	} {
		res := run(t, bytes.NewReader(tt.in), tt.opts)
		if res.err != nil || len(res.findings) > 0 || !res.sum.OK() {
			t.Fatalf("%s: %v", tt.name, res)
		}
		s := res.sum
		tr := s.Trailer
		if tr == nil || tr.Mailboxes != s.Mailboxes || tr.Messages != s.Messages || tr.Bytes != s.Bytes {
			t.Errorf("%s: summary %+v, trailer %+v", tt.name, s, tr)
		}
		if s.Mailboxes != 8 || s.Messages != 58 || s.Records != 60 {
			t.Errorf("%s: %d mailboxes, %d messages, %d records; the fixture dump has 8, 58, 60", tt.name, s.Mailboxes, s.Messages, s.Records)
		}
		// alice and bob have seen records for shared.team, not dumped.
		if s.SeenElsewhere != 2 {
			t.Errorf("%s: %d seen records outside the dump, want 2", tt.name, s.SeenElsewhere)
		}
	}
}

// TestRewriteIsIdentity checks the test helper: re-encoding the dump
// unchanged gives the same bytes, so edits made with it change only what
// they edit.
func TestRewriteIsIdentity(t *testing.T) {
	plain, _ := fixture(t)
	if got := rewrite(t, plain, func(l *dlist.Line) *dlist.Line { return l }); !bytes.Equal(got, plain) {
		t.Fatalf("rewrite changed the dump (%d bytes, was %d)", len(got), len(plain))
	}
}

func TestNotADump(t *testing.T) {
	plain, _ := fixture(t)
	boom := errors.New("disk on fire")
	for _, tt := range []struct {
		name string
		in   io.Reader
		want error
	}{
		{"empty", strings.NewReader(""), dumpfile.ErrNotDump},
		{"text", strings.NewReader("Subject: hello\r\n\r\nhi\r\n"), dumpfile.ErrNotDump},
		{"newer", strings.NewReader("MBTOOL HEADER %(FORMAT 9)\r\n"), dumpfile.ErrVersion},
		{"read error", io.MultiReader(bytes.NewReader(plain[:100000]), iotest.ErrReader(boom)), boom},
	} {
		res := run(t, tt.in, Options{})
		if !errors.Is(res.err, tt.want) {
			t.Errorf("%s: %v, want error %v", tt.name, res, tt.want)
		}
	}
}

func TestCancel(t *testing.T) {
	plain, _ := fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, bytes.NewReader(plain), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want %v", err, context.Canceled)
	}
}

// TestEdits makes one parse-aware change to the fixture dump, with a
// correct trailer, and checks that exactly the expected findings come out,
// at the edited record or mailbox.
func TestEdits(t *testing.T) {
	plain, _ := fixture(t)
	type edit = func(l *dlist.Line) *dlist.Line
	// onRecord edits the record with the given UID of the named mailbox.
	onRecord := func(mailbox string, uid string, fn func(r *dlist.Value)) edit {
		return func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "MAILBOX" && l.Value.Get("MBOXNAME").String() == mailbox {
				records(l, func(r *dlist.Value) {
					if r.Get("UID").String() == uid {
						fn(r)
					}
				})
			}
			return l
		}
	}
	onMailbox := func(mailbox string, fn func(m *dlist.Value)) edit {
		return func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "MAILBOX" && l.Value.Get("MBOXNAME").String() == mailbox {
				fn(l.Value)
			}
			return l
		}
	}
	tests := []struct {
		name    string
		edit    edit
		want    []string // kinds, sorted
		mailbox string
		uid     uint32
	}{
		{"flag added", onRecord("user.alice", "4", func(r *dlist.Value) {
			r.Get("FLAGS").Append(dlist.NewFlag(`\Flagged`))
		}), []string{"crc"}, "user.alice", 0},
		{"user flag renamed", onRecord("user.alice", "8", func(r *dlist.Value) {
			set(r, "FLAGS", dlist.NewList(dlist.NewFlag("$Label2")))
		}), []string{"crc"}, "user.alice", 0},
		{"annotation value", onRecord("user.alice", "3", func(r *dlist.Value) {
			set(r.Get("ANNOTATIONS").Children[0], "VALUE", dlist.NewAtom("other note"))
		}), []string{"crc"}, "user.alice", 0},
		{"uid above last", onRecord("user.alice.Sent", "6", func(r *dlist.Value) {
			set(r, "UID", dlist.NewNum(7))
		}), []string{"crc", "crc", "uid-range"}, "user.alice.Sent", 7},
		{"uid order", onRecord("user.alice.Sent", "3", func(r *dlist.Value) {
			set(r, "UID", dlist.NewNum(2))
		}), []string{"crc", "crc", "uid-order"}, "user.alice.Sent", 2},
		{"modseq above highest", onMailbox("user.bob", func(m *dlist.Value) {
			set(m, "HIGHESTMODSEQ", dlist.NewNum(2))
		}), []string{"modseq", "modseq", "modseq"}, "user.bob", 0},
		{"record size", onRecord("user.alice", "5", func(r *dlist.Value) {
			set(r, "SIZE", dlist.NewNum(3257))
		}), []string{"size"}, "user.alice", 5},
		{"unknown guid", onRecord("user.alice.team", "2", func(r *dlist.Value) {
			set(r, "GUID", dlist.NewAtom(strings.Repeat("ab", 20)))
		}), []string{"crc", "no-message"}, "user.alice.team", 0},
		{"sync crc", onMailbox("user.alice.Archive", func(m *dlist.Value) {
			set(m, "SYNC_CRC", dlist.NewNum(12345))
		}), []string{"crc"}, "user.alice.Archive", 0},
		{"sync crc zero", onMailbox("user.alice.Archive", func(m *dlist.Value) {
			set(m, "SYNC_CRC", dlist.NewNum(0)) // Cyrus: zero matches anything
		}), nil, "", 0},
		{"mailbox twice", func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "MAILBOX" && l.Value.Get("MBOXNAME").String() == "user.bob" {
				set(l.Value, "MBOXNAME", dlist.NewAtom("user.alice.Sent"))
			}
			return l
		}, []string{"duplicate"}, "user.alice.Sent", 0},
		{"missing key", onMailbox("user.alice.Sent", func(m *dlist.Value) {
			m.Children = m.Children[1:] // UNIQUEID
		}), []string{"invalid"}, "user.alice.Sent", 0},
		{"record without guid", onRecord("user.alice.Sent", "1", func(r *dlist.Value) {
			set(r, "GUID", dlist.NewAtom("xyz"))
		}), []string{"invalid"}, "user.alice.Sent", 0},
		{"unknown command", func(l *dlist.Line) *dlist.Line {
			if l.Value.Key == "SUB" {
				l.Value.Key = "SUBSCRIBE"
			}
			return l
		}, []string{"invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "invalid"}, "", 0},
	}
	for _, tt := range tests {
		res := run(t, bytes.NewReader(rewrite(t, plain, tt.edit)), Options{})
		if res.err != nil {
			t.Fatalf("%s: %v", tt.name, res.err)
		}
		if fmt.Sprint(res.kinds()) != fmt.Sprint(tt.want) {
			t.Errorf("%s: findings %v, want %v\n%v", tt.name, res.kinds(), tt.want, res)
			continue
		}
		for _, f := range res.findings {
			if f.Mailbox != tt.mailbox || (tt.uid != 0 && f.Kind != KindCRC && f.UID != tt.uid) {
				t.Errorf("%s: finding %v, want mailbox %q UID %d", tt.name, f, tt.mailbox, tt.uid)
			}
		}
	}
}

// TestDamagedStream checks damage that ends the reading: the finding says
// where, and names the mailbox when the damage is inside one.
func TestDamagedStream(t *testing.T) {
	plain, zstd := fixture(t)
	lay := parseLayout(t, plain)
	bob := bytes.Index(plain, []byte("APPLY MAILBOX %(UNIQUEID"))
	bob += bytes.Index(plain[bob:], []byte("MBOXNAME user.bob "))
	midZstd := bytes.Clone(zstd)
	midZstd[len(midZstd)/2] ^= 0xff
	tests := []struct {
		name    string
		in      []byte
		kind    Kind
		mailbox string
		offset  int64 // the finding's offset, -1: any
	}{
		{"truncated in a mailbox", plain[:bob+200], KindTruncated, "user.bob", -1},
		{"truncated at a line end", plain[:lay.lines[3].start], KindTruncated, "", lay.lines[3].start},
		{"garbage line", append(bytes.Clone(plain[:lay.lines[3].start]), "((\r\n"...), KindParse, "", lay.lines[3].start},
		{"zstd damaged", midZstd, "", "", -1},
		{"zstd truncated", zstd[:len(zstd)/2], "", "", -1},
	}
	for _, tt := range tests {
		res := run(t, bytes.NewReader(tt.in), Options{})
		if res.err != nil || res.sum.OK() || len(res.findings) == 0 {
			t.Errorf("%s: %v", tt.name, res)
			continue
		}
		f := res.findings[len(res.findings)-1]
		if tt.kind != "" && (f.Kind != tt.kind || f.Mailbox != tt.mailbox || (tt.offset >= 0 && f.Offset != tt.offset)) {
			t.Errorf("%s: last finding %v, want %s in %q at %d", tt.name, f, tt.kind, tt.mailbox, tt.offset)
		}
	}
}

// TestGUIDsOnFile verifies the fixture and the damaged dumps again with
// the table of file literals on file from its first entry, as it is past
// some 40,000 messages: the same findings.
func TestGUIDsOnFile(t *testing.T) {
	defer func(l int64) { guidtable.DefaultMemLimit = l }(guidtable.DefaultMemLimit)
	guidtable.DefaultMemLimit = 1
	t.Run("fixture", TestFixtureOK)
	t.Run("edits", TestEdits)
}
