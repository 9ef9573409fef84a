package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/mbtool/mbtool/syncrec"
)

// ErrNoSelection is returned when neither users nor mailboxes were asked
// for.
var ErrNoSelection = errors.New("nothing selected to dump")

// ErrNoMailbox reports a user or mailbox the server does not have.
var ErrNoMailbox = errors.New("no such mailbox on the server")

// DumpOptions select what Dump pulls from the server.
type DumpOptions struct {
	Users     []string // whole users: their mailboxes, quota roots, subscriptions, seen state
	Mailboxes []string // single mailboxes by internal name
	Compress  bool     // zstd
	Host      string   // for the header; the server's address is a good choice
	Version   string   // mbtool's version, for the header
	Now       time.Time
	// Progress, if set, is called after each message file and mailbox.
	Progress func(Progress)
}

// DumpSummary is what Dump did.
type DumpSummary struct {
	dumpfile.Counts
	Users    int
	Records  int64 // RECORD entries, expunged included
	Shared   int64 // records whose message file was already in the dump
	Problems []Problem
}

// fetchDepth is how many GET FETCH commands are in flight at once.
const fetchDepth = 16

// Dump pulls users and mailboxes from a running server over the
// replication protocol (GET USER, GET FULLMAILBOX, GET FETCH, GET QUOTA)
// and writes them to w as a dump, in the order and form of an offline dump
// (package dump) of the same state: per user, each mailbox in name order
// with its new message files in APPLY MESSAGE lines of at most 1024, then
// its APPLY MAILBOX; then the user's quota roots, subscriptions and seen
// records. Message files are checked against their GUIDs as they arrive.
func Dump(ctx context.Context, c *syncproto.Client, w io.Writer, opts DumpOptions) (*DumpSummary, error) {
	if len(opts.Users) == 0 && len(opts.Mailboxes) == 0 {
		return nil, ErrNoSelection
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	fw, err := dumpfile.NewWriter(w, dumpfile.Header{Created: now, Host: opts.Host, Version: opts.Version},
		dumpfile.Options{Compress: opts.Compress})
	if err != nil {
		return nil, err
	}
	d := &dumper{ctx: ctx, c: c, w: fw.DL(), opts: opts, sum: &DumpSummary{},
		embedded: guidtable.New(guidtable.Options{}), done: make(map[string]bool)}
	defer d.embedded.Close()
	for _, u := range opts.Users {
		if d.doneUsers[u] {
			continue
		}
		if err := d.user(u); err != nil {
			return d.sum, err
		}
	}
	for _, name := range opts.Mailboxes {
		if d.done[name] {
			continue
		}
		if _, err := d.mailbox(name); err != nil {
			return d.sum, err
		}
	}
	if err := fw.Close(d.sum.Counts); err != nil {
		return d.sum, err
	}
	return d.sum, nil
}

type dumper struct {
	ctx       context.Context
	c         *syncproto.Client
	w         *dlist.Writer
	opts      DumpOptions
	sum       *DumpSummary
	embedded  *guidtable.Table // files in the dump so far
	done      map[string]bool  // mailboxes dumped
	doneUsers map[string]bool
}

func (d *dumper) problem(item string, err error) {
	d.sum.Problems = append(d.sum.Problems, Problem{Item: item, Err: err})
}

func (d *dumper) progress() {
	if d.opts.Progress != nil {
		d.opts.Progress(Progress{Phase: PhaseSend, Mailboxes: d.sum.Mailboxes, Messages: d.sum.Messages, Bytes: d.sum.Bytes})
	}
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

// user dumps every mailbox of u, then its quota roots, subscriptions and
// seen records.
func (d *dumper) user(u string) error {
	if d.doneUsers == nil {
		d.doneUsers = make(map[string]bool)
	}
	d.doneUsers[u] = true
	inbox := userInbox(u)
	var names []string
	var subs []string
	var seen []*syncrec.Seen
	err := d.c.Line("GET", "USER", dlist.NewAtom(u), func(name string, r *dlist.Reader) error {
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		switch name {
		case "MAILBOX":
			mb, err := syncrec.DecodeMailbox(v)
			if err != nil {
				return fmt.Errorf("%w: MAILBOX: %w", syncproto.ErrProtocol, err)
			}
			if (mb.Name == inbox || strings.HasPrefix(mb.Name, inbox+".")) && !isPlaceholder(mb) {
				names = append(names, mb.Name)
			}
		case "LSUB":
			for _, it := range v.Children {
				subs = append(subs, it.String())
			}
		case "SEEN":
			// GET USER's SEEN items have no USERID (sync-records.md §5).
			v.Add("USERID", dlist.NewAtom(u))
			s, err := syncrec.DecodeSeen(v)
			if err != nil {
				return fmt.Errorf("%w: SEEN: %w", syncproto.ErrProtocol, err)
			}
			seen = append(seen, s)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("GET USER %s: %w", u, err)
	}
	if len(names) == 0 {
		return fmt.Errorf("user %s: %w", u, ErrNoMailbox)
	}
	sort.Slice(names, func(i, j int) bool { return dbKey(names[i]) < dbKey(names[j]) })
	d.sum.Users++
	roots := make(map[string]bool)
	for _, name := range names {
		root, err := d.mailbox(name)
		if err != nil {
			return err
		}
		if root != "" {
			roots[root] = true
		}
	}
	for _, root := range sortedKeys(roots) {
		if err := d.quota(root); err != nil {
			return err
		}
	}
	for _, s := range subs {
		if err := syncrec.WriteSub(d.w, &syncrec.Sub{UserID: u, MboxName: s}); err != nil {
			return err
		}
	}
	for _, s := range seen {
		if err := syncrec.WriteSeen(d.w, s); err != nil {
			return err
		}
	}
	return d.ctx.Err()
}

// quota writes the APPLY QUOTA of root, if the server has limits for it.
func (d *dumper) quota(root string) error {
	var q *syncrec.Quota
	err := d.c.Line("GET", "QUOTA", dlist.NewAtom(root), func(name string, r *dlist.Reader) error {
		if name != "QUOTA" {
			return nil
		}
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		q, err = syncrec.DecodeQuota(v)
		return err
	})
	var e *syncproto.Error
	if errors.As(err, &e) && e.Status == "NO" {
		return nil // a quota root named in a mailbox but without limits
	}
	if err != nil {
		return fmt.Errorf("GET QUOTA %s: %w", root, err)
	}
	if q == nil {
		return nil
	}
	return syncrec.WriteQuota(d.w, q)
}

// fetch is one message file to pull.
type fetch struct {
	uid      uint32
	guid     guid.GUID
	size     int64
	expunged bool
}

// mailbox dumps one mailbox: GET FULLMAILBOX (records spooled to a
// temporary file), GET FETCH of its message files not yet in the dump,
// then its APPLY MAILBOX. It returns the mailbox's quota root.
func (d *dumper) mailbox(name string) (string, error) {
	d.done[name] = true
	spool, err := os.CreateTemp("", "mbtool-records-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	sw := dlist.NewWriter(spool)
	var mb *syncrec.Mailbox
	var todo []fetch
	var nrec int64
	err = d.c.Line("GET", "FULLMAILBOX", dlist.NewAtom(name), func(n string, r *dlist.Reader) error {
		if n != "MAILBOX" || mb != nil {
			return nil
		}
		mr, err := openMailbox(r)
		if err != nil {
			return err
		}
		mb = mr.mb
		sw.BeginLine("R", "RECORD")
		sw.BeginList()
		for {
			rec, err := mr.next()
			if err != nil {
				return err
			}
			if rec == nil {
				break
			}
			nrec++
			syncrec.WriteRecord(sw, rec)
			todo = append(todo, fetch{uid: rec.UID, guid: rec.GUID, size: int64(rec.Size), expunged: rec.Expunged()})
		}
		sw.EndList()
		return sw.EndLine()
	})
	if syncproto.CodeOf(err) == syncproto.CodeNonexistent {
		return "", fmt.Errorf("mailbox %s: %w", name, ErrNoMailbox)
	}
	if err != nil {
		return "", fmt.Errorf("GET FULLMAILBOX %s: %w", name, err)
	}
	if mb == nil {
		return "", fmt.Errorf("mailbox %s: %w", name, ErrNoMailbox)
	}
	if err := sw.Flush(); err != nil {
		return "", fmt.Errorf("spooling the records of %s: %w", name, err)
	}
	if err := d.fetchAll(mb, todo); err != nil {
		return "", err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if err := d.writeMailbox(mb, spool); err != nil {
		return "", err
	}
	d.sum.Mailboxes++
	d.sum.Records += nrec
	d.progress()
	return mb.QuotaRoot, d.ctx.Err()
}

// writeMailbox writes the APPLY MAILBOX from the mailbox keys and the
// spooled records.
func (d *dumper) writeMailbox(mb *syncrec.Mailbox, spool io.Reader) error {
	r := dlist.NewReader(spool)
	for i := 0; i < 3; i++ { // verb, name, "("
		if _, err := r.Next(); err != nil {
			return fmt.Errorf("reading back the records of %s: %w", mb.Name, err)
		}
	}
	return syncrec.WriteMailbox(d.w, "APPLY", mb, func() (*syncrec.Record, error) {
		t, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("reading back the records of %s: %w", mb.Name, err)
		}
		if t.Kind == dlist.End {
			return nil, nil
		}
		return syncrec.ReadRecord(r, t)
	})
}

// fetchAll pulls the message files of one mailbox that the dump does not
// hold yet, in UID order, fetchDepth commands in flight, and writes them
// as APPLY MESSAGE lines of at most 1024 files.
func (d *dumper) fetchAll(mb *syncrec.Mailbox, todo []fetch) error {
	var want []fetch
	queued := make(map[guid.GUID]bool)
	for _, f := range todo {
		have, err := d.embedded.Has(f.guid)
		if err != nil {
			return err
		}
		if have || queued[f.guid] {
			d.sum.Shared++
			continue
		}
		queued[f.guid] = true
		want = append(want, f)
	}
	inLine := 0
	endLine := func() error {
		if inLine == 0 {
			return nil
		}
		inLine = 0
		d.w.EndList()
		return d.w.EndLine()
	}
	sent := 0
	for i, f := range want {
		for ; sent < len(want) && sent < i+fetchDepth; sent++ {
			if err := d.sendFetch(mb, want[sent]); err != nil {
				return err
			}
		}
		got := false
		err := d.c.Receive(func(n string, r *dlist.Reader) error {
			if n != "MESSAGE" || got {
				return nil
			}
			t, err := r.Next()
			if err != nil {
				return err
			}
			if t.Kind != dlist.File || t.File.GUID != f.guid || t.File.Size != f.size {
				return fmt.Errorf("%w: GET FETCH %s UID %d: answer is not the file %s of %d bytes", syncproto.ErrProtocol, mb.Name, f.uid, f.guid, f.size)
			}
			got = true
			if inLine == 0 {
				d.w.BeginLine("APPLY", "MESSAGE")
				d.w.BeginList()
			}
			inLine++
			// The server's file is checked as it is copied; a mismatch
			// leaves the dump unfinished, and the run fails.
			if err := d.w.File(mb.Partition, f.guid, f.size, guid.NewReader(r.Body(), f.guid, f.size)); err != nil {
				return &fatalError{fmt.Errorf("mailbox %s UID %d: message file %s: %w", mb.Name, f.uid, f.guid, err)}
			}
			return nil
		})
		var fe *fatalError
		if errors.As(err, &fe) {
			return fe.err
		}
		var se *syncproto.Error
		switch {
		case errors.As(err, &se):
			// Cyrus removes the files of expunged messages in time:
			// that is not a problem, as for an offline dump.
			if !f.expunged {
				d.problem(mb.Name, fmt.Errorf("UID %d (GUID %s): %w", f.uid, f.guid, err))
			}
			continue
		case err != nil:
			return err
		case !got:
			if !f.expunged {
				d.problem(mb.Name, fmt.Errorf("UID %d (GUID %s): GET FETCH answered no file", f.uid, f.guid))
			}
			continue
		}
		if _, err := d.embedded.Add(f.guid, nil); err != nil {
			return err
		}
		d.sum.Messages++
		d.sum.Bytes += f.size
		d.progress()
		if inLine == maxFilesPerMessage {
			if err := endLine(); err != nil {
				return err
			}
		}
	}
	return endLine()
}

// fatalError marks a handler error that must end the dump.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// sendFetch sends GET FETCH %(MBOXNAME PARTITION UNIQUEID GUID UID).
func (d *dumper) sendFetch(mb *syncrec.Mailbox, f fetch) error {
	w, err := d.c.Begin()
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
	return d.c.Send(fmt.Sprintf("GET FETCH %s UID %d", mb.Name, f.uid))
}
