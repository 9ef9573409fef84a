// Package dumplist reads what a dump holds, with no Cyrus configuration:
// its users, its mailboxes (messages, bytes, UIDVALIDITY, UIDNEXT, deleted
// or not) and, for the mailboxes selected, their messages with the From,
// Subject and Message-ID of the message files embedded in the dump, for
// `mbtool list FILE`.
//
// It streams. A message file (an APPLY MESSAGE literal) comes before the
// first APPLY MAILBOX that refers to it, possibly many mailboxes earlier,
// so the few header fields of each file are written to an unlinked
// temporary file and found again by GUID through a guidtable.Table, whose
// memory stays flat however many messages the dump holds. A record whose
// file comes later in the dump (not what mbtool writes, but possible in a
// dump edited or concatenated by hand) is put aside in a second temporary
// file and reported once the whole dump is read. Nothing of a dump's size
// is held in memory.
package dumplist

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/syncrec"
)

// User is the mailboxes of one user that follow each other in the dump
// (a dump lists each user's mailboxes together; shared mailboxes have the
// user "").
type User struct {
	Name                      string
	Mailboxes, Deleted        int64 // Deleted: of Mailboxes, those deleted (DELETED.user...)
	Messages, Expunged, Bytes int64
}

// Mailbox is one APPLY MAILBOX of the dump.
type Mailbox struct {
	Name     string // internal name
	Owner    string // "" for a shared mailbox
	Deleted  bool   // a mailbox of Cyrus's delayed delete
	Original string // for a deleted mailbox, the name it had
	UniqueID string
	// Messages and Bytes count the records that are not expunged (what
	// IMAP shows); Expunged the others, whose files the dump may not hold.
	Messages, Expunged, Bytes int64
	UIDValidity               uint32
	UIDNext                   uint32 // LAST_UID + 1
	HighestModseq             uint64
	Partition                 string
}

// Message is one record of a selected mailbox, with what its message
// file's header says.
type Message struct {
	Mailbox      string // internal name
	UID          uint32
	InternalDate time.Time
	Size         uint32
	Flags        []string
	GUID         guid.GUID
	Modseq       uint64
	Expunged     bool
	Header
	// NoFile: the dump holds no message file for the record (expunged
	// records, files skipped when the dump was written); Header is empty.
	NoFile bool
	// Late: the message file came after the mailbox in the dump, so the
	// message is reported after the dump's last mailbox.
	Late bool
}

// Filter narrows the messages reported. Empty fields filter nothing.
type Filter struct {
	// Messages selects by UID, GUID, Message-ID and INTERNALDATE, as
	// restore's message selectors do (the same flags; nil: all).
	Messages *msgsel.Filter
	// From and Subject match when the decoded header contains the text,
	// ignoring case.
	From, Subject string
	// Expunged reports expunged records too.
	Expunged bool
}

// Options say what Scan reports.
type Options struct {
	// Select picks the mailboxes reported (nil: all).
	Select *mboxname.Selector
	// Messages reports the messages of the selected mailboxes.
	Messages bool
	Filter   Filter
	// User, Mailbox and Message are called as the dump is read; any of
	// them may be nil. User is called for runs of the selected mailboxes.
	User    func(*User) error
	Mailbox func(*Mailbox) error
	Message func(*Message) error
	// Progress, if set, is called from time to time with the bytes read.
	Progress func(offset int64)
}

// Summary is what the dump holds.
type Summary struct {
	Header  dumpfile.Header
	Trailer *dumpfile.Trailer
	// The dump's own counts, as read.
	Mailboxes, Files, FileBytes int64
	// What was reported.
	Users, Selected, Messages int64
	// Skipped counts the items the dump records as left out.
	Skipped int64
}

// Scan reads the dump in r and reports what opts asks for. It fails on a
// dump that is not one, damaged or truncated, or when a callback fails;
// what was reported before stays reported. A selector term that matches
// nothing is an error (a *mboxname.NoMatchError) once the dump is read.
func Scan(ctx context.Context, r io.Reader, opts Options) (*Summary, error) {
	d, err := dumpcheck.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	s := &scanner{ctx: ctx, d: d, opts: opts, sum: &Summary{Header: d.Header()}}
	d.OnSkip = func(dumpfile.Skip, int64) { s.sum.Skipped++ }
	if opts.Messages {
		s.heads = newHeaderStore()
		defer s.heads.close()
	}
	err = s.run()
	if tr := s.sum.Trailer; err == nil && (tr.Mailboxes != s.sum.Mailboxes || tr.Messages != s.sum.Files || tr.Bytes != s.sum.FileBytes) {
		err = fmt.Errorf("%w: trailer counts %d mailboxes, %d messages, %d bytes; the dump holds %d, %d, %d",
			dumpcheck.ErrDamaged, tr.Mailboxes, tr.Messages, tr.Bytes, s.sum.Mailboxes, s.sum.Files, s.sum.FileBytes)
	}
	if err == nil {
		err = s.flushUser()
	}
	if err == nil && s.heads != nil {
		err = s.late()
	}
	if err == nil {
		err = opts.Select.Err()
	}
	return s.sum, err
}

type scanner struct {
	ctx   context.Context
	d     *dumpfile.Reader
	opts  Options
	sum   *Summary
	heads *headerStore
	user  *User // the run of mailboxes being counted
	hbuf  []byte
	next  int64 // offset of the next Progress call
}

func (s *scanner) run() error {
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		verb, name, off, err := s.d.Next()
		if err == io.EOF {
			s.sum.Trailer = s.d.Trailer()
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading dump: %w", err)
		}
		if s.opts.Progress != nil && off >= s.next {
			s.opts.Progress(off)
			s.next = off + 16<<20
		}
		if verb != "APPLY" {
			return fmt.Errorf("dump offset %d: %s %s: %w: unknown command", off, verb, name, dumpcheck.ErrDamaged)
		}
		switch name {
		case "MESSAGE":
			err = s.files()
		case "MAILBOX":
			err = s.mailbox()
		}
		if err != nil {
			return fmt.Errorf("dump offset %d: %s %s: %w", off, verb, name, err)
		}
	}
}

// files reads an APPLY MESSAGE line: each file literal's header, when
// messages are listed; otherwise the bodies are skipped unread.
func (s *scanner) files() error {
	dl := s.d.DL()
	return dumpcheck.Files(dl, func(t dlist.Token) error {
		s.sum.Files++
		s.sum.FileBytes += t.File.Size
		if s.heads == nil {
			return nil
		}
		if err := s.heads.add(t.File.GUID, dl.Body(), &s.hbuf); err != nil {
			return fmt.Errorf("message %s: %w", t.File.GUID, err)
		}
		return nil
	})
}

func (s *scanner) mailbox() error {
	mr, err := syncrec.OpenMailbox(s.d.DL())
	if err != nil {
		return err
	}
	mb := mr.Mailbox()
	if err := dumpcheck.CheckName("mailbox name", mb.Name); err != nil {
		return err
	}
	s.sum.Mailboxes++
	if !s.opts.Select.Match(mb.Name) {
		return mr.Skip()
	}
	m := &Mailbox{Name: mb.Name, Owner: mboxname.DeletedOwner(mb.Name), UniqueID: mb.UniqueID,
		UIDValidity: mb.UIDValidity, UIDNext: mb.LastUID + 1, HighestModseq: mb.HighestModseq,
		Partition: mb.Partition}
	m.Original, m.Deleted = mboxname.Deleted(mb.Name)
	mr.Light = true // a listing shows no annotation or cache
	list := s.opts.Messages && s.opts.Message != nil
	for {
		rec, err := mr.Next()
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		if rec == nil {
			break
		}
		exp := rec.Expunged()
		if exp {
			m.Expunged++
		} else {
			m.Messages++
			m.Bytes += int64(rec.Size)
		}
		if list {
			if err := s.message(mb.Name, rec, exp); err != nil {
				return err
			}
		}
	}
	if err := s.countUser(m); err != nil {
		return err
	}
	s.sum.Selected++
	if s.opts.Mailbox != nil {
		return s.opts.Mailbox(m)
	}
	return nil
}

// countUser adds m to the run of its owner's mailboxes, reporting the run
// before when the owner changes.
func (s *scanner) countUser(m *Mailbox) error {
	if s.user != nil && s.user.Name != m.Owner {
		if err := s.flushUser(); err != nil {
			return err
		}
	}
	if s.user == nil {
		s.user = &User{Name: m.Owner}
	}
	u := s.user
	u.Mailboxes++
	if m.Deleted {
		u.Deleted++
	}
	u.Messages += m.Messages
	u.Expunged += m.Expunged
	u.Bytes += m.Bytes
	return nil
}

func (s *scanner) flushUser() error {
	u := s.user
	s.user = nil
	if u == nil {
		return nil
	}
	s.sum.Users++
	if s.opts.User != nil {
		return s.opts.User(u)
	}
	return nil
}

// message reports one record, if the filter lets it through.
func (s *scanner) message(mailbox string, rec *syncrec.Record, exp bool) error {
	f := &s.opts.Filter
	if exp && !f.Expunged {
		return nil
	}
	if !f.Messages.Empty() {
		// UIDs, GUIDs and dates first: they need no header.
		pre := *f.Messages
		pre.MessageIDs = nil
		if ok, _ := pre.Match(rec, nil); !ok {
			return nil
		}
	}
	date := time.Unix(rec.InternalDate, 0).UTC()
	msg := &Message{Mailbox: mailbox, UID: rec.UID, InternalDate: date, Size: rec.Size, Flags: rec.Flags,
		GUID: rec.GUID, Modseq: rec.Modseq, Expunged: exp}
	found, err := s.heads.get(rec.GUID, &msg.Header)
	if err != nil {
		return err
	}
	if !found {
		// The file may come later in the dump: decided at the end.
		return s.heads.putAside(msg)
	}
	return s.emit(msg)
}

func (s *scanner) emit(msg *Message) error {
	if !s.opts.Filter.matchHeader(&msg.Header, msg.NoFile) {
		return nil
	}
	s.sum.Messages++
	return s.opts.Message(msg)
}

// late reports the records whose file was not in the dump before them.
func (s *scanner) late() error {
	return s.heads.eachAside(func(msg *Message) error {
		found, err := s.heads.get(msg.GUID, &msg.Header)
		if err != nil {
			return err
		}
		msg.NoFile, msg.Late = !found, found
		return s.emit(msg)
	})
}

func (f *Filter) matchHeader(h *Header, noFile bool) bool {
	ids := f.Messages.NeedsHeader()
	if f.From == "" && f.Subject == "" && !ids {
		return true
	}
	if noFile {
		return false
	}
	if f.From != "" && !containsFold(h.From, f.From) {
		return false
	}
	if f.Subject != "" && !containsFold(h.Subject, f.Subject) {
		return false
	}
	if ids && !f.Messages.MessageIDs[msgsel.NormalizeMessageID(h.MessageID)] {
		return false
	}
	return true
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
