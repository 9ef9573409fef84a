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

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/partition"
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

// rewriteSeen applies changes to the seen database at path through
// partition's one writer of each backend, under the database's exclusive
// lock (docs/cyrus/locks.md §7), waited for until ctx is done: a twoskip
// database is changed in place as one transaction, as Cyrus's own writer
// does (partition.UpdateTwoskipFile, which first recovers a file a killed
// writer left unclean, as Cyrus does under this lock), a flat one is
// rewritten whole by rename (partition.UpdateFlatFile).
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
	twoskip, err := isTwoskip(tree, path, backend)
	if errors.Is(err, fs.ErrNotExist) && !sets {
		return 0, nil // nothing to delete from a database that does not exist
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	// apply makes the changes through get, del and set, filling in their
	// results, and returns how many apply.
	apply := func(get func(k []byte) ([]byte, bool, error), del func(k []byte), set func(k, v []byte)) (int, error) {
		applied := 0
		for i := range changes {
			c := &changes[i]
			c.applied, c.found = false, nil
			if c.value != nil {
				set(c.key, c.value)
				c.applied = true
				applied++
				continue
			}
			v, ok, err := get(c.key)
			switch {
			case err != nil:
				return 0, err
			case ok && bytes.Equal(v, c.want):
				del(c.key)
				c.applied = true
				applied++
			case ok:
				c.found = bytes.Clone(v)
			}
		}
		return applied, nil
	}
	var applied int
	if twoskip {
		err = partition.UpdateTwoskipFile(ctx, tree, path, sets, cyrusfs.Inherit, func(tx *partition.TwoskipTx) error {
			// Damage anywhere leaves the file as it is.
			if err := tx.Check(); err != nil {
				return err
			}
			applied, err = apply(tx.Get, tx.Delete, tx.Set)
			return err
		})
	} else {
		err = partition.UpdateFlatFile(ctx, tree, path, sets, cyrusfs.Inherit, func(recs map[string][]byte) (bool, error) {
			applied, err = apply(func(k []byte) ([]byte, bool, error) {
				v, ok := recs[string(k)]
				return v, ok, nil
			}, func(k []byte) { delete(recs, string(k)) }, func(k, v []byte) { recs[string(k)] = bytes.Clone(v) })
			return applied > 0, err
		})
	}
	if err != nil {
		for i := range changes {
			changes[i].applied = false
		}
		return 0, fmt.Errorf("seen db %s: %w", path, err)
	}
	return applied, nil
}

// isTwoskip tells whether the seen database at path is to be read and
// written as twoskip: it starts with the twoskip magic, or it is empty or
// missing and backend says twoskip. A file backend calls twoskip that does
// not start with the magic is damaged (cyrusdb.ErrCorrupt).
func isTwoskip(tree *cyrusfs.Tree, path, backend string) (bool, error) {
	f, err := tree.Open(path, os.O_RDONLY)
	if err != nil {
		return backend == "twoskip", err
	}
	defer f.Close()
	return sniffTwoskip(f, path, backend)
}

// sniffTwoskip is isTwoskip of the open file f.
func sniffTwoskip(f io.ReaderAt, path, backend string) (bool, error) {
	var head [20]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("reading seen db %s: %w", path, err)
	}
	switch {
	case bytes.HasPrefix(head[:n], twoskipMagic), n == 0 && backend == "twoskip":
		return true, nil
	case backend == "twoskip":
		return false, &cyrusdb.CorruptError{Path: path, Offset: 0, Reason: "not a twoskip file (bad magic)"}
	}
	return false, nil
}
