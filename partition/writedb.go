package partition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
)

// Owner is the user and group that files written into a Cyrus spool get.
// A negative UID leaves files to the user running mbtool.
type Owner = cyrusfs.Owner

// CyrusOwner returns the owner Cyrus's files have: the user "cyrus" and its
// primary group (mail on Debian) when running as root and that user
// exists, else the current user (UID -1).
func CyrusOwner() Owner {
	if os.Geteuid() != 0 {
		return Owner{UID: -1, GID: -1}
	}
	u, err := user.Lookup("cyrus")
	if err != nil {
		return Owner{UID: -1, GID: -1}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return Owner{UID: -1, GID: -1}
	}
	return Owner{UID: uid, GID: gid}
}

// Tree returns the directories Cyrus's files live in, as the one writer
// of those files (package cyrusfs) resolves paths: every partition,
// metapartition and archive partition, the configuration directory, the
// lock directory and the directories of the databases.
func (c *Config) Tree() *cyrusfs.Tree {
	roots := []string{c.ConfigDir, c.LockPath, filepath.Dir(c.MboxlistPath),
		filepath.Dir(c.AnnotationPath), filepath.Dir(c.QuotaPath)}
	for _, m := range []map[string]string{c.Partitions, c.MetaPartitions, c.ArchivePartitions} {
		for _, r := range m {
			roots = append(roots, r)
		}
	}
	return cyrusfs.NewTree(roots...)
}

// TwoskipTx collects changes to one twoskip database for UpdateTwoskip.
// Get sees the committed state with the changes made so far.
type TwoskipTx struct {
	db      *cyrusdb.Twoskip
	changes map[string][]byte // nil value: delete
	// file is the file db was read from, stat'd under the exclusive
	// lock (nil for a file not written yet: newTwoskip).
	file os.FileInfo
}

// Get returns the value of key and whether it exists.
func (t *TwoskipTx) Get(key []byte) ([]byte, bool, error) {
	if v, ok := t.changes[string(key)]; ok {
		return v, v != nil, nil
	}
	return t.db.Get(key)
}

// Set sets key to value (which is copied).
func (t *TwoskipTx) Set(key, value []byte) {
	t.changes[string(key)] = append(make([]byte, 0, len(value)), value...)
}

// Delete removes key.
func (t *TwoskipTx) Delete(key []byte) { t.changes[string(key)] = nil }

// Check checks the whole committed state, every record and pointer
// (cyrusdb.Twoskip.Check), for a writer that changes nothing in a
// database with damage anywhere.
func (t *TwoskipTx) Check() error { return t.db.Check() }

// ForEach calls fn for every committed record whose key starts with
// prefix, ignoring the transaction's own changes.
func (t *TwoskipTx) ForEach(prefix []byte, fn func(key, value []byte) error) error {
	return t.db.ForEach(prefix, fn)
}

// UpdateTwoskip changes the twoskip database at path as one transaction,
// live-safe while Cyrus runs (docs/cyrus/locks.md §6): exclusive OFD lock on the
// live file with the reopen-on-replace loop; a file a killed writer left
// unclean is recovered first, as Cyrus does when it takes the write lock;
// fn checks and changes the committed state under the lock; the changes
// are then made in place as Cyrus's own twoskip writer makes them
// (cyrusdb.TwoskipTxn: O(log n) per change, however large the file), and
// when the file has grown to more than twice its size after the last
// checkpoint it is rewritten whole by rename, as Cyrus's checkpoint does
// (writeCheckpoint), which keeps the total cost of n changes O(n log n).
// The lock is released only after all of it. A missing file is an error
// unless create is set: then fn sees an empty database and the file is
// written whole (newTwoskip), 0600, owned by owner, its directories too,
// unless fn changes nothing. If fn returns an error, or changes nothing, the
// file is left alone. fn may be called twice: again on the file another
// writer created meanwhile.
func (s *Spool) UpdateTwoskip(path string, create bool, owner Owner, fn func(tx *TwoskipTx) error) error {
	return UpdateTwoskipFile(context.Background(), s.tree(), path, create, owner, fn)
}

// UpdateTwoskipFile is UpdateTwoskip of the twoskip file at path beneath
// the roots of tree, waiting for its lock until ctx is done: the one
// writer of twoskip databases, for restore and seen-cleanup alike.
func UpdateTwoskipFile(ctx context.Context, tree *cyrusfs.Tree, path string, create bool, owner Owner, fn func(tx *TwoskipTx) error) error {
	return updateTwoskipIn(ctx, nil, tree, path, create, owner, fn, 0)
}

// updateTwoskipIn is UpdateTwoskipFile that, with a batch, leaves a new
// file to it (newTwoskip): held is what fn keeps alive, in bytes, should
// the batch have to call it again. With a batch, fn may be called after
// updateTwoskipIn returned (from batch.Commit), on the file another
// writer created meanwhile.
func updateTwoskipIn(ctx context.Context, batch *NewFiles, tree *cyrusfs.Tree, path string, create bool, owner Owner, fn func(tx *TwoskipTx) error, held int) error {
	if err := batch.CommitIfPending(path); err != nil {
		return err
	}
	if create {
		var redo func() error
		if batch != nil {
			redo = func() error { return updateTwoskipIn(ctx, nil, tree, path, create, owner, fn, 0) }
		}
		done, err := newTwoskip(tree, path, owner, fn, batch, held, redo)
		if done || err != nil {
			return err
		}
		if err := tree.Ensure(path, owner); err != nil {
			return err
		}
	}
	f, err := tree.OpenLocked(ctx, path, os.O_RDWR, true)
	if err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer f.Close() // after the commit or rename: closing drops the lock
	if _, err := cyrusdb.Recover(path, f); err != nil {
		return fmt.Errorf("recovering %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	db, err := cyrusdb.ReadTwoskip(path, f, fi.Size())
	if err != nil {
		return err
	}
	tx := &TwoskipTx{db: db, changes: make(map[string][]byte), file: fi}
	if err := fn(tx); err != nil || len(tx.changes) == 0 {
		db.DropPages()
		return err
	}
	keys := make([]string, 0, len(tx.changes))
	for k := range tx.changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// From the state fn checked, with the pages its lookups read.
	txn, err := cyrusdb.BeginTwoskipView(db, f)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if v := tx.changes[k]; v == nil {
			err = txn.Delete([]byte(k))
		} else {
			err = txn.Set([]byte(k), v)
		}
		if err != nil {
			if aerr := txn.Abort(); aerr != nil {
				err = fmt.Errorf("%w (and undoing the transaction: %v)", err, aerr)
			}
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if !txn.NeedsCheckpoint() {
		return nil
	}
	return writeCheckpoint(tree, path, f)
}

// newTwoskip writes the twoskip file at path whole when it does not exist
// (a new user's seen db, the first annotation): fn changes an empty
// database, the records are written in key order to a file without a name
// (O_TMPFILE, or an O_EXCL temporary name), checked whole and fsynced, and
// the file gets its name only if that is still free, then the directory is
// fsynced. Nobody can see the file before it is whole, so it needs no lock
// and no transaction: two fsyncs, where the empty file and the transaction
// in place take four (header, DIRTY header, records, clean header), each a
// journal commit on a journaled file system. It reports done = false, with
// nothing written, when the file exists (or appeared meanwhile: fn is then
// called again on it by the caller), or a symlink is there (the caller
// refuses it). With a batch, the file is left to it unsynced and without
// its name (NewFiles: batch.Commit flushes and names it, or calls redo
// should the name be taken by then), and so are its new directories.
func newTwoskip(tree *cyrusfs.Tree, path string, owner Owner, fn func(tx *TwoskipTx) error,
	batch *NewFiles, held int, redo func() error) (done bool, err error) {
	dir, name := filepath.Split(filepath.Clean(path))
	mkdir := tree.MkdirAll
	if batch != nil {
		mkdir = tree.MkdirAllUnsynced
	}
	d, err := mkdir(dir, owner)
	if err != nil {
		return false, err
	}
	defer func() {
		if d != nil {
			d.Close()
		}
	}()
	if _, err := d.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	empty, err := cyrusdb.ReadTwoskip(path, bytes.NewReader(nil), 0)
	if err != nil {
		return false, err
	}
	tx := &TwoskipTx{db: empty, changes: make(map[string][]byte)}
	if err := fn(tx); err != nil {
		return false, err
	}
	keys := make([]string, 0, len(tx.changes))
	for k, v := range tx.changes {
		if v != nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return true, nil // nothing to write: the file is left missing
	}
	sort.Strings(keys)
	nf, err := d.NewFile(name, owner, 0o600)
	if err != nil {
		return false, err
	}
	i := 0
	err = cyrusdb.WriteTwoskip(nf.File(), 1, func() ([]byte, []byte, bool) {
		if i == len(keys) {
			return nil, nil, false
		}
		i++
		return []byte(keys[i-1]), tx.changes[keys[i-1]], true
	})
	if err == nil {
		err = verifyTwoskip(path, nf.File())
	}
	if err == nil && batch != nil {
		bd := d
		d = nil // the batch closes it
		return true, batch.add(bd, nf, path, held, redo)
	}
	if err == nil {
		err = nf.File().Sync()
	}
	if err != nil {
		nf.Abort()
		return false, err // names the file (nf.File's name is path)
	}
	if err := nf.Link(false); errors.Is(err, fs.ErrExist) {
		return false, nil // created meanwhile: a transaction on it
	} else if err != nil {
		return false, err
	}
	if err := d.Sync(); err != nil {
		return false, err
	}
	return true, nil
}

// writeCheckpoint rewrites the twoskip file at path, which f holds locked
// exclusively, as Cyrus's checkpoint does: a fresh file <path>.NEW with
// generation+1 holding the committed records in key order, checked whole,
// fsynced, given the old file's owner and mode, renamed into place, and the
// directory fsynced.
func writeCheckpoint(tree *cyrusfs.Tree, path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	db, err := cyrusdb.ReadTwoskip(path, f, fi.Size())
	if err != nil {
		return err
	}
	return tree.Replace(path, ownerOf(fi), fi.Mode().Perm(), func(nf *os.File) error {
		if err := writeCopy(nf, db); err != nil {
			return fmt.Errorf("writing %s.NEW: %w", path, err)
		}
		return verifyTwoskip(path+".NEW", nf)
	})
}

// writeCopy writes the committed records of db, in key order, as a fresh
// file with the next generation.
func writeCopy(nf *os.File, db *cyrusdb.Twoskip) error {
	tw := cyrusdb.NewTwoskipWriter(nf, db.Generation()+1)
	if err := db.ForEach(nil, tw.Add); err != nil {
		return err
	}
	return tw.Close()
}

// verifyTwoskip reads a freshly written file back and checks it whole.
func verifyTwoskip(name string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	db, err := cyrusdb.ReadTwoskip(name, f, fi.Size())
	if err != nil {
		return fmt.Errorf("verifying %s: %w", name, err)
	}
	if err := db.Check(); err != nil {
		return fmt.Errorf("verifying %s: %w", name, err)
	}
	return nil
}

// ownerOf returns the owner of the file a new one replaces: the file keeps
// it, as Cyrus's own rewrites (running as that owner) keep it. Not running
// as root, the new file stays the running user's.
func ownerOf(old fs.FileInfo) Owner {
	if st, ok := old.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		return Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return Owner{UID: -1, GID: -1}
}

// ReadTwoskipFile opens the twoskip file at path under its shared lock and
// calls fn with a lookup function; a missing file is an empty database.
func ReadTwoskipFile(path string, fn func(get func(key []byte) ([]byte, bool, error)) error) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fn(func([]byte) ([]byte, bool, error) { return nil, false, nil })
	}
	db, err := cyrusdb.OpenTwoskip(path)
	if err != nil {
		return err
	}
	err = fn(db.Get)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteTwoskipFile writes a fresh twoskip database holding records (keys
// need not be sorted; duplicates are an error) to path, which must not
// exist, with mode 0600 and the given owner, and fsyncs it. It is for
// files nobody else can see yet, such as the cyrus.annotations of a mailbox
// being built.
func WriteTwoskipFile(path string, owner Owner, records [][2][]byte) error {
	dir, err := cyrusfs.NewTree(filepath.Dir(path)).OpenDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return WriteTwoskipAt(dir, filepath.Base(path), owner, records)
}

// WriteTwoskipAt is WriteTwoskipFile for the file name in dir.
func WriteTwoskipAt(dir *cyrusfs.Dir, name string, owner Owner, records [][2][]byte) error {
	sort.Slice(records, func(i, j int) bool { return bytes.Compare(records[i][0], records[j][0]) < 0 })
	path := dir.Join(name)
	f, err := dir.Create(name, owner, 0o600)
	if err != nil {
		return err
	}
	i := 0
	err = cyrusdb.WriteTwoskip(f, 1, func() ([]byte, []byte, bool) {
		if i == len(records) {
			return nil, nil, false
		}
		i++
		return records[i-1][0], records[i-1][1], true
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		dir.Remove(name)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
