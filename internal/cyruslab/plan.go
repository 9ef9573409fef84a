package cyruslab

import (
	"fmt"
	"time"
)

// Plan is the message content of Fill, computed without a server: the
// messages delivered over LMTP (each to alice and to bob, in order) and
// alice's APPENDs in order. Fill sends exactly these bytes, so tests can
// recompute every GUID offline (except that lmtpd prepends Return-Path
// and Received headers to deliveries).
type Plan struct {
	Deliveries [][]byte
	Appends    []Append
}

// Append is one APPEND of a Plan.
type Append struct {
	Mailbox string // as alice names it: INBOX, INBOX.Sent, shared.team, ...
	Flags   []string
	Date    time.Time // the INTERNALDATE
	Msg     []byte
}

// inboxFlags is the flag pattern of alice's 30 appended INBOX messages.
var inboxFlags = [][]string{nil, {`\Seen`}, {`\Seen`, `\Flagged`}, {`\Seen`, `\Answered`}, {"$Label1"},
	{`\Seen`, "Junk"}, {`\Flagged`, "$Label1"}, {`\Draft`}}

// NewPlan computes Fill's messages from Seed.
func NewPlan() *Plan {
	r := NewRand(Seed)
	p := &Plan{}
	for i := 0; i < 3; i++ {
		p.Deliveries = append(p.Deliveries, MessageSpec{N: 100 + i, Date: day(2024, 1, i+1, 10),
			Subject: fmt.Sprintf("Delivered via LMTP %d", i)}.Build(r))
	}
	add := func(mbox string, flags []string, s MessageSpec) {
		p.Appends = append(p.Appends, Append{Mailbox: mbox, Flags: flags, Date: s.Date, Msg: s.Build(r)})
	}
	sizes := []int{200, 800, 3000, 12000, 60000}
	for i := 0; i < 30; i++ {
		add("INBOX", inboxFlags[i%len(inboxFlags)],
			MessageSpec{N: i, Date: day(2024, 2, 1+i%28, 8+i%10), BodySize: sizes[r.IntN(len(sizes))]})
	}
	add("INBOX", []string{`\Seen`}, MessageSpec{N: 40, Date: day(2024, 3, 1, 10), Subject: "Big attachment",
		Attach: []Attachment{{Name: "blob.bin", ContentType: "application/octet-stream", Data: r.Bytes(1_200_000)}}})
	add("INBOX", []string{`\Flagged`}, MessageSpec{N: 41, Date: day(2024, 3, 2, 10), Subject: "Report with attachments",
		Attach: []Attachment{
			{Name: "report.pdf", ContentType: "application/pdf", Data: append([]byte("%PDF-1.4\n"), r.Bytes(20000)...)},
			{Name: "photo.png", ContentType: "image/png", Data: append([]byte("\x89PNG\r\n\x1a\n"), r.Bytes(5000)...)},
			{Name: "notes.txt", ContentType: `text/plain; charset="utf-8"`, Data: []byte("Grüße aus Köln\n"), QuotedPrintable: true},
		}})
	// The same bytes appended to two folders: the same GUID in both.
	dup := MessageSpec{N: 50, Date: day(2019, 6, 1, 10), Subject: "Same message in INBOX and Archive.2019"}
	add("INBOX", []string{`\Seen`}, dup)
	p.Appends = append(p.Appends, p.Appends[len(p.Appends)-1])
	p.Appends[len(p.Appends)-1].Mailbox = "INBOX.Archive.2019"
	p.Appends[len(p.Appends)-1].Flags = []string{`\Seen`, "$Label1"}
	for i := 0; i < 5; i++ {
		add("INBOX.Archive.2019", []string{`\Seen`}, MessageSpec{N: 60 + i, Date: day(2019, 3, i+1, 10)})
	}
	for i := 0; i < 6; i++ {
		add("INBOX.Sent", []string{`\Seen`}, MessageSpec{N: 70 + i, Date: day(2024, 4, i+1, 10),
			Subject: fmt.Sprintf("Re: thread %d", i), From: "alice@example.org"})
	}
	for i := 0; i < 3; i++ {
		add("INBOX.Entw&APw-rfe", []string{`\Draft`}, MessageSpec{N: 80 + i, Date: day(2024, 5, i+1, 10),
			Subject: fmt.Sprintf("Draft %d", i), From: "alice@example.org"})
	}
	add("INBOX.Old Stuff", []string{`\Seen`}, MessageSpec{N: 85, Date: day(2010, 1, 1, 10), Subject: "Old stuff"})
	for i := 0; i < 3; i++ {
		add("shared.team", nil, MessageSpec{N: 300 + i, Date: day(2023, 5, i+1, 10), Subject: fmt.Sprintf("Team note %d", i)})
	}
	for i := 0; i < 4; i++ {
		add("INBOX.team", nil, MessageSpec{N: 90 + i, Date: day(2024, 6, i+1, 10), Subject: fmt.Sprintf("Team thread %d", i)})
	}
	return p
}
