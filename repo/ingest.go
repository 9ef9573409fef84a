package repo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/zeebo/blake3"
)

// Ingest reads a standalone dump of one user (as dump.Run writes it) and
// stores it in the run: the file literals the repository lacks go to a
// pack, the rest becomes the user's state. The dump's trailer is checked;
// a dump that does not end well stores no state.
func (b *Backup) Ingest(ctx context.Context, user string, in io.Reader) (UserEntry, error) {
	dr, err := dumpfile.NewReader(in)
	if err != nil {
		return UserEntry{}, err
	}
	defer dr.Close()
	pw, err := b.takePack()
	if err != nil {
		return UserEntry{}, err
	}
	g := &ingest{b: b, user: user, dr: dr, pw: pw,
		named: guidtable.New(guidtable.Options{MemLimit: tableMem})}
	defer g.named.Close()
	u, err := g.run(ctx)
	if g.pw != nil {
		b.givePack(g.pw)
	}
	g.spool.close()
	if err != nil {
		return UserEntry{}, fmt.Errorf("user %s: %w", user, err)
	}
	b.addUser(u, dr.Header().IndexVersion)
	return u, nil
}

type ingest struct {
	b     *Backup
	user  string
	dr    *dumpfile.Reader
	pw    *slotWriter
	named *guidtable.Table // files the state has named so far
	spool spill            // the current APPLY MAILBOX line
	u     UserEntry
}

func (g *ingest) run(ctx context.Context) (UserEntry, error) {
	fw, err := g.b.r.store.Create()
	if err != nil {
		return UserEntry{}, err
	}
	defer fw.Abort()
	zw, err := zstdEncoder(fw)
	if err != nil {
		return UserEntry{}, err
	}
	defer zw.Close()
	// A state is named by the digest of its dlist text, not of the
	// compressed bytes, so that the same state always has the same name.
	h := blake3.New()
	plain := io.MultiWriter(zw, h)
	w := dlist.NewWriter(plain)
	w.BeginLine(Verb, "STATE")
	w.BeginKVList()
	w.Key("FORMAT")
	w.Num(SnapshotFormat)
	w.Key("USER")
	w.Atom(g.user)
	w.Key("INDEXVERSION")
	w.Num(uint64(g.dr.Header().IndexVersion))
	w.EndList()
	w.EndLine()
	g.u.Name = g.user
	// A SKIPPED line (an item the dump left out) stays in the state where
	// the dump had it, so that the user written out is partial as the
	// dump was.
	g.dr.OnSkip = func(s dumpfile.Skip, _ int64) {
		dumpfile.WriteSkip(w, s) // an error stays in w
		g.u.Skipped++
	}
	for {
		if err := ctx.Err(); err != nil {
			return UserEntry{}, err
		}
		verb, name, _, err := g.dr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return UserEntry{}, err
		}
		rd := g.dr.DL()
		switch {
		case verb == "APPLY" && name == "MESSAGE":
			err = g.messages(rd)
		case verb == "APPLY" && name == "MAILBOX":
			err = g.mailbox(rd, w, plain)
		default:
			w.BeginLine(verb, name)
			if err = copyValue(rd, w, nil); err == nil {
				err = w.EndLine()
			}
		}
		if err == nil {
			err = g.dr.EndLine()
		}
		if err != nil {
			return UserEntry{}, fmt.Errorf("%s %s: %w", verb, name, err)
		}
	}
	w.BeginLine(Verb, "END")
	w.BeginKVList()
	w.Key("MAILBOXES")
	w.Num(uint64(g.u.Mailboxes))
	w.Key("FILES")
	w.Num(uint64(g.u.Files))
	w.Key("BYTES")
	w.Num(uint64(g.u.Bytes))
	if g.u.Skipped > 0 {
		w.Key("SKIPPED")
		w.Num(uint64(g.u.Skipped))
	}
	w.EndList()
	w.EndLine()
	if err := w.Flush(); err != nil {
		return UserEntry{}, err
	}
	if err := zw.Close(); err != nil {
		return UserEntry{}, err
	}
	g.u.State = idHex([32]byte(h.Sum(nil)))
	if err := fw.Commit(stateName(g.u.State)); err != nil {
		return UserEntry{}, err
	}
	return g.u, nil
}

// messages stores the file literals of an APPLY MESSAGE line that the
// repository does not hold.
func (g *ingest) messages(rd *dlist.Reader) error {
	t, err := rd.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.List {
		return fmt.Errorf("offset %d: expected a list of files, found %v", t.Offset, t.Kind)
	}
	for {
		t, err := rd.Next()
		if err != nil {
			return err
		}
		if t.Kind == dlist.End {
			return nil
		}
		if t.Kind != dlist.File {
			return fmt.Errorf("offset %d: expected a file literal, found %v", t.Offset, t.Kind)
		}
		fi := t.File
		mine, err := g.b.claim(fi.GUID)
		if err != nil {
			return err
		}
		if !mine {
			continue // the body is skipped by the next Next
		}
		if g.pw.size() >= PackTarget {
			if g.pw, err = g.b.rotate(g.pw); err != nil {
				g.b.unclaim(fi.GUID)
				g.pw = nil
				return err
			}
		}
		off, err := g.pw.add(fi.Partition, fi.GUID, fi.Size, rd.Body())
		if err != nil {
			g.b.unclaim(fi.GUID)
			return fmt.Errorf("file %s: %w", fi.GUID, err)
		}
		if err := g.b.stored(fi.GUID, g.pw.slot, off, fi.Size); err != nil {
			return err
		}
	}
}

// mailbox copies an APPLY MAILBOX line into the state, preceded by the
// MBTOOL FILES line naming the files its records refer to that the state
// has not named yet. The line is spooled (in memory up to 1 MiB, in a
// temporary file beyond) while the FILES line is written, so that memory
// stays bounded however large the mailbox.
func (g *ingest) mailbox(rd *dlist.Reader, w *dlist.Writer, raw io.Writer) error {
	g.spool.reset()
	sw := dlist.NewWriter(&g.spool)
	sw.BeginLine("APPLY", "MAILBOX")
	part, filesOpen := "", false
	var size int64
	err := copyValue(rd, sw, func(t *dlist.Token, depth int, key string) error {
		switch {
		case depth == 1 && key == "PARTITION":
			part = string(t.Bytes)
		case depth == 3 && key == "SIZE":
			size, _ = strconv.ParseInt(string(t.Bytes), 10, 64)
		case depth == 3 && key == "GUID" && t.Kind == dlist.Atom:
			id, err := guid.ParseBytes(t.Bytes)
			if err != nil || id.IsNull() {
				return nil
			}
			have, err := g.b.Have(id)
			if err != nil || !have {
				return err // no file: the dump reported it
			}
			added, err := g.named.Add(id, nil)
			if err != nil || !added {
				return err
			}
			if !filesOpen {
				w.BeginLine(Verb, "FILES")
				w.BeginKVList()
				w.Key("PARTITION")
				w.Atom(part)
				w.Key("GUIDS")
				w.BeginList()
				filesOpen = true
			}
			w.GUID(id)
			g.u.Files++
			g.u.Bytes += size
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := sw.EndLine(); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	if filesOpen {
		w.EndList()
		w.EndList()
		if err := w.EndLine(); err != nil {
			return err
		}
	}
	// The spooled line goes into the state as it is.
	if err := w.Flush(); err != nil {
		return err
	}
	if err := g.spool.copyTo(raw); err != nil {
		return err
	}
	g.u.Mailboxes++
	return nil
}

// tempFile makes an unlinked temporary file, on disk where possible.
func tempFile() (*os.File, error) {
	dirs := []string{os.Getenv("TMPDIR"), "/var/tmp", os.TempDir()}
	var err error
	for _, d := range dirs {
		if d == "" {
			continue
		}
		var f *os.File
		if f, err = os.CreateTemp(d, "mbtool-repo-*"); err == nil {
			os.Remove(f.Name())
			return f, nil
		}
	}
	return nil, errors.Join(errors.New("no temporary file"), err)
}

// spill holds bytes in memory up to spillAt, and in an unlinked temporary
// file beyond.
type spill struct {
	buf []byte
	f   *os.File
	bw  *bufio.Writer
}

const spillAt = 1 << 20

func (s *spill) reset() {
	s.buf = s.buf[:0]
	if s.f != nil {
		s.f.Close()
		s.f, s.bw = nil, nil
	}
}

func (s *spill) Write(p []byte) (int, error) {
	if s.f == nil && len(s.buf)+len(p) <= spillAt {
		s.buf = append(s.buf, p...)
		return len(p), nil
	}
	if s.f == nil {
		f, err := tempFile()
		if err != nil {
			return 0, err
		}
		s.f, s.bw = f, bufio.NewWriterSize(f, 64<<10)
		if _, err := s.bw.Write(s.buf); err != nil {
			return 0, err
		}
		s.buf = s.buf[:0]
	}
	return s.bw.Write(p)
}

func (s *spill) copyTo(w io.Writer) error {
	if s.f == nil {
		_, err := w.Write(s.buf)
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, bufio.NewReaderSize(s.f, 64<<10))
	return err
}

func (s *spill) close() { s.reset(); s.buf = nil }
