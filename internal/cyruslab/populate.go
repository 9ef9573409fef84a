package cyruslab

import (
	"errors"
	"fmt"
	"time"
)

// ErrPopulated is returned by Fill for a lab that already has content.
var ErrPopulated = errors.New("cyruslab: lab already populated")

// Seed is the seed of the generator behind every filler text and random
// attachment that Fill creates.
const Seed = 42

// Exists is the number of messages (IMAP EXISTS, expunged ones not counted)
// of each mailbox after Fill, by internal name.
var Exists = map[string]uint32{
	"shared":                  0,
	"shared.team":             3,
	"user.alice":              33, // 36 UIDs, 10-12 expunged
	"user.alice.Archive":      1,
	"user.alice.Archive.2019": 6,
	"user.alice.Entw&APw-rfe": 3,
	"user.alice.Old Stuff":    1,
	"user.alice.Sent":         6,
	"user.alice.team":         4,
	"user.bob":                3,
}

// day is a fixed UTC time.
func day(y int, m time.Month, d, h int) time.Time {
	return time.Date(y, m, d, h, 0, 0, 0, time.UTC)
}

// Fill creates the standard content over IMAP and LMTP only, the way
// clients would. It is deterministic: message bytes and GUIDs are the same
// on every run, except for the LMTP deliveries, to which lmtpd adds a
// Received: header with the time. Mailbox uniqueids, UIDVALIDITYs and
// save dates come from Cyrus and differ per run.
//
//   - admin creates user.alice, user.bob, user.alice.{Sent, Archive,
//     Archive.2019, Entw&APw-rfe ("Entwürfe"), Old Stuff, team} and
//     shared.team (which makes a real mailbox "shared" too); ACLs bob lrswi
//     on user.alice.team and anyone lrs, alice lrswipd, bob lrswi on
//     shared.team; quota STORAGE 512000 on user.alice; /shared/comment on
//     user.alice.team.
//   - LMTP delivers 3 messages to alice and to bob (UIDs 1-3 of each INBOX).
//   - alice subscribes to her folders, sets /private/specialuse \Sent on
//     Sent and /private/comment on her INBOX, and appends: 30 messages to
//     INBOX (UIDs 4-33) with the flag pattern "", \Seen, \Seen \Flagged,
//     \Seen \Answered, $Label1, \Seen Junk, \Flagged $Label1, \Draft; a
//     1.6 MB message (1.2 MB random attachment, UID 34); a multipart one
//     with PDF, PNG and quoted-printable text attachments (UID 35); the
//     same bytes to INBOX (UID 36) and Archive.2019 (UID 1); 5 more to
//     Archive.2019, 6 to Sent, 3 drafts, 1 to "Old Stuff", 3 to
//     shared.team, 4 to team. Then in INBOX: +\Answered on 4-6, UID COPY
//     of 7 to Archive, \Deleted on 10-14 and UID EXPUNGE 10:12 (13, 14 stay
//     \Deleted); per-message annotations /comment value.shared on UID 3
//     and value.priv on UID 4; \Seen on shared.team UID 1.
//   - bob sets \Seen on his INBOX 1-2, \Seen on user.alice.team 1-2 and
//     \Flagged on its UID 3, a value.priv /comment on its UID 4, and \Seen
//     on shared.team 2-3.
func (l *Lab) Fill() error {
	p := &populator{lab: l, plan: NewPlan()}
	for _, step := range []func() error{p.admin, p.deliver, p.alice, p.bob} {
		if err := step(); err != nil {
			return fmt.Errorf("populating %s: %w", l.Dir, err)
		}
	}
	return nil
}

type populator struct {
	lab  *Lab
	plan *Plan
	c    *IMAPClient
	err  error // first error of the current step
}

// do keeps the first error of a step, so the steps read as a script.
// Calls after a failure still run (their errors are dropped); the step,
// and Fill, fail with the first error all the same.
func (p *populator) do(err error) {
	if p.err == nil {
		p.err = err
	}
}

// login starts a step as user.
func (p *populator) login(user string) error {
	c, err := p.lab.Login(user)
	p.c, p.err = c, err
	return err
}

// end finishes a step and returns its first error.
func (p *populator) end() error {
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
	return p.err
}

func (p *populator) admin() error {
	if err := p.login(p.lab.Admin); err != nil {
		return err
	}
	if l, err := p.c.List("", "user.alice"); err != nil || len(l) > 0 {
		p.do(err)
		p.do(ErrPopulated)
		return p.end()
	}
	for _, m := range []string{"user.alice", "user.bob", "user.alice.Sent", "user.alice.Archive",
		"user.alice.Archive.2019",
		"user.alice.Entw&APw-rfe", // "Entwürfe" in modified UTF-7
		"user.alice.Old Stuff",    // a space: quoted in dlists
		"user.alice.team", "shared.team"} {
		p.do(p.c.Create(m))
	}
	p.do(p.c.SetACL("user.alice.team", "bob", "lrswi"))
	p.do(p.c.SetACL("shared.team", "anyone", "lrs"))
	p.do(p.c.SetACL("shared.team", "alice", "lrswipd"))
	p.do(p.c.SetACL("shared.team", "bob", "lrswi"))
	p.do(p.c.SetQuota("user.alice", "STORAGE 512000"))
	p.do(p.c.SetMetadata("user.alice.team", "/shared/comment", "Alice and Bob"))
	return p.end()
}

func (p *populator) deliver() error {
	for _, msg := range p.plan.Deliveries {
		for _, rcpt := range []string{"alice", "bob"} {
			if err := p.lab.SendLMTP("carol@example.org", rcpt, msg); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *populator) alice() error {
	if err := p.login("alice"); err != nil {
		return err
	}
	c := p.c
	p.do(c.Subscribe("INBOX"))
	for _, f := range []string{"Sent", "Archive", "Archive.2019", "Entw&APw-rfe", "team", "Old Stuff"} {
		p.do(c.Subscribe("INBOX." + f))
	}
	p.do(c.SetMetadata("INBOX.Sent", "/private/specialuse", `\Sent`))
	p.do(c.SetMetadata("INBOX", "/private/comment", "alice's own note on her INBOX"))
	for _, a := range p.plan.Appends {
		if p.err == nil {
			_, p.err = c.Append(a.Mailbox, a.Flags, a.Date, a.Msg)
		}
	}

	// Changes after the fact (they bump MODSEQs), \Deleted and expunge.
	if p.err == nil {
		_, p.err = c.Select("INBOX")
	}
	p.do(c.UIDStore("4:6", "+FLAGS", `(\Answered)`))
	p.do(c.UIDCopy("7", "INBOX.Archive")) // COPY keeps the GUID (and hard-links the file)
	p.do(c.UIDStore("10:14", "+FLAGS", `(\Deleted)`))
	p.do(c.UIDExpunge("10:12")) // 13 and 14 stay \Deleted
	// Per-message annotations (RFC 5257 ANNOTATE): they enter SYNC_CRC_ANNOT.
	p.do(c.UIDStore("3", "ANNOTATION", `(/comment (value.shared "msg note"))`))
	p.do(c.UIDStore("4", "ANNOTATION", `(/comment (value.priv "alice's private msg note"))`))
	if p.err == nil {
		_, p.err = c.Select("shared.team")
	}
	p.do(c.UIDStore("1", "+FLAGS", `(\Seen)`))
	return p.end()
}

// bob keeps seen state on mailboxes he does not own: in his own seen db.
func (p *populator) bob() error {
	if err := p.login("bob"); err != nil {
		return err
	}
	c := p.c
	for _, s := range []struct{ mbox, set, item, value string }{
		{"INBOX", "1:2", "+FLAGS", `(\Seen)`},
		{"user.alice.team", "1:2", "+FLAGS", `(\Seen)`},
		{"", "3", "+FLAGS", `(\Flagged)`}, // a shared flag: stored in alice's index
		{"", "4", "ANNOTATION", `(/comment (value.priv "bob's private note"))`},
		{"shared.team", "2:3", "+FLAGS", `(\Seen)`},
	} {
		if s.mbox != "" && p.err == nil {
			_, p.err = c.Select(s.mbox)
		}
		p.do(c.UIDStore(s.set, s.item, s.value))
	}
	return p.end()
}
