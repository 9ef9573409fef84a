package cyruslab

import (
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Rand is a small deterministic generator (SplitMix64). Its sequence is
// fixed by this code alone, never by the Go version, so content built from
// it is identical on every run and machine.
type Rand struct{ s uint64 }

// NewRand returns a generator started from seed.
func NewRand(seed uint64) *Rand { return &Rand{s: seed} }

// Uint64 returns the next number of the sequence.
func (r *Rand) Uint64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// IntN returns a number in [0, n); n must be positive.
func (r *Rand) IntN(n int) int { return int(r.Uint64() % uint64(n)) }

// Bytes returns n pseudo-random bytes.
func (r *Rand) Bytes(n int) []byte {
	b := make([]byte, 0, n+8)
	for len(b) < n {
		v := r.Uint64()
		for i := 0; i < 8; i++ {
			b = append(b, byte(v>>(8*i)))
		}
	}
	return b[:n]
}

// Attachment is one attached file of a MessageSpec.
type Attachment struct {
	Name        string
	ContentType string // e.g. "application/pdf"
	Data        []byte
	// QuotedPrintable sends Data quoted-printable instead of base64.
	QuotedPrintable bool
}

// MessageSpec describes a test message built by Build.
type MessageSpec struct {
	N        int       // numbers the Message-ID (<lab-N@example.org>) and boundary
	Date     time.Time // the Date: header
	Subject  string    // default "Test message N"
	From     string    // default carol@example.org
	To       string    // default alice@example.org
	BodySize int       // about this many bytes of filler text (default 400)
	Attach   []Attachment
}

var fillerWords = []string{"lorem", "ipsum", "dolor", "sit", "amet", "cyrus", "mailbox", "index"}

// Build returns an RFC 5322 message with CRLF line endings: a text/plain
// body of filler words drawn from r, or multipart/mixed with a fixed
// boundary when there are attachments. Equal specs and generator states
// give equal bytes.
func (s MessageSpec) Build(r *Rand) []byte {
	if s.Subject == "" {
		s.Subject = fmt.Sprintf("Test message %d", s.N)
	}
	if s.From == "" {
		s.From = "carol@example.org"
	}
	if s.To == "" {
		s.To = "alice@example.org"
	}
	if s.BodySize == 0 {
		s.BodySize = 400
	}
	words := make([]string, s.BodySize/6)
	for i := range words {
		words[i] = fillerWords[r.IntN(len(fillerWords))]
	}
	text := wrap(strings.Join(words, " "), 72)

	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <lab-%d@example.org>\r\nMIME-Version: 1.0\r\n",
		s.From, s.To, s.Subject, s.Date.Format(time.RFC1123Z), s.N)
	const plain = "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n"
	if len(s.Attach) == 0 {
		b.WriteString(plain + "\r\n" + text)
		return []byte(b.String())
	}
	boundary := fmt.Sprintf("=_lab_boundary_%d", s.N)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	fmt.Fprintf(&b, "--%s\r\n%s\r\n%s", boundary, plain, text)
	for _, a := range s.Attach {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\n", boundary, a.ContentType)
		if a.QuotedPrintable {
			var q strings.Builder
			w := quotedprintable.NewWriter(&q)
			w.Write(a.Data)
			w.Close()
			b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n")
			fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", a.Name)
			b.WriteString(strings.ReplaceAll(strings.ReplaceAll(q.String(), "\r\n", "\n"), "\n", "\r\n"))
			b.WriteString("\r\n")
			continue
		}
		b.WriteString("Content-Transfer-Encoding: base64\r\n")
		fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", a.Name)
		enc := base64.StdEncoding.EncodeToString(a.Data)
		b.WriteString(wrap(enc, 76))
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return []byte(b.String())
}

// wrap cuts s into lines of width bytes, each ended by CRLF.
func wrap(s string, width int) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + "\r\n")
		s = s[width:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}
