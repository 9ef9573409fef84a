package partition

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/mbtool/mbtool/cyrusfs"
)

// NewFiles is a batch of files that a writer creates where none exists
// yet (a user's first seen db, subscription file or quota root), made
// durable with a constant number of flushes for the whole batch rather
// than an fsync of each file and of its directory:
//
//  1. each file is written complete without a name (cyrusfs.NewFile:
//     owner and mode set on the descriptor first) in its final
//     directory, made if missing without an fsync of its parents
//     (cyrusfs.Tree.MkdirAllUnsynced);
//  2. Commit flushes each file system once (syncfs): the contents and
//     the new directories are durable before any file has its name;
//  3. then gives each file its name, never over an existing one;
//  4. then flushes each file system once more, so that every name is
//     durable before Commit returns (and the run reports it written).
//
// A kill at any point leaves each file either missing or whole. A file
// whose name was taken meanwhile (a Cyrus process created it between the
// check and the link) is written again by its writer's own transaction
// on the existing file (the redo given to add), after the batch.
//
// A batch holds a descriptor per file and what each redo needs: it is
// bounded (MaxNewFiles files, MaxNewFileBytes of redo data), and its
// writers commit it when it is full. A nil *NewFiles is no batch: the
// writers then write and fsync each file at once, as they always did.
// It is not safe for concurrent use: writers on other goroutines write
// into parts of it (Part), which its own goroutine joins to it in order.
type NewFiles struct {
	pending []newFile
	paths   map[string]bool
	held    int
	syncfs  func(fd int) error
	// part: a batch of Part, which only gathers its files for Join.
	part bool
	// Step, if set, is called at each point of Commit where a kill must
	// leave every file missing or whole: after the first flush, after
	// each name given, after the second flush (a restore's crash
	// points, for its tests).
	Step func()
}

// Bounds of a NewFiles batch: its files, each holding two descriptors
// (the file and its directory), 512 in all, well below the usual limit
// of 1,024 with the run's own; and the records its redos keep
// (syncrec.MaxHeld: one user's seen records flushed at once).
const (
	MaxNewFiles     = 256
	MaxNewFileBytes = 8 << 20
)

type newFile struct {
	d    *cyrusfs.Dir
	nf   *cyrusfs.NewFile
	path string
	held int
	redo func() error
}

// NewFileBatch returns an empty batch that flushes a file system with
// syncfs (unix.Syncfs if nil: another function for the tests that count
// or fail the flushes).
func NewFileBatch(syncfs func(fd int) error) *NewFiles {
	if syncfs == nil {
		syncfs = unix.Syncfs
	}
	return &NewFiles{paths: make(map[string]bool), syncfs: syncfs}
}

// Part returns an empty part of b, for a writer that runs on another
// goroutine than b's (a restore writes the seen dbs of several users at
// once): the files written into the part (each whole, without a name)
// are only gathered there, and b's goroutine adds them to b with Join,
// in the order it chooses, as if they had been written into b at that
// point. A part never commits, links or flushes anything, nor calls a
// redo, and it does not know what b holds: b's goroutine must commit b
// before it gives a writer a part for a path b holds (Pending), as the
// writers do themselves with b. A part is not safe for concurrent use
// either: one writer at a time. A nil b has a nil part (no batch).
func (b *NewFiles) Part() *NewFiles {
	if b == nil {
		return nil
	}
	return &NewFiles{paths: make(map[string]bool), syncfs: b.syncfs, part: true}
}

// Join adds the files of part (of Part) to b, in the order they were
// written into it, as add does each (b is committed when full), and
// empties part. On an error the files not added are dropped.
func (b *NewFiles) Join(part *NewFiles) error {
	if b == nil || part == nil {
		return nil
	}
	pending := part.pending
	part.pending, part.held = nil, 0
	clear(part.paths)
	for i, f := range pending {
		if err := b.add(f.d, f.nf, f.path, f.held, f.redo); err != nil {
			dropFiles(pending[i+1:])
			return err
		}
	}
	return nil
}

// Drop empties a part (or a batch) without naming its files: they are
// closed, and what has no name is gone. For a part that is not joined
// (its writer's job dropped after another's error).
func (b *NewFiles) Drop() {
	if b == nil {
		return
	}
	pending := b.pending
	b.pending, b.held = nil, 0
	clear(b.paths)
	dropFiles(pending)
}

// Len returns how many files b holds.
func (b *NewFiles) Len() int {
	if b == nil {
		return 0
	}
	return len(b.pending)
}

// dropFiles closes files not given their names.
func dropFiles(files []newFile) {
	for _, f := range files {
		if f.nf != nil {
			f.nf.Abort()
		}
		f.d.Close()
	}
}

// Pending reports whether a file of the batch is to be named path: a
// writer of path commits the batch first, so that it works on that file.
func (b *NewFiles) Pending(path string) bool {
	return b != nil && b.paths[path]
}

// CommitIfPending commits the batch if it holds the file to be named
// path: the writers of a file call it first, so that they work on that
// file and not beside it.
func (b *NewFiles) CommitIfPending(path string) error {
	if b.Pending(path) {
		return b.Commit()
	}
	return nil
}

// add takes nf, written whole in d (which the batch now owns, and
// closes), to be named path by Commit; redo, holding held bytes, writes
// it again if the name is taken by then. It commits the batch when full.
//
// A file with a temporary name (a file system without O_TMPFILE) is not
// kept: that name is seen by whoever lists the directory (Cyrus takes
// every name in a quota directory for a quota root) and stays if the run
// is killed, so it lives for the moment of an fsync, as before batches.
// The file is flushed, named, and then its name and the directories made
// for it with one flush of the file system.
func (b *NewFiles) add(d *cyrusfs.Dir, nf *cyrusfs.NewFile, path string, held int, redo func() error) error {
	if !nf.Unnamed() {
		// At once, in a part (on its writer's goroutine) as in the batch:
		// a temporary name must not wait for the part to be joined.
		defer d.Close()
		if err := nf.File().Sync(); err != nil {
			nf.Abort()
			return fmt.Errorf("fsync %s: %w", path, err)
		}
		if err := nf.Link(false); errors.Is(err, fs.ErrExist) {
			return redo()
		} else if err != nil {
			return err
		}
		if err := b.syncfs(d.Fd()); err != nil {
			return fmt.Errorf("syncfs %s: %w", d.Path(), err)
		}
		return nil
	}
	b.pending = append(b.pending, newFile{d: d, nf: nf, path: path, held: held, redo: redo})
	b.paths[path] = true
	b.held += held
	if b.part {
		return nil // gathered as it is, for Join (which adds it to the batch)
	}
	if len(b.pending) >= MaxNewFiles || b.held >= MaxNewFileBytes {
		return b.Commit()
	}
	return nil
}

// Commit makes every file of the batch durable and visible as NewFiles
// describes, and empties the batch. On an error the files not named yet
// are dropped; those named stay (each whole).
func (b *NewFiles) Commit() error {
	if b == nil || len(b.pending) == 0 {
		return nil
	}
	if b.part {
		return errors.New("partition: a part of a batch of new files is committed by joining it to the batch")
	}
	pending := b.pending
	b.pending, b.held = nil, 0
	clear(b.paths)
	defer dropFiles(pending)
	step := func() {
		if b.Step != nil {
			b.Step()
		}
	}
	if err := b.flush(pending); err != nil {
		return err
	}
	step()
	var redo []func() error
	for i := range pending {
		p := &pending[i]
		nf := p.nf
		p.nf = nil // Link closes or drops it
		err := nf.Link(false)
		if errors.Is(err, fs.ErrExist) {
			redo = append(redo, p.redo)
		} else if err != nil {
			return err
		}
		step()
	}
	if err := b.flush(pending); err != nil {
		return err
	}
	step()
	for _, fn := range redo {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

// flush calls syncfs once for each file system the batch's directories
// are on.
func (b *NewFiles) flush(pending []newFile) error {
	done := make(map[uint64]bool, 2)
	for _, p := range pending {
		st, err := p.d.Stat()
		if err != nil {
			return err
		}
		if done[st.Dev] {
			continue
		}
		done[st.Dev] = true
		if err := b.syncfs(p.d.Fd()); err != nil {
			return fmt.Errorf("syncfs %s: %w", p.d.Path(), err)
		}
	}
	return nil
}
