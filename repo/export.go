package repo

import (
	"context"
	"fmt"
	"io"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/zeebo/blake3"
)

// ExportOptions shape WriteDump.
type ExportOptions struct {
	Users    []string // the users to write; all of the snapshot's when empty
	Compress bool     // zstd
	// ReaderRehashes says that the reader of the dump re-hashes every
	// file against its GUID before it uses it, as restore does before
	// anything becomes visible: the export then copies files without
	// re-hashing them (one SHA-1 per file, not two). A damaged pack then
	// fails the reader, with the file's GUID, instead of the export.
	ReaderRehashes bool
	// Unsealed writes no digest (dumpfile.Options.Unsealed), for a reader
	// in the process that reads it unsealed (restore.Options.Unsealed).
	Unsealed bool
}

// WriteDump writes users of snapshot s as one ordinary standalone dump
// (the format of docs/format.md), which restore, restore --server and
// verify read as they read any dump: every user's state, with each MBTOOL
// FILES line replaced by APPLY MESSAGE lines carrying the files from the
// packs, each file once in the dump. Every file is re-hashed as it is
// copied (unless opts.ReaderRehashes); a state that does not hash to its
// name fails the export before the trailer is written, so a damaged
// repository never yields a dump that checks out.
func (r *Repo) WriteDump(ctx context.Context, idx *Index, s *Snapshot, w io.Writer, opts ExportOptions) (dumpfile.Counts, error) {
	r = r.boundTo(ctx) // a cancelled export ends its reads in flight
	users := s.Users
	if len(opts.Users) > 0 {
		users = nil
		for _, name := range opts.Users {
			u := s.User(name)
			if u == nil {
				return dumpfile.Counts{}, fmt.Errorf("%w: snapshot %s does not hold %s", ErrNoSnapshot, s.ShortID(), holds(name))
			}
			users = append(users, *u)
		}
	}
	iv := s.IndexVersion
	if len(opts.Users) > 0 {
		// The header of a dump of these users alone: the highest index
		// version of their mailboxes (none for a user without any).
		iv = 0
		for _, u := range users {
			v, err := r.stateIndexVersion(u.State)
			if err != nil {
				return dumpfile.Counts{}, fmt.Errorf("user %s (state %s): %w", u.Name, u.State[:8], err)
			}
			iv = max(iv, v)
		}
	}
	fw, err := dumpfile.NewWriter(w, dumpfile.Header{Created: s.Time, Host: s.Host, Version: s.Version,
		IndexVersion: iv}, dumpfile.Options{Compress: opts.Compress, Unsealed: opts.Unsealed})
	if err != nil {
		return dumpfile.Counts{}, err
	}
	e := &exporter{r: r, idx: idx, w: fw.DL(), packs: newPackCache(r.store),
		emitted: guidtable.New(guidtable.Options{})}
	e.streams = newPackStreams(e.packs)
	e.streams.rehash = !opts.ReaderRehashes
	defer e.packs.close()
	defer e.emitted.Close()
	for _, u := range users {
		if err := ctx.Err(); err != nil {
			return e.c, err
		}
		if err := e.user(u); err != nil {
			return e.c, fmt.Errorf("user %s (state %s): %w", u.Name, u.State[:8], err)
		}
	}
	if len(opts.Users) == 0 {
		// The run's items in no state (users gone before their turn).
		for _, sk := range s.Skipped {
			if err := dumpfile.WriteSkip(e.w, sk); err != nil {
				return e.c, err
			}
		}
	}
	return e.c, fw.Close(e.c)
}

type exporter struct {
	r       *Repo
	idx     *Index
	w       *dlist.Writer
	packs   *packCache
	streams *packStreams // reads from packs
	emitted *guidtable.Table
	c       dumpfile.Counts
	inLine  int // files in the APPLY MESSAGE line being written
}

// hashingReader hashes what is read through it.
type hashingReader struct {
	r io.Reader
	h *blake3.Hasher
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// openState opens a state for reading, with the hash of its dlist text
// (which names it) kept as it is read.
func (r *Repo) openState(id string) (*dlist.Reader, *hashingReader, func(), error) {
	f, err := r.store.Open(stateName(id))
	if err != nil {
		return nil, nil, nil, err
	}
	zr, err := zstdDecoder(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	hr := &hashingReader{r: zr, h: blake3.New()}
	done := func() {
		if zr != nil { // once: a pooled decoder must not be given back twice
			putDecoder(zr)
			zr = nil
			f.Close()
		}
	}
	return dlist.NewReader(hr), hr, done, nil
}

// stateIndexVersion reads the INDEXVERSION of a state's first line.
func (r *Repo) stateIndexVersion(id string) (int, error) {
	rd, _, done, err := r.openState(id)
	if err != nil {
		return 0, err
	}
	defer done()
	l, err := rd.ReadLine()
	if err != nil {
		return 0, err
	}
	if l.Verb != Verb || l.Value == nil || l.Value.Key != "STATE" {
		return 0, fmt.Errorf("%w: state %s does not start with MBTOOL STATE", ErrDamaged, id)
	}
	n, _ := l.Value.Get("INDEXVERSION").Num64()
	return int(n), nil
}

// stateVisitor is called for each line of a state by readState.
type stateVisitor struct {
	// files is called for each GUID of an MBTOOL FILES line.
	files func(part string, g guid.GUID) error
	// box is called for each MBTOOL MAILBOX line (format 2).
	box func(e BoxEntry) error
	// line is called for every other line, after its verb and name;
	// it must read the value (and not the line's end).
	line func(rd *dlist.Reader, verb, name string) error
}

// readState reads the state id through, calling v, and checks its end
// line and digest.
func (r *Repo) readState(id string, v stateVisitor) (UserEntry, error) {
	rd, hr, done, err := r.openState(id)
	if err != nil {
		return UserEntry{}, err
	}
	defer done()
	var u UserEntry
	first := true
	for {
		vt, err := rd.Next()
		if err == io.EOF {
			return u, fmt.Errorf("%w: state %s has no END line", ErrDamaged, id)
		}
		if err != nil {
			return u, err
		}
		verb := string(vt.Bytes) // valid only until the next call
		nt, err := rd.Next()
		if err != nil {
			return u, err
		}
		name := string(nt.Bytes)
		switch {
		case verb == Verb && name == "STATE" && first:
			l, err := rd.ReadValue()
			if err != nil {
				return u, err
			}
			u.Name = l.Get("USER").String()
			if l.Get("SHARED").String() == "1" {
				u.Name = SharedName
			}
		case verb == Verb && name == "FILES":
			err := readFiles(rd, func(part string, g guid.GUID) error {
				u.Files++
				if v.files == nil {
					return nil
				}
				return v.files(part, g)
			})
			if err != nil {
				return u, err
			}
		case verb == Verb && name == "MAILBOX" && v.box != nil:
			l, err := rd.ReadValue()
			if err != nil {
				return u, err
			}
			e, err := parseBoxEntry(l)
			if err != nil {
				return u, fmt.Errorf("state %s: %w", id, err)
			}
			u.Mailboxes++
			u.Files += e.Files
			if err := v.box(e); err != nil {
				return u, err
			}
		case verb == Verb && name == "END":
			l, err := rd.ReadValue()
			if err != nil {
				return u, err
			}
			if err := endLine(rd); err != nil {
				return u, err
			}
			m, _ := l.Get("MAILBOXES").Num64()
			f, _ := l.Get("FILES").Num64()
			b, _ := l.Get("BYTES").Num64()
			var sk uint64
			if v := l.Get("SKIPPED"); v != nil {
				sk, _ = v.Num64()
			}
			if int64(m) != u.Mailboxes || int64(f) != u.Files || int64(sk) != u.Skipped {
				return u, fmt.Errorf("%w: state %s: END says %d mailboxes, %d files and %d skipped, it has %d, %d and %d",
					ErrDamaged, id, m, f, sk, u.Mailboxes, u.Files, u.Skipped)
			}
			u.Bytes = int64(b)
			if _, err := rd.Next(); err != io.EOF {
				return u, fmt.Errorf("%w: state %s: data after END", ErrDamaged, id)
			}
			if idHex([32]byte(hr.h.Sum(nil))) != id {
				return u, fmt.Errorf("%w: state %s: its text hashes to %x", ErrDamaged, id, hr.h.Sum(nil))
			}
			return u, nil
		case first:
			return u, fmt.Errorf("%w: state %s does not start with MBTOOL STATE", ErrDamaged, id)
		default:
			if verb == "APPLY" && name == "MAILBOX" {
				u.Mailboxes++
			}
			if verb == Verb && name == "SKIPPED" {
				u.Skipped++
			}
			if err := v.line(rd, verb, name); err != nil {
				return u, err
			}
		}
		first = false
		if err := endLine(rd); err != nil {
			return u, err
		}
	}
}

// readFiles reads the value of an MBTOOL FILES line:
// %(PARTITION <part> GUIDS (<guid> ...)).
func readFiles(rd *dlist.Reader, fn func(part string, g guid.GUID) error) error {
	bad := func(t dlist.Token) error {
		return fmt.Errorf("%w: offset %d: malformed MBTOOL FILES line", ErrDamaged, t.Offset)
	}
	want := []struct {
		kind dlist.Kind
		key  string
	}{{dlist.KVList, ""}, {dlist.Atom, "PARTITION"}, {dlist.Atom, ""}, {dlist.Atom, "GUIDS"}, {dlist.List, ""}}
	part := ""
	for i, w := range want {
		t, err := rd.Next()
		if err != nil {
			return err
		}
		if t.Kind != w.kind && !(w.key != "" && t.IsKey) || (w.key != "" && string(t.Bytes) != w.key) {
			return bad(t)
		}
		if i == 2 {
			part = string(t.Bytes)
		}
	}
	for {
		t, err := rd.Next()
		if err != nil {
			return err
		}
		if t.Kind == dlist.End {
			break
		}
		g, err := guid.ParseBytes(t.Bytes)
		if t.Kind != dlist.Atom || err != nil {
			return bad(t)
		}
		if err := fn(part, g); err != nil {
			return err
		}
	}
	t, err := rd.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.End {
		return bad(t)
	}
	return nil
}

func (e *exporter) user(u UserEntry) error {
	_, err := e.r.readState(u.State, stateVisitor{
		files: e.file,
		box: func(be BoxEntry) error {
			if err := e.endMessages(); err != nil {
				return err
			}
			return e.box(be)
		},
		line: func(rd *dlist.Reader, verb, name string) error {
			if err := e.endMessages(); err != nil {
				return err
			}
			if verb == "APPLY" && name == "MAILBOX" {
				e.c.Mailboxes++
			}
			e.w.BeginLine(verb, name)
			if err := copyValue(rd, e.w, nil); err != nil {
				return err
			}
			return e.w.EndLine()
		},
	})
	if err != nil {
		return err
	}
	return e.endMessages()
}

// file writes file g from its pack into the APPLY MESSAGE line being
// written (starting one), unless the dump has it already.
func (e *exporter) file(part string, g guid.GUID) error {
	added, err := e.emitted.Add(g, nil)
	if err != nil || !added {
		return err
	}
	loc, ok, err := e.idx.Find(g)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: file %s is in no index", ErrDamaged, g)
	}
	body, err := e.streams.body(g, loc)
	if err != nil {
		return err
	}
	if e.inLine == 0 {
		e.w.BeginLine("APPLY", "MESSAGE")
		e.w.BeginList()
	}
	if err := e.w.File(part, g, loc.Size, body); err != nil {
		return fmt.Errorf("file %s: %w", g, err)
	}
	e.c.Messages++
	e.c.Bytes += loc.Size
	e.inLine++
	if e.inLine == maxFilesPerLine {
		return e.endMessages()
	}
	return nil
}

// endMessages ends the APPLY MESSAGE line being written, if any.
func (e *exporter) endMessages() error {
	if e.inLine == 0 {
		return nil
	}
	e.inLine = 0
	e.w.EndList()
	return e.w.EndLine()
}

// box writes a mailbox of a format-2 state: its files, then its APPLY
// MAILBOX; a delta box merged with its base, in one pass over each.
func (e *exporter) box(be BoxEntry) error {
	e.c.Mailboxes++
	if be.Base == "" {
		b, err := e.r.openBox(be.Box)
		if err != nil {
			return err
		}
		defer b.close()
		if b.base != "" {
			return b.damaged("a delta, the state names it as a full box")
		}
		if err := b.readFiles(e.file); err != nil {
			return err
		}
		if err := e.endMessages(); err != nil {
			return err
		}
		e.w.BeginLine("APPLY", "MAILBOX")
		if err := copyValue(b.rd, e.w, nil); err != nil {
			return err
		}
		if err := e.w.EndLine(); err != nil {
			return err
		}
		return b.finish()
	}
	// A delta, in one pass over it and its base: the merged records
	// are written aside (memory up to 1 MiB, then a temporary file) as
	// their files go out, and the mailbox's line after the files.
	avail := guidtable.New(guidtable.Options{MemLimit: tableMem})
	defer avail.Close()
	m, err := e.r.openMerge(be, func(part string, g guid.GUID) error { _, err := avail.Add(g, nil); return err })
	if err != nil {
		return err
	}
	defer m.close()
	part := m.keys().Partition
	var aside spill
	defer aside.close()
	w := dlist.NewWriter(&aside)
	err = syncrec.WriteMailbox(w, "APPLY", m.keys(), func() (*syncrec.Record, error) {
		r, err := m.next()
		if err != nil || r == nil {
			return r, err
		}
		if ok, err := avail.Has(r.GUID); err != nil || !ok {
			return r, err
		}
		return r, e.file(part, r.GUID)
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return err
	}
	if err := e.endMessages(); err != nil {
		return err
	}
	line, err := aside.reader()
	if err != nil {
		return err
	}
	return e.w.CopyLines(line)
}
