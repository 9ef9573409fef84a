package seencleanup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// seenValue formats a seen record's value as Cyrus's seen_write does:
// "%d %ld %u %ld %s" with version 1 (imap/seen_db.c).
func seenValue(s *syncrec.Seen) []byte {
	b := []byte("1 ")
	b = strconv.AppendInt(b, s.LastRead, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(s.LastUID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.LastChange, 10)
	b = append(b, ' ')
	return append(b, s.SeenUIDs...)
}

// toSeen converts a stored record of user's seen database into the APPLY
// SEEN form. It fails with ErrNotUndoable unless replaying that form (as
// ApplyUndo or a Cyrus sync_server does, through seen_write) would store
// the same bytes again.
func toSeen(user string, key, value []byte) (*syncrec.Seen, error) {
	r, err := partition.ParseSeen(key, value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotUndoable, err)
	}
	s := &syncrec.Seen{UserID: user, UniqueID: r.UniqueID, LastRead: r.LastRead,
		LastUID: r.LastUID, LastChange: r.LastChange, SeenUIDs: r.SeenUIDs}
	if s.LastRead < 0 || s.LastChange < 0 || string(seenValue(s)) != string(value) {
		return nil, fmt.Errorf("%w: value %q is not in the form Cyrus writes", ErrNotUndoable, value)
	}
	return s, nil
}

// undoWriter writes the undo file: an mbtool dump holding one APPLY SEEN
// line per record to be removed.
type undoWriter struct {
	path string
	f    *os.File
	dw   *dumpfile.Writer
	n    int
}

// createUndo creates the undo file at path, refusing to overwrite anything
// (ErrUndoExists), and writes the dump header.
func createUndo(path, version string) (*undoWriter, error) {
	// Read and write: the file is read back through this descriptor (see
	// remove), never reopened by name.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrUndoExists)
	}
	if err != nil {
		return nil, fmt.Errorf("creating undo file: %w", err)
	}
	host, _ := os.Hostname()
	dw, err := dumpfile.NewWriter(f, dumpfile.Header{Created: time.Now(), Host: host, Version: version}, dumpfile.Options{})
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("writing undo file %s: %w", path, err)
	}
	return &undoWriter{path: path, f: f, dw: dw}, nil
}

// add writes one record.
func (u *undoWriter) add(s *syncrec.Seen) error {
	if err := syncrec.WriteSeen(u.dw.DL(), s); err != nil {
		return fmt.Errorf("writing undo file %s: %w", u.path, err)
	}
	u.n++
	return nil
}

// finish writes the trailer and makes the file durable: fsync of the file
// and of its directory. The file stays open, to be read back.
func (u *undoWriter) finish() error {
	err := u.dw.Close(dumpfile.Counts{})
	if err == nil {
		err = u.f.Sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(u.path))
	}
	if err != nil {
		return fmt.Errorf("writing undo file %s: %w", u.path, err)
	}
	return nil
}

// syncDir makes the creation of a file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// abort closes and removes an unfinished undo file.
func (u *undoWriter) abort() {
	u.f.Close()
	os.Remove(u.path)
}

// readUndo calls fn for every APPLY SEEN line of the dump in f (named
// path), read from its start, in file order, and checks the dump's trailer
// and digest at the end. Other commands are skipped; their count is
// returned. Checking and applying read the same descriptor, so a file
// swapped in under the name meanwhile is never applied.
func readUndo(f *os.File, path string, fn func(*syncrec.Seen) error) (skipped int, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("undo file %s: %w", path, err)
	}
	d, err := dumpfile.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("undo file %s: %w", path, err)
	}
	defer d.Close()
	for {
		verb, name, off, err := d.Next()
		if err == io.EOF {
			return skipped, nil
		}
		if err != nil {
			return skipped, fmt.Errorf("undo file %s: %w", path, err)
		}
		if verb != "APPLY" || name != "SEEN" {
			skipped++
			continue
		}
		v, err := d.DL().ReadValue()
		if err == nil {
			err = d.EndLine()
		}
		var s *syncrec.Seen
		if err == nil {
			s, err = syncrec.DecodeSeen(v)
		}
		if err != nil {
			return skipped, fmt.Errorf("undo file %s: APPLY SEEN at offset %d: %w", path, off, err)
		}
		if err := fn(s); err != nil {
			return skipped, err
		}
	}
}

// ApplyUndo replays the APPLY SEEN lines of an mbtool dump, such as the
// undo file of a seen cleanup, into the seen databases of spool: each
// record is stored as Cyrus's APPLY SEEN stores it (the value
// "1 LASTREAD LASTUID LASTCHANGE SEENUIDS", replacing any record of that
// mailbox). Other commands in the file are ignored.
//
// The whole file, trailer and BLAKE3 digest included, is checked before any
// database is touched. Each user's records (consecutive lines of one
// USERID) are then written with one atomic rewrite of the user's seen
// database, as Run removes records; a missing database is created. It
// returns the number of records stored; on an error, the users before the
// failing one have been restored.
func ApplyUndo(ctx context.Context, spool *partition.Spool, undoFile string) (int, error) {
	f, err := os.Open(undoFile)
	if err != nil {
		return 0, fmt.Errorf("opening undo file: %w", err)
	}
	defer f.Close()
	if _, err := readUndo(f, undoFile, func(*syncrec.Seen) error { return ctx.Err() }); err != nil {
		return 0, err
	}
	afterUndoCheck()
	total := 0
	var user string
	var batch []change
	index := make(map[string]int) // uniqueid -> position in batch
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		path, err := spool.SeenPath(user)
		if err != nil {
			return fmt.Errorf("seen db of %s: %w", user, err)
		}
		n, err := rewriteSeen(ctx, spool.Config.Tree(), path, spool.Config.SeenDB, batch)
		if err != nil {
			return fmt.Errorf("restoring seen db of %s: %w", user, err)
		}
		total += n
		batch = batch[:0]
		clear(index)
		return nil
	}
	_, err = readUndo(f, undoFile, func(s *syncrec.Seen) error {
		if s.UserID != user {
			if err := flush(); err != nil {
				return err
			}
			user = s.UserID
		}
		if s.UserID == "" || s.UniqueID == "" {
			return fmt.Errorf("undo file %s: APPLY SEEN without USERID or UNIQUEID", undoFile)
		}
		// A later line for the same mailbox wins, as on a sync server.
		if i, ok := index[s.UniqueID]; ok {
			batch[i].value = seenValue(s)
			return nil
		}
		index[s.UniqueID] = len(batch)
		batch = append(batch, change{key: []byte(s.UniqueID), value: seenValue(s)})
		return nil
	})
	if err == nil {
		err = flush()
	}
	return total, err
}

// testHookAfterUndoCheck, set by tests only, runs between checking an undo
// file and applying it.
var testHookAfterUndoCheck func()

func afterUndoCheck() {
	if testHookAfterUndoCheck != nil {
		testHookAfterUndoCheck()
	}
}
