package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/mbtool/mbtool/syncrec"
)

// maxFilesPerMessage is how many file literals one APPLY MESSAGE carries,
// as Cyrus's own sender does.
const maxFilesPerMessage = 1024

// ErrChanged reports a dump that differs, on the second reading, from
// what the first one checked. The command being sent is cut short, so
// the server applies nothing of it.
var ErrChanged = errors.New("dump changed while it was being sent")

// send is the second pass: the dump again, from the start, sending the
// message files the server lacks and the mailboxes.
func (rs *restorer) send(ctx context.Context, src io.Reader) error {
	d, err := dumpcheck.NewReader(src)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrChanged, err)
	}
	defer d.Close()
	if err := rs.needed(); err != nil {
		return err
	}
	hook("sending")
	next := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		verb, name, off, err := d.Next()
		if err == io.EOF {
			hook("sent")
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrChanged, err)
		}
		if verb != "APPLY" {
			return fmt.Errorf("%w: offset %d: %s %s", ErrChanged, off, verb, name)
		}
		switch name {
		case "MESSAGE":
			err = rs.sendMessages(d.DL())
		case "MAILBOX":
			if next >= len(rs.inv.boxes) {
				return fmt.Errorf("%w: offset %d: more mailboxes than before", ErrChanged, off)
			}
			b := rs.inv.boxes[next]
			err = rs.inv.parked.Use(b, func() error { return rs.sendMailbox(d.DL(), b) })
			next++
		}
		if err != nil {
			return err
		}
	}
}

// needed marks, per partition, the GUIDs of the applied mailboxes that
// the server does not have (guidNeeded).
func (rs *restorer) needed() error {
	return rs.inv.each(func(b *box) error {
		if !writes(b) {
			return nil
		}
		p := b.mb.Partition
		return rs.inv.items.each(b.items, func(it item) error {
			if it.unselected || (it.expunged && b.res.Action == ActionMerge) || !it.inDump {
				return nil
			}
			s, err := rs.guids.get(p, it.guid)
			if err != nil || s != guidUnknown {
				return err
			}
			return rs.guids.set(p, it.guid, guidNeeded)
		})
	})
}

// upload is an APPLY MESSAGE being written.
type upload struct {
	rs    *restorer
	w     *dlist.Writer
	n     int
	sizes int64
	parts []string
	guids []guid.GUID
}

func (u *upload) add(p string, g guid.GUID, size int64, body io.Reader) error {
	if u.w == nil {
		w, err := u.rs.c.Begin()
		if err != nil {
			return err
		}
		u.w = w
		w.BeginLine("APPLY", "MESSAGE")
		w.BeginList()
	}
	if err := u.rs.c.File(p, g, size, body); err != nil {
		return fmt.Errorf("%w: message file %s: %w", ErrChanged, g, err)
	}
	u.n++
	u.sizes += size
	u.parts = append(u.parts, p)
	u.guids = append(u.guids, g)
	if u.n == maxFilesPerMessage {
		return u.finish()
	}
	return nil
}

// finish sends the APPLY MESSAGE. A NO here ends the run: the mailboxes
// that need these files cannot be applied.
func (u *upload) finish() error {
	if u.w == nil {
		return nil
	}
	u.w.EndList()
	if err := u.w.EndLine(); err != nil {
		return err
	}
	what := fmt.Sprintf("APPLY MESSAGE (%d files)", u.n)
	if err := u.rs.c.Send(what); err != nil {
		return err
	}
	if err := u.rs.c.Receive(nil); err != nil {
		return err
	}
	rs := u.rs
	for i, g := range u.guids {
		if err := rs.guids.set(u.parts[i], g, guidHeld); err != nil {
			return err
		}
	}
	rs.sum.Messages += int64(u.n)
	rs.sum.Bytes += u.sizes
	rs.sent.Messages += int64(u.n)
	rs.sent.Bytes += u.sizes
	rs.progress(rs.sent)
	*u = upload{rs: rs}
	return nil
}

// sendMessages forwards the file literals of one dump line that the
// server needs, each checked against its GUID as it goes.
func (rs *restorer) sendMessages(r *dlist.Reader) error {
	t, err := r.Next()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrChanged, err)
	}
	if t.Kind != dlist.List {
		return fmt.Errorf("%w: offset %d: APPLY MESSAGE", ErrChanged, t.Offset)
	}
	u := &upload{rs: rs}
	for {
		t, err := r.Next()
		if err != nil {
			return rs.abort(fmt.Errorf("%w: %w", ErrChanged, err))
		}
		if t.Kind == dlist.End {
			break
		}
		if t.Kind != dlist.File {
			return rs.abort(fmt.Errorf("%w: offset %d: a %v in APPLY MESSAGE", ErrChanged, t.Offset, t.Kind))
		}
		fi := t.File
		size, ok, err := rs.inv.fileSize(fi.GUID)
		if err != nil {
			return rs.abort(err)
		}
		if !ok || size != fi.Size {
			return rs.abort(fmt.Errorf("%w: offset %d: message file %s", ErrChanged, t.Offset, fi.GUID))
		}
		var parts []string
		for _, p := range rs.parts {
			s, err := rs.guids.get(p, fi.GUID)
			if err != nil {
				return rs.abort(err)
			}
			if s == guidNeeded {
				parts = append(parts, p)
				if err := rs.guids.set(p, fi.GUID, guidQueued); err != nil {
					return rs.abort(err)
				}
			}
		}
		switch len(parts) {
		case 0:
			continue
		case 1:
			err = u.add(parts[0], fi.GUID, fi.Size, r.Body())
		default:
			err = rs.uploadCopies(u, parts, fi, r.Body())
		}
		if err != nil {
			return rs.abort(err)
		}
	}
	if err := u.finish(); err != nil {
		return rs.abort(err)
	}
	return nil
}

// uploadCopies sends one file to several partitions, through a temporary
// copy (the dump's bytes can be read only once).
func (rs *restorer) uploadCopies(u *upload, parts []string, fi dlist.FileInfo, body io.Reader) error {
	tmp, err := os.CreateTemp("", "mbtool-upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, io.LimitReader(body, fi.Size)); err != nil {
		return fmt.Errorf("%w: message file %s: %w", ErrChanged, fi.GUID, err)
	}
	for _, p := range parts {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := u.add(p, fi.GUID, fi.Size, tmp); err != nil {
			return err
		}
	}
	return nil
}

// abort ends the run after an error in the middle of a command: the
// session is closed with the command incomplete, so the server applies
// nothing of it.
func (rs *restorer) abort(err error) error {
	if rs.c.Err() == nil {
		rs.c.Close() // closes without EXIT: a command is open
	}
	return err
}

// sendMailbox sends one APPLY MAILBOX, its records streamed from the dump
// and checked again on the way.
func (rs *restorer) sendMailbox(r *dlist.Reader, b *box) error {
	defer func() {
		rs.sent.Mailboxes++
		rs.progress(rs.sent)
	}()
	if b.res.Action == ActionMerge && b.res.Err == nil {
		return rs.spillMailbox(r, b)
	}
	if !applies(b) {
		return nil
	}
	records, err := rs.dumpRecords(r, b)
	if err != nil {
		return err
	}
	next := func() (*syncrec.Record, error) {
		rec, it, err := records()
		if rec == nil || err != nil {
			return rec, err
		}
		if lost, err := rs.lostNow(b, it); err != nil {
			return nil, err
		} else if lost {
			// Reported once the reservations were answered (settleLost).
			syncrec.LoseFile(rec, b.src.HighestModseq)
		}
		return rec, nil
	}
	mb := b.mb.Replication()
	if b.res.Action == ActionReplace {
		out, ok, err := rs.replace(b, mb, next)
		if !ok || err != nil {
			return err
		}
		defer out.Close()
		if next, err = out.Records(); err != nil {
			return err
		}
	}
	if b.res.Action == ActionCreate && !b.probed {
		perr, err := rs.createParents(b)
		if err != nil {
			return err
		}
		if perr != nil {
			// Not sent: alone, sync_server would make the levels
			// above it its own way (docs/restore.md).
			b.res.Err = perr
			rs.problem(b.mb.Name, perr)
			return nil
		}
	}
	what := "APPLY MAILBOX " + b.mb.Name
	err = rs.c.Do(what, func(w *dlist.Writer) error {
		return syncrec.WriteMailbox(w, "APPLY", mb, next)
	}, nil)
	switch {
	case err == nil:
		b.res.Applied = true
		rs.remote[b.mb.Name] = true
		rs.counted(mb.Name, mb.HighestModseq)
	case b.res.Action == ActionReplace && syncproto.CodeOf(err) == syncproto.CodeChecksum:
		// Sent with checksums 0, which match anything: sync_server
		// refused it before writing, as the mailbox moved past what
		// replace read (docs/restore.md, "Invariants").
		b.res.Err = fmt.Errorf("changed on the server meanwhile, nothing written; run the restore again: %w", err)
		rs.problem(b.mb.Name, b.res.Err)
	case syncproto.CodeOf(err) == syncproto.CodeChecksum:
		// Cyrus writes first and compares after (docs/cyrus/replication.md §5).
		b.res.Applied = true
		rs.remote[b.mb.Name] = true
		b.res.Err = fmt.Errorf("applied, but the server's checksums differ from the dump's: %w", err)
		rs.problem(b.mb.Name, b.res.Err)
	case fatal(err):
		return err
	default:
		b.res.Err = err
		rs.problem(b.mb.Name, err)
	}
	return nil
}

// userData sends seen state, subscriptions and quotas, mapped, for the
// mailboxes restored (or kept), and those whose mailbox is not in the
// dump unless a selection is in force.
func (rs *restorer) userData() error {
	// The boxes by the dump's uniqueid and by name, spilling.
	keys := spill.NewNames()
	defer keys.Close()
	merged := make(map[string]bool)
	err := rs.inv.each(func(b *box) error {
		if err := keys.Put(spill.KeySrcID, b.src.UniqueID, b.id); err != nil {
			return err
		}
		if b.res.Action != ActionSkip {
			if _, dup, err := keys.Get(spill.KeyName, b.mb.Name); err != nil || dup {
				return err
			}
			if err := keys.Put(spill.KeyName, b.mb.Name, b.id); err != nil {
				return err
			}
		}
		if b.res.Action == ActionMerge && b.res.Applied && b.uids.Renumbered() {
			merged[b.mb.UniqueID] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	lookup := func(kind, s string) (*box, error) {
		id, ok, err := keys.Get(kind, s)
		if err != nil || !ok {
			return nil, err
		}
		return spill.Peek(rs.inv.parked, rs.inv.boxes[id-1])
	}
	ok := func(b *box) bool {
		if b == nil {
			return !rs.opts.Select.Active()
		}
		return b.res.Applied || b.res.Action == ActionKeep
	}
	send := func(count *int, item string, write func(w *dlist.Writer) error) error {
		err := rs.c.Do(item, write, nil)
		if fatal(err) {
			return err
		}
		if err != nil {
			rs.problem(item, err)
			return nil
		}
		*count++
		return nil
	}
	// The user's current seen records, read once per run of one user's
	// records of the dump (they come together): in full those a merge
	// adds to, of the merged mailboxes; of the others only whether the
	// user has one (for a mailbox kept or outside the dump).
	var cached *serverSeen
	err = rs.inv.EachSeen(func(s *syncrec.Seen) error {
		b, err := lookup(spill.KeySrcID, s.UniqueID)
		if err != nil {
			return err
		}
		if !ok(b) {
			return nil
		}
		ns := *s
		ns.UserID = rs.users.User(s.UserID)
		// Over the user's record, added to it, or only where the user
		// has none: msgsel.MapSeen's rule, as offline.
		rule, name := msgsel.SeenRuleFor("", rs.opts.Replace), ns.UniqueID
		var uids *msgsel.UIDMap
		if b != nil {
			ns.UniqueID = b.mb.UniqueID
			if mboxname.Owner(b.mb.Name) == ns.UserID {
				return nil // Cyrus keeps the owner's in the index
			}
			rule, uids, name = msgsel.SeenRuleFor(b.res.Action, rs.opts.Replace), b.uids, b.mb.Name
		}
		var lost error // the connection, not the record
		cur := func() (*syncrec.Seen, bool, error) {
			if cached == nil || cached.user != ns.UserID {
				sv, err := rs.userSeen(ns.UserID, merged)
				if err != nil {
					lost = err
					return nil, false, err
				}
				cached = sv
			}
			return cached.get(ns.UniqueID)
		}
		write, err := msgsel.MapSeen(rule, uids, &ns, cur)
		if lost != nil {
			return lost
		}
		if err != nil {
			rs.problem(name, err)
			return nil
		}
		if !write {
			return nil
		}
		item := "APPLY SEEN " + ns.UserID + " " + ns.UniqueID
		return send(&rs.sum.Seen, item, func(w *dlist.Writer) error { return syncrec.WriteSeen(w, &ns) })
	})
	if err != nil {
		return err
	}
	err = rs.inv.EachSub(func(s *syncrec.Sub) error {
		ns := syncrec.Sub{UserID: rs.users.User(s.UserID), MboxName: rs.users.Name(s.MboxName)}
		if b, err := lookup(spill.KeyName, ns.MboxName); err != nil {
			return err
		} else if b == nil && rs.opts.Select.Active() {
			return nil
		}
		item := "APPLY SUB " + ns.UserID + " " + ns.MboxName
		return send(&rs.sum.Subs, item, func(w *dlist.Writer) error { return syncrec.WriteSub(w, &ns) })
	})
	if err != nil {
		return err
	}
	for _, a := range rs.inv.ServerAnnotations {
		if rs.opts.Select.Active() {
			break // they belong to no mailbox
		}
		na := *a
		na.UserID = rs.users.User(a.UserID)
		item := "APPLY ANNOTATION \"\" " + na.Entry + " " + na.UserID
		if err := send(&rs.sum.ServerAnnotations, item, func(w *dlist.Writer) error { return syncrec.WriteServerAnnotation(w, &na) }); err != nil {
			return err
		}
	}
	for _, q := range rs.inv.Quotas {
		nq := *q
		nq.Root = rs.users.Name(q.Root)
		b, err := lookup(spill.KeyName, nq.Root)
		if err != nil {
			return err
		}
		if !ok(b) {
			continue
		}
		// An existing quota root keeps its limits, even with --replace
		// (docs/restore.md, "Invariants"), as offline.
		if has, err := rs.hasQuota(nq.Root); err != nil {
			return err
		} else if has {
			continue
		}
		item := "APPLY QUOTA " + nq.Root
		if err := send(&rs.sum.Quotas, item, func(w *dlist.Writer) error { return syncrec.WriteQuota(w, &nq) }); err != nil {
			return err
		}
	}
	return nil
}

// hasQuota reports whether the server has a quota root of this name (GET
// QUOTA answers with its limits, or with nothing).
func (rs *restorer) hasQuota(root string) (bool, error) {
	found := false
	err := rs.c.Line("GET", "QUOTA", dlist.NewAtom(root), func(n string, r *dlist.Reader) error {
		if n != "QUOTA" {
			return nil
		}
		if _, err := r.ReadValue(); err != nil {
			return err
		}
		found = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("asking the server for quota root %s: %w", root, err)
	}
	return found, nil
}

// dumpRecords reads the records of b from the dump again, checking each
// against what the first pass saw, and returns those the message
// selectors keep, one per call (nil at the end), with what the first
// pass noted of each: names mapped, no cache (sync_server builds its
// own).
func (rs *restorer) dumpRecords(r *dlist.Reader, b *box) (func() (*syncrec.Record, item, error), error) {
	mr, err := syncrec.OpenMailbox(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChanged, err)
	}
	mb := mr.Mailbox()
	if mb.UniqueID != b.src.UniqueID || mb.Name != b.src.Name || mb.LastUID != b.src.LastUID {
		return nil, fmt.Errorf("%w: mailbox %s is not where it was", ErrChanged, b.src.Name)
	}
	pol := dumpcheck.NewDump()
	defer pol.Close()
	chk, err := pol.Mailbox(b.src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChanged, err)
	}
	items := rs.inv.items.read(b.items)
	var i int64
	return func() (*syncrec.Record, item, error) {
		for {
			rec, err := mr.Next()
			if err != nil {
				return nil, item{}, fmt.Errorf("%w: mailbox %s: %w", ErrChanged, b.src.Name, err)
			}
			if rec == nil {
				if i != b.items.n {
					return nil, item{}, fmt.Errorf("%w: mailbox %s has %d records, not %d", ErrChanged, b.src.Name, i, b.items.n)
				}
				return nil, item{}, nil
			}
			if err := chk.Record(rec); err != nil {
				return nil, item{}, fmt.Errorf("%w: %w", ErrChanged, err)
			}
			it, ok, err := items.next()
			if err != nil {
				return nil, item{}, err
			}
			if !ok || it.guid != rec.GUID || it.expunged != rec.Expunged() {
				return nil, item{}, fmt.Errorf("%w: mailbox %s UID %d", ErrChanged, b.src.Name, rec.UID)
			}
			i++
			if it.unselected {
				continue
			}
			rs.users.Annotations(rec.Annotations)
			rec.Cache = nil
			return rec, it, nil
		}
	}, nil
}

// serverSeen is what the server answered GET META of one user with: which
// mailboxes the user has a seen record of, and the records asked for in
// full, each checked as a dump's, or why not.
type serverSeen struct {
	user string
	err  error // GET META refused (a NO)
	recs map[string]seenAnswer
}

type seenAnswer struct {
	s   *syncrec.Seen // nil: not asked for in full
	err error
}

// get returns the user's record of the mailbox uniqueid (nil if it was not
// asked for in full), whether the user has one, and why it cannot be used.
func (u *serverSeen) get(uniqueid string) (*syncrec.Seen, bool, error) {
	if u.err != nil {
		return nil, false, u.err
	}
	a, ok := u.recs[uniqueid]
	return a.s, ok, a.err
}

// userSeen reads user's seen records from the server (GET META: the
// user's seen records and subscriptions): those of the mailboxes want
// names (by uniqueid) in full, of the others only that the user has one
// (neither kept nor checked: a uniqueid each, as many as the user has
// seen records of other users' mailboxes). The error is the connection's;
// a refusal is the answer's.
func (rs *restorer) userSeen(user string, want map[string]bool) (*serverSeen, error) {
	u := &serverSeen{user: user, recs: make(map[string]seenAnswer)}
	var held int64 // bounded as dump --server bounds GET USER's answer
	err := rs.c.Line("GET", "META", dlist.NewAtom(user), func(item string, r *dlist.Reader) error {
		if item != "SEEN" {
			return nil
		}
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		id := v.Get("UNIQUEID").String()
		var a seenAnswer
		if want[id] {
			a.s, a.err = seenValue(v, user)
		}
		if held += int64(len(id)) + 64; a.s != nil {
			held += int64(len(a.s.SeenUIDs))
		}
		if held > maxUserHeld {
			return fmt.Errorf("%w: %w: the answer holds more than %d MiB of seen records", syncproto.ErrProtocol, syncproto.ErrLimit, maxUserHeld>>20)
		}
		u.recs[id] = a
		return nil
	})
	if fatal(err) {
		return nil, fmt.Errorf("GET META %s: %w", user, err)
	}
	if err != nil {
		u.err = fmt.Errorf("GET META %s: %w", user, err)
	}
	return u, nil
}
