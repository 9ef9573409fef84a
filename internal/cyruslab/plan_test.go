package cyruslab_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/internal/cyruslab"
)

// TestPlanMatchesFixture recomputes Fill's messages offline and compares
// their SHA-1 with the GUIDs that a real Cyrus reported for the bundled
// fixture, which an earlier run of Fill made: the content is deterministic
// across runs, processes and Go versions.
func TestPlanMatchesFixture(t *testing.T) {
	b, err := fs.ReadFile(fixtures.Recorded, "imap/alice.json")
	if err != nil {
		t.Fatal(err)
	}
	var view []struct {
		Name     string `json:"name"`
		Messages []struct {
			UID          uint32    `json:"uid"`
			GUID         string    `json:"guid"`
			InternalDate time.Time `json:"internaldate"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(b, &view); err != nil {
		t.Fatal(err)
	}
	type key struct {
		mbox string
		uid  uint32
	}
	type rec struct {
		guid string
		date time.Time
	}
	got := map[key]rec{}
	for _, mb := range view {
		for _, m := range mb.Messages {
			got[key{mb.Name, m.UID}] = rec{m.GUID, m.InternalDate}
		}
	}
	next := map[string]uint32{"INBOX": 4} // INBOX 1-3 came by LMTP
	checked := 0
	for _, a := range cyruslab.NewPlan().Appends {
		if next[a.Mailbox] == 0 {
			next[a.Mailbox] = 1
		}
		uid := next[a.Mailbox]
		next[a.Mailbox]++
		r, ok := got[key{a.Mailbox, uid}]
		if !ok {
			if a.Mailbox == "INBOX" && uid >= 10 && uid <= 12 {
				continue // expunged
			}
			t.Errorf("%s UID %d: not in the fixture", a.Mailbox, uid)
			continue
		}
		sum := sha1.Sum(a.Msg)
		if hex.EncodeToString(sum[:]) != r.guid {
			t.Errorf("%s UID %d: SHA-1 %x, fixture GUID %s", a.Mailbox, uid, sum, r.guid)
		}
		if !r.date.Equal(a.Date) {
			t.Errorf("%s UID %d: date %v, fixture INTERNALDATE %v", a.Mailbox, uid, a.Date, r.date)
		}
		checked++
	}
	if want := 33 + 6 + 6 + 3 + 1 + 3 + 4 - 3; checked != want {
		t.Errorf("checked %d messages, want %d", checked, want)
	}
}

// TestBuildParses checks that built messages are well-formed MIME whose
// parts decode to the attached bytes, and that Build is deterministic.
func TestBuildParses(t *testing.T) {
	data := cyruslab.NewRand(7).Bytes(3000)
	text := []byte("Grüße aus Köln\n=equals= and a long line " + strings.Repeat("x", 100) + "\n")
	tests := []struct {
		name string
		spec cyruslab.MessageSpec
	}{
		{"plain", cyruslab.MessageSpec{N: 1, Date: time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)}},
		{"attachments", cyruslab.MessageSpec{N: 2, Date: time.Date(2019, 6, 1, 10, 0, 0, 0, time.UTC), Subject: "x",
			Attach: []cyruslab.Attachment{
				{Name: "a.bin", ContentType: "application/octet-stream", Data: data},
				{Name: "n.txt", ContentType: `text/plain; charset="utf-8"`, Data: text, QuotedPrintable: true},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.spec.Build(cyruslab.NewRand(1))
			if again := tt.spec.Build(cyruslab.NewRand(1)); !bytes.Equal(raw, again) {
				t.Fatal("Build is not deterministic")
			}
			if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
				t.Error("bare LF in message")
			}
			m, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if d, err := m.Header.Date(); err != nil || !d.Equal(tt.spec.Date) {
				t.Errorf("Date: %v, %v; want %v", d, err, tt.spec.Date)
			}
			mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.spec.Attach) == 0 {
				if mt != "text/plain" {
					t.Errorf("Content-Type %s", mt)
				}
				return
			}
			mr := multipart.NewReader(m.Body, params["boundary"])
			if _, err := mr.NextPart(); err != nil { // the text part
				t.Fatal(err)
			}
			for _, a := range tt.spec.Attach {
				p, err := mr.NextRawPart()
				if err != nil {
					t.Fatal(err)
				}
				var r io.Reader = p
				switch enc := p.Header.Get("Content-Transfer-Encoding"); enc {
				case "base64":
					r = base64.NewDecoder(base64.StdEncoding, p)
				case "quoted-printable":
					r = quotedprintable.NewReader(p)
				default:
					t.Fatalf("%s: encoding %q", a.Name, enc)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(bytes.TrimRight(got, "\r\n"), bytes.TrimRight(bytes.ReplaceAll(a.Data, []byte("\n"), []byte("\r\n")), "\r\n")) && !bytes.Equal(got, a.Data) {
					t.Errorf("%s: decoded %d bytes differ from the %d attached", a.Name, len(got), len(a.Data))
				}
			}
			if _, err := mr.NextPart(); err != io.EOF {
				t.Errorf("after the attachments: %v, want EOF", err)
			}
		})
	}
}
