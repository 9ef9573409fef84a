package remote

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/mbtool/mbtool/syncrec"
)

// ErrNoMailbox reports a user or mailbox the server does not have.
var ErrNoMailbox = errors.New("no such mailbox on the server")

// fetchDepth is how many GET FETCH commands are in flight at once.
const fetchDepth = 16

// Dump pulls users and mailboxes from a running server over the
// replication protocol (GET USER, GET FULLMAILBOX, GET FETCH, GET QUOTA)
// and writes them to w as a dump, with the skeleton of an offline dump
// (dump.Write), so that both have one form. opts.All is refused: the
// protocol cannot list users.
func Dump(ctx context.Context, c *syncproto.Client, w io.Writer, opts dump.Options) (*dump.Summary, error) {
	s := &source{c: c}
	defer s.close()
	return dump.Write(ctx, s, w, opts)
}

// source is the dump.Source that reads from the server of c. Every error
// it returns ends the run: a server that cannot answer, or answers
// something else than was asked, is not one mailbox's problem.
type source struct {
	c      *syncproto.Client
	policy *dumpcheck.Dump // see check
}

// check returns the policy checker of this session: it remembers the
// mailboxes so far, to refuse one the server sends twice.
func (s *source) check() *dumpcheck.Dump {
	if s.policy == nil {
		s.policy = dumpcheck.NewDump()
	}
	return s.policy
}

// close removes the files of the policy checker (its spilled names).
func (s *source) close() {
	if s.policy != nil {
		s.policy.Close()
		s.policy = nil
	}
}

// Plan takes the selection as it is: the server is asked per user.
func (s *source) Plan(ctx context.Context, sel dump.Selection) (*dump.Plan, error) {
	if sel.All {
		return nil, errors.New("a dump of every user: the replication protocol cannot list users")
	}
	p := &dump.Plan{Mailboxes: sel.Mailboxes}
	seen := make(map[string]bool)
	for _, u := range sel.Users {
		if !seen[u] {
			seen[u] = true
			p.Users = append(p.Users, u)
		}
	}
	return p, nil
}

// dbKey is the order of mailboxes.db: hierarchy separators sort below
// every printable byte (partition's nameToDBName), so a mailbox's children
// follow it directly.
func dbKey(name string) string {
	var b strings.Builder
	if dom, rest, ok := strings.Cut(name, "!"); ok {
		b.WriteString(dom + "\x1d")
		name = rest
	}
	for i, p := range strings.Split(name, ".") {
		if i > 0 {
			b.WriteByte(0x1f)
		}
		b.WriteString(strings.ReplaceAll(p, "^", "."))
	}
	return b.String()
}

// remoteUser is what GET USER said about a user.
type remoteUser struct {
	names []string
	subs  []string
	seen  []*syncrec.Seen
}

func (u *remoteUser) Mailboxes() []string                           { return u.names }
func (u *remoteUser) Subs(context.Context) ([]string, error)        { return u.subs, nil }
func (u *remoteUser) Seen(context.Context) ([]*syncrec.Seen, error) { return u.seen, nil }

// maxUserHeld bounds what GET USER's answer may make the client hold at
// once: the names of a user's mailboxes and subscriptions, and its seen
// records, each counted with its bytes and 64 bytes of overhead: some
// 100,000 mailboxes and subscriptions of a user, which is far more than
// any real one has, while the whole run stays under 64 MiB.
const maxUserHeld = 12 << 20

// User sends GET USER: the user's mailboxes, subscriptions and seen
// records, each checked as a dump's would be.
func (s *source) User(ctx context.Context, name string) (dump.User, error) {
	if err := dumpcheck.CheckUserID(name); err != nil {
		return nil, err
	}
	inbox := mboxname.UserInbox(name)
	u := &remoteUser{}
	var held int64
	hold := func(n int) error {
		held += int64(n) + 64
		if held > maxUserHeld {
			return fmt.Errorf("%w: %w: the answer holds more than %d MiB of names and seen records", syncproto.ErrProtocol, syncproto.ErrLimit, maxUserHeld>>20)
		}
		return nil
	}
	err := s.c.Line("GET", "USER", dlist.NewAtom(name), func(item string, r *dlist.Reader) error {
		switch item {
		case "MAILBOX":
			v, err := r.ReadValue()
			if err != nil {
				return err
			}
			mb, err := syncrec.DecodeMailbox(v)
			if err != nil {
				return fmt.Errorf("%w: MAILBOX: %w", syncproto.ErrProtocol, err)
			}
			if (under(mb.Name, inbox) || inDeletedTree(mb.Name, inbox)) && !isPlaceholder(mb) {
				if err := dumpcheck.CheckName("mailbox name", mb.Name); err != nil {
					return err
				}
				u.names = append(u.names, mb.Name)
				return hold(len(mb.Name))
			}
		case "LSUB":
			// Read item by item: a user may have many subscriptions.
			t, err := r.Next()
			if err != nil {
				return err
			}
			if t.Kind != dlist.List {
				return fmt.Errorf("%w: LSUB is a %v, not a list", syncproto.ErrProtocol, t.Kind)
			}
			for {
				t, err := r.Next()
				if err != nil {
					return err
				}
				if t.Kind == dlist.End {
					break
				}
				if t.Kind != dlist.Atom && t.Kind != dlist.Literal {
					return fmt.Errorf("%w: LSUB item is a %v", syncproto.ErrProtocol, t.Kind)
				}
				sub := string(t.Bytes)
				if err := dumpcheck.CheckName("subscription", sub); err != nil {
					return err
				}
				u.subs = append(u.subs, sub)
				if err := hold(len(sub)); err != nil {
					return err
				}
				s.c.Release()
			}
		case "SEEN":
			sr, err := userSeenItem(r, name)
			if err != nil {
				return err
			}
			u.seen = append(u.seen, sr)
			return hold(len(sr.UniqueID) + len(sr.SeenUIDs) + 64)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(u.names) == 0 {
		return nil, fmt.Errorf("user %s: %w", name, ErrNoMailbox)
	}
	sortUserMailboxes(u.names, inbox)
	for i := 1; i < len(u.names); i++ {
		if u.names[i] == u.names[i-1] {
			return nil, fmt.Errorf("GET USER %s: %w: the server lists mailbox %s twice", name, syncproto.ErrProtocol, u.names[i])
		}
	}
	return u, nil
}

// sortUserMailboxes puts a user's mailboxes in the order Cyrus lists them
// for replication (mboxlist_usermboxtree with MBOXTREE_DELETED) and an
// offline dump writes them: the user's tree in mailboxes.db order, then
// the user's deleted mailboxes.
func sortUserMailboxes(names []string, inbox string) {
	sort.Slice(names, func(i, j int) bool {
		di, dj := !under(names[i], inbox), !under(names[j], inbox)
		if di != dj {
			return dj
		}
		return dbKey(names[i]) < dbKey(names[j])
	})
}

// userSeenItem reads a SEEN item of GET USER's or GET META's answer, the
// seen record of user, and checks it as a dump's. The items have no
// USERID (docs/cyrus/replication.md §3).
func userSeenItem(r *dlist.Reader, user string) (*syncrec.Seen, error) {
	v, err := r.ReadValue()
	if err != nil {
		return nil, err
	}
	return seenValue(v, user)
}

// seenValue checks v, a SEEN item of user, as a dump's seen record.
func seenValue(v *dlist.Value, user string) (*syncrec.Seen, error) {
	v.Add("USERID", dlist.NewAtom(user))
	sr, err := dumpcheck.Seen(v)
	if err != nil {
		return nil, fmt.Errorf("SEEN: %w", err)
	}
	return sr, nil
}

// under reports whether name is mailbox or one of its children.
func under(name, mailbox string) bool {
	return name == mailbox || strings.HasPrefix(name, mailbox+".")
}

// inDeletedTree reports whether name is in the deleted tree of a user's
// INBOX (delete_mode: delayed): "DELETED.user.alice.Old.6B0F37A3", or
// "example.com!DELETED.user.bob..." in a domain, under any one-word
// deletedprefix (the server's is not known here), by the one rule of
// deleted names (mboxname.DeletedUnder).
func inDeletedTree(name, inbox string) bool {
	orig, ok := mboxname.DeletedUnder(name, "")
	return ok && under(orig, inbox)
}

// Quota sends GET QUOTA for a quota root.
func (s *source) Quota(ctx context.Context, root string) (*syncrec.Quota, error) {
	var q *syncrec.Quota
	err := s.c.Line("GET", "QUOTA", dlist.NewAtom(root), func(name string, r *dlist.Reader) error {
		if name != "QUOTA" {
			return nil
		}
		if q != nil {
			return fmt.Errorf("%w: two QUOTA answers", syncproto.ErrProtocol)
		}
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		if q, err = dumpcheck.Quota(v); err != nil {
			return err
		}
		if q.Root != root {
			return fmt.Errorf("%w: the answer is about quota root %s", syncproto.ErrProtocol, q.Root)
		}
		return nil
	})
	var e *syncproto.Error
	if errors.As(err, &e) && e.Status == "NO" {
		return nil, nil // a quota root named in a mailbox but without limits
	}
	if err != nil {
		return nil, dump.Fatal(err)
	}
	return q, nil
}

// fetch is one message file to pull: 33 bytes in the mailbox's fetch
// spool.
type fetch struct {
	uid      uint32
	guid     guid.GUID
	size     int64
	expunged bool
}

const fetchSize = 4 + guid.Size + 8 + 1

func (f *fetch) encode(b []byte) {
	binary.LittleEndian.PutUint32(b, f.uid)
	copy(b[4:], f.guid[:])
	binary.LittleEndian.PutUint64(b[4+guid.Size:], uint64(f.size))
	b[fetchSize-1] = 0
	if f.expunged {
		b[fetchSize-1] = 1
	}
}

func (f *fetch) decode(b []byte) {
	f.uid = binary.LittleEndian.Uint32(b)
	copy(f.guid[:], b[4:])
	f.size = int64(binary.LittleEndian.Uint64(b[4+guid.Size:]))
	f.expunged = b[fetchSize-1] == 1
}

// remoteMailbox is one mailbox as GET FULLMAILBOX sent it: its keys, and
// its records spooled to a temporary file (and, for Files, the file of
// each record in a compact one), so that memory stays flat however many
// records it has.
type remoteMailbox struct {
	c       *syncproto.Client
	mb      *syncrec.Mailbox
	records *os.File
	fetches *os.File
}

// Mailbox sends GET FULLMAILBOX and spools the records.
func (s *source) Mailbox(ctx context.Context, name string) (dump.Mailbox, error) {
	m, err := s.mailbox(name)
	return m, dump.Fatal(err)
}

func (s *source) mailbox(name string) (*remoteMailbox, error) {
	m := &remoteMailbox{c: s.c}
	var err error
	if m.records, err = os.CreateTemp("", "mbtool-records-*"); err != nil {
		return nil, err
	}
	os.Remove(m.records.Name())
	if m.fetches, err = os.CreateTemp("", "mbtool-fetches-*"); err != nil {
		m.records.Close()
		return nil, err
	}
	os.Remove(m.fetches.Name())
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	sw := dlist.NewWriter(m.records)
	fw := bufio.NewWriterSize(m.fetches, 64<<10)
	err = s.c.Line("GET", "FULLMAILBOX", dlist.NewAtom(name), func(n string, r *dlist.Reader) error {
		if n != "MAILBOX" {
			return nil
		}
		if m.mb != nil {
			return fmt.Errorf("%w: a second mailbox in the answer", syncproto.ErrProtocol)
		}
		mr, err := syncrec.OpenMailbox(r)
		if err != nil {
			return err
		}
		m.mb = mr.Mailbox()
		if m.mb.Name != name {
			return fmt.Errorf("%w: the answer is about mailbox %s", syncproto.ErrProtocol, m.mb.Name)
		}
		// The server's data is checked as a dump's would be (the one
		// policy, package dumpcheck), before any byte of the mailbox is
		// written.
		chk, err := s.check().Mailbox(m.mb)
		if err != nil {
			return err
		}
		sw.BeginLine("R", "RECORD")
		sw.BeginList()
		var b [fetchSize]byte
		for {
			rec, err := mr.Next()
			if err != nil {
				return err
			}
			if rec == nil {
				break
			}
			if err := chk.Record(rec); err != nil {
				return err
			}
			syncrec.WriteRecord(sw, rec)
			f := fetch{uid: rec.UID, guid: rec.GUID, size: int64(rec.Size), expunged: rec.Expunged()}
			f.encode(b[:])
			if _, err := fw.Write(b[:]); err != nil {
				return err
			}
			s.c.Release() // the record is spooled, not held
		}
		if err := chk.End(); err != nil {
			return err
		}
		sw.EndList()
		return sw.EndLine()
	})
	if syncproto.CodeOf(err) == syncproto.CodeNonexistent {
		return nil, fmt.Errorf("mailbox %s: %w", name, ErrNoMailbox)
	}
	if err != nil {
		return nil, err
	}
	if m.mb == nil {
		return nil, fmt.Errorf("mailbox %s: %w", name, ErrNoMailbox)
	}
	if err := sw.Flush(); err != nil {
		return nil, fmt.Errorf("spooling the records of %s: %w", name, err)
	}
	if err := fw.Flush(); err != nil {
		return nil, fmt.Errorf("spooling the records of %s: %w", name, err)
	}
	ok = true
	return m, nil
}

func (m *remoteMailbox) Keys() *syncrec.Mailbox { return m.mb }

func (m *remoteMailbox) Close() {
	m.records.Close()
	m.fetches.Close()
}

// Records reads the spooled records back.
func (m *remoteMailbox) Records(ctx context.Context) (func() (*syncrec.Record, error), error) {
	if _, err := m.records.Seek(0, io.SeekStart); err != nil {
		return nil, dump.Fatal(err)
	}
	r := dlist.NewReader(m.records)
	for i := 0; i < 3; i++ { // verb, name, "("
		if _, err := r.Next(); err != nil {
			return nil, dump.Fatal(fmt.Errorf("reading back the records of %s: %w", m.mb.Name, err))
		}
	}
	return func() (*syncrec.Record, error) {
		t, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("reading back the records of %s: %w", m.mb.Name, err)
		}
		if t.Kind == dlist.End {
			return nil, nil
		}
		return syncrec.ReadRecord(r, t)
	}, nil
}

// queued is a record's file waiting for its turn: a GET FETCH in flight,
// or known to be in the dump already.
type queued struct {
	fetch
	dup bool
}

// Files pulls the message files of the mailbox that the dump does not
// hold yet, in UID order, fetchDepth GET FETCH commands in flight.
func (m *remoteMailbox) Files(ctx context.Context, filter dump.Filter, put func(*dump.File) error) error {
	have := filter.InDump
	if _, err := m.fetches.Seek(0, io.SeekStart); err != nil {
		return dump.Fatal(err)
	}
	in := bufio.NewReaderSize(m.fetches, 64<<10)
	var queue []queued // in UID order
	inFlight := 0
	// settle hands the head of the queue to put.
	settle := func() error {
		q := queue[0]
		queue = queue[1:]
		if q.dup {
			return put(&dump.File{UID: q.uid, GUID: q.guid, Size: q.size, Expunged: q.expunged, Dup: true})
		}
		inFlight--
		return m.receive(q.fetch, put)
	}
	var b [fetchSize]byte
	for {
		if _, err := io.ReadFull(in, b[:]); err == io.EOF {
			break
		} else if err != nil {
			return dump.Fatal(fmt.Errorf("reading back the records of %s: %w", m.mb.Name, err))
		}
		var q queued
		q.decode(b[:])
		if filter.Skip != nil {
			skip, err := filter.Skip(q.guid)
			if err != nil {
				return dump.Fatal(err)
			}
			if skip {
				continue
			}
		}
		dup, err := have(q.guid)
		if err != nil {
			return dump.Fatal(err)
		}
		q.dup = dup
		waits := false
		for _, p := range queue {
			waits = waits || p.guid == q.guid && !p.dup
		}
		if waits {
			// The same file is on its way for an earlier record: wait
			// for it, since a failed fetch leaves this record its own.
			for len(queue) > 0 {
				if err := settle(); err != nil {
					return err
				}
			}
			if q.dup, err = have(q.guid); err != nil {
				return dump.Fatal(err)
			}
		}
		if !q.dup {
			if err := m.sendFetch(q.fetch); err != nil {
				return dump.Fatal(err)
			}
			inFlight++
		}
		queue = append(queue, q)
		for inFlight >= fetchDepth || len(queue) >= maxQueued {
			if err := settle(); err != nil {
				return err
			}
		}
	}
	for len(queue) > 0 {
		if err := settle(); err != nil {
			return err
		}
	}
	return nil
}

// maxQueued bounds the queue of records waiting behind the fetches in
// flight.
const maxQueued = 1024

// receive reads the answer to the GET FETCH of f and hands the file to
// put, which writes it while it is checked against its GUID.
func (m *remoteMailbox) receive(f fetch, put func(*dump.File) error) error {
	got := false
	var perr error
	err := m.c.Receive(func(n string, r *dlist.Reader) error {
		if n != "MESSAGE" || got {
			return nil
		}
		t, err := r.Next()
		if err != nil {
			return err
		}
		if t.Kind != dlist.File || t.File.GUID != f.guid || t.File.Size != f.size {
			return fmt.Errorf("%w: GET FETCH %s UID %d: answer is not the file %s of %d bytes", syncproto.ErrProtocol, m.mb.Name, f.uid, f.guid, f.size)
		}
		got = true
		perr = put(&dump.File{UID: f.uid, GUID: f.guid, Size: f.size, Expunged: f.expunged,
			Write: func(w *dlist.Writer, partition string) error {
				body := &bodyReader{r: guid.NewReader(r.Body(), f.guid, f.size)}
				err := w.File(partition, f.guid, f.size, body)
				if err != nil && body.err != nil {
					// The server's bytes, not the output, failed.
					err = fmt.Errorf("mailbox %s UID %d: message file %s: %w", m.mb.Name, f.uid, f.guid, body.err)
				}
				return err
			}})
		return perr
	})
	if perr != nil {
		return perr // the dump is broken, whatever the server said next
	}
	var se *syncproto.Error
	switch {
	case errors.As(err, &se):
		// Cyrus removes the files of expunged messages in time: that is
		// not a problem, as for an offline dump.
		return put(&dump.File{UID: f.uid, GUID: f.guid, Size: f.size, Expunged: f.expunged, Err: err, Gone: true})
	case err != nil:
		return dump.Fatal(err)
	case !got:
		return put(&dump.File{UID: f.uid, GUID: f.guid, Size: f.size, Expunged: f.expunged, Gone: true,
			Err: errors.New("GET FETCH answered no file")})
	}
	return nil
}

// sendFetch sends GET FETCH %(MBOXNAME PARTITION UNIQUEID GUID UID).
func (m *remoteMailbox) sendFetch(f fetch) error {
	mb := m.mb
	w, err := m.c.Begin()
	if err != nil {
		return err
	}
	w.BeginLine("GET", "FETCH")
	w.BeginKVList()
	w.Key("MBOXNAME")
	w.Atom(mb.Name)
	w.Key("PARTITION")
	w.Atom(mb.Partition)
	w.Key("UNIQUEID")
	w.Atom(mb.UniqueID)
	w.Key("GUID")
	w.GUID(f.guid)
	w.Key("UID")
	w.Num(uint64(f.uid))
	w.EndList()
	if err := w.EndLine(); err != nil {
		return err
	}
	return m.c.Send(fmt.Sprintf("GET FETCH %s UID %d", mb.Name, f.uid))
}

// bodyReader remembers the error of a file literal's body (a GUID
// mismatch, a connection lost), to tell it from an error of the output.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}
