package seencleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
)

// twoskipMagic starts every twoskip file (docs/cyrus/files.md §5).
var twoskipMagic = []byte("\xa1\x02\x8b\x0dtwoskip file\x00")

// change is one edit of a seen database. A deletion (value nil) removes key
// only if its current value is want, so that a record Cyrus rewrote after it
// was planned is left alone; a set (value non-nil) stores value whatever was
// there, as APPLY SEEN does.
type change struct {
	key   []byte
	want  []byte // deletions: the value the record must still have
	value []byte // nil: delete
	// Result, filled in by rewriteSeen.
	applied bool
	found   []byte // the value found for a deletion that was not applied; nil if absent
}

// rewriteSeen applies changes to the seen database at path by writing a
// complete new file and renaming it over the old one, under the database's
// exclusive lock (docs/cyrus/locks.md §7): open O_RDWR, OFD write lock with Cyrus's
// reopen-on-replace loop, read through the locked descriptor, write
// <path>.NEW (twoskip: generation+1), fsync, give it the old file's owner
// and mode, rename, fsync the directory, and only then release the lock, so
// that a Cyrus process waiting for the lock reopens the new file.
//
// backend is the configured seenstate_db; a file that starts with the
// twoskip magic is read and written as twoskip whatever it says, as Cyrus's
// open with auto-convert would. A missing file is an empty database; it is
// created only if some change sets a record. A damaged database is left
// untouched and the error wraps cyrusdb.ErrCorrupt. It returns how many
// changes were applied; each change's applied and found fields tell which.
func rewriteSeen(ctx context.Context, tree *cyrusfs.Tree, path, backend string, changes []change) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if backend != "twoskip" && backend != "flat" {
		return 0, fmt.Errorf("seen db %s: seenstate_db %s is not supported (twoskip or flat)", path, backend)
	}
	slices.SortFunc(changes, func(a, b change) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(changes); i++ {
		if bytes.Equal(changes[i-1].key, changes[i].key) {
			return 0, fmt.Errorf("seen db %s: two changes of key %q", path, changes[i].key)
		}
	}
	sets := false
	for _, c := range changes {
		sets = sets || c.value != nil
	}
	if sets {
		if err := tree.Ensure(path, cyrusfs.Inherit); err != nil {
			return 0, fmt.Errorf("creating seen db %s: %w", path, err)
		}
	}
	f, err := tree.OpenLocked(ctx, path, os.O_RDWR, true)
	if errors.Is(err, fs.ErrNotExist) && !sets {
		return 0, nil // nothing to delete from a database that does not exist
	}
	if err != nil {
		return 0, fmt.Errorf("locking seen db %s: %w", path, err)
	}
	defer f.Close() // closing the descriptor releases its OFD lock
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("seen db %s: %w", path, err)
	}
	var head [20]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("reading seen db %s: %w", path, err)
	}
	if bytes.HasPrefix(head[:n], twoskipMagic) || fi.Size() == 0 && backend == "twoskip" {
		return rewriteTwoskip(tree, path, f, fi, changes)
	}
	if backend == "twoskip" {
		return 0, &cyrusdb.CorruptError{Path: path, Offset: 0, Reason: "not a twoskip file (bad magic)"}
	}
	return rewriteFlat(tree, path, f, fi, changes)
}

// rewriteTwoskip merges changes into the locked twoskip file f.
func rewriteTwoskip(tree *cyrusfs.Tree, path string, f *os.File, fi os.FileInfo, changes []change) (int, error) {
	db, err := cyrusdb.ReadTwoskip(path, f, fi.Size())
	if err != nil {
		return 0, fmt.Errorf("reading seen db: %w", err)
	}
	if !db.Clean() {
		// Cyrus recovers such a file under this same lock on its next
		// access; rewriting it from its committed state would be equivalent,
		// but this tool only rewrites files Cyrus considers sound.
		return 0, fmt.Errorf("seen db %s: %w", path, ErrDirty)
	}
	if err := db.Check(); err != nil {
		return 0, fmt.Errorf("checking seen db: %w", err)
	}
	applied, err := dryMerge(changes, db.ForEach)
	if err != nil || applied == 0 {
		return 0, err
	}
	write := func(w io.WriterAt) error {
		tw := cyrusdb.NewTwoskipWriter(w, db.Generation()+1)
		_, err := merge(changes, db.ForEach, tw.Add)
		if cerr := tw.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if fi.Size() == 0 {
		// A zero-length file is a database nobody has initialised yet;
		// Cyrus initialises it in place under the write lock, and a Cyrus
		// process that opened it waits for this lock on this inode.
		if err := write(f); err != nil {
			return 0, fmt.Errorf("writing seen db %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("writing seen db %s: %w", path, err)
		}
		return applied, nil
	}
	if err := replace(tree, path, fi, write); err != nil {
		return 0, err
	}
	return applied, nil
}

// rewriteFlat merges changes into the locked flat file f. Flat databases
// are small text files that Cyrus itself rewrites whole; they are read into
// memory.
func rewriteFlat(tree *cyrusfs.Tree, path string, f *os.File, fi os.FileInfo, changes []change) (int, error) {
	var recs [][2][]byte
	err := cyrusdb.ReadFlat(path, io.NewSectionReader(f, 0, fi.Size()), func(k, v []byte) error {
		recs = append(recs, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading seen db: %w", err)
	}
	// Flat files are in Cyrus's mailbox order, not byte order; merge wants
	// byte order.
	slices.SortFunc(recs, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	each := func(_ []byte, fn func(k, v []byte) error) error {
		for _, r := range recs {
			if err := fn(r[0], r[1]); err != nil {
				return err
			}
		}
		return nil
	}
	applied, err := dryMerge(changes, each)
	if err != nil || applied == 0 {
		return 0, err
	}
	var out [][2][]byte
	if _, err := merge(changes, each, func(k, v []byte) error {
		out = append(out, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
		return nil
	}); err != nil {
		return 0, err
	}
	err = replace(tree, path, fi, func(w io.WriterAt) error {
		return cyrusdb.WriteFlat(io.NewOffsetWriter(w, 0), out)
	})
	if err != nil {
		return 0, err
	}
	return applied, nil
}

// dryMerge runs merge without output, filling in the changes' results, and
// returns how many would apply.
func dryMerge(changes []change, each func([]byte, func(k, v []byte) error) error) (int, error) {
	return merge(changes, each, func(_, _ []byte) error { return nil })
}

// merge walks the records each yields in byte order together with the
// sorted changes and passes the resulting records, in order, to out.
func merge(changes []change, each func([]byte, func(k, v []byte) error) error, out func(k, v []byte) error) (int, error) {
	for i := range changes {
		changes[i].applied, changes[i].found = false, nil
	}
	applied, i := 0, 0
	// flush emits the sets whose keys sort before key (all, if key is nil).
	flush := func(key []byte) error {
		for ; i < len(changes) && (key == nil || bytes.Compare(changes[i].key, key) < 0); i++ {
			if c := &changes[i]; c.value != nil {
				c.applied = true
				applied++
				if err := out(c.key, c.value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := each(nil, func(k, v []byte) error {
		if err := flush(k); err != nil {
			return err
		}
		if i < len(changes) && bytes.Equal(changes[i].key, k) {
			c := &changes[i]
			i++
			switch {
			case c.value != nil:
				c.applied = true
				applied++
				return out(k, c.value)
			case bytes.Equal(v, c.want):
				c.applied = true
				applied++
				return nil
			default:
				c.found = bytes.Clone(v)
			}
		}
		return out(k, v)
	})
	if err != nil {
		return 0, err
	}
	if err := flush(nil); err != nil {
		return 0, err
	}
	return applied, nil
}

// replace writes a new file with write, owned like the old one (fi) and
// with its mode, and puts it in the place of path: <path>.NEW (a leftover
// of that name, or a symlink planted there, is removed, never followed),
// fsync, rename, fsync of the directory (package cyrusfs). The caller holds
// the lock on the old file throughout.
func replace(tree *cyrusfs.Tree, path string, fi os.FileInfo, write func(io.WriterAt) error) error {
	o := cyrusfs.Owner{UID: -1, GID: -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		o = cyrusfs.Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	err := tree.Replace(path, o, fi.Mode().Perm(), func(f *os.File) error {
		if err := write(f); err != nil {
			return fmt.Errorf("writing %s.NEW: %w", path, err)
		}
		return nil
	})
	return err
}
