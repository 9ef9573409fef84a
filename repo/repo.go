// Package repo is mbtool's backup repository: nightly dumps of many users
// stored so that each message file is kept once, however many users,
// mailboxes and nights refer to it, and any user's state of any night can
// be written out again as an ordinary standalone dump.
//
// A repository is made of dlist, like the dumps themselves (see
// docs/format.md, "Repository"):
//
//	config                     MBTOOL REPOSITORY %(FORMAT 1 ID ... CREATED ...)
//	packs/xx/<blake3>          APPLY MESSAGE lines of file literals
//	index/<blake3>             GUID -> pack, offset, size, sorted by GUID
//	states/xx/<blake3>         one user's dump without its file literals (zstd)
//	snapshots/<blake3>         a run: time, host, and each user's state
//	locks/<random>             who is using the repository
//
// Every file but config and the locks is immutable and named by the
// BLAKE3 digest of its bytes (a state: of its text before compression). A run writes packs, then states, then its
// index file, and its snapshot last: the snapshot is the commit, so a run
// killed at any point leaves only files that no snapshot refers to, which
// the next prune removes. Only prune deletes, under an exclusive lock.
package repo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
)

// FormatVersion is the repository format this package writes and reads:
// its layout, config and packs.
const FormatVersion = 1

// SnapshotFormat is the format of the snapshots and states this package
// writes; it reads this one and every earlier one. Format 2 added the
// SKIPPED lines and counts.
const SnapshotFormat = 2

// Verb is the dlist verb of mbtool's own lines in repository files.
const Verb = "MBTOOL"

// ErrNotRepo is returned when a directory is not an mbtool repository.
var ErrNotRepo = errors.New("not an mbtool repository")

// Repo is an open repository.
type Repo struct {
	store   Store
	ID      string
	Created time.Time
}

// Open opens the repository in store.
func Open(store Store) (*Repo, error) {
	f, err := store.Open("config")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
		return nil, fmt.Errorf("%s: %w (no config file)", store.Location(), ErrNotRepo)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, min(f.Size(), 4096)))
	if err != nil {
		return nil, err
	}
	line, err := dlist.NewReader(bytes.NewReader(b)).ReadLine()
	if err != nil || line.Verb != Verb || line.Value == nil || line.Value.Key != "REPOSITORY" {
		return nil, fmt.Errorf("%s/config: %w", store.Location(), ErrNotRepo)
	}
	v := line.Value
	fv, err := v.Get("FORMAT").Num32()
	if err != nil || fv == 0 {
		return nil, fmt.Errorf("%s/config: %w: bad FORMAT", store.Location(), ErrNotRepo)
	}
	if fv > FormatVersion {
		return nil, fmt.Errorf("%s: repository format %d, this mbtool reads format %d", store.Location(), fv, FormatVersion)
	}
	r := &Repo{store: store, ID: v.Get("ID").String()}
	if c, err := v.Get("CREATED").Date(); err == nil {
		r.Created = time.Unix(c, 0).UTC()
	}
	return r, nil
}

// Init creates a repository in store, which must not hold one.
func Init(store Store, now time.Time) (*Repo, error) {
	id := randomName()
	var buf bytes.Buffer
	w := dlist.NewWriter(&buf)
	w.BeginLine(Verb, "REPOSITORY")
	w.BeginKVList()
	w.Key("FORMAT")
	w.Num(FormatVersion)
	w.Key("ID")
	w.Atom(id)
	w.Key("CREATED")
	w.Num(uint64(now.Unix()))
	w.EndList()
	w.EndLine()
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := store.PutExclusive("config", buf.Bytes()); err != nil {
		return nil, fmt.Errorf("creating repository in %s: %w", store.Location(), err)
	}
	return &Repo{store: store, ID: id, Created: now.UTC()}, nil
}

// OpenDir opens the repository in directory dir; with create, it makes
// one there if dir does not exist or is empty.
func OpenDirRepo(dir string, create bool) (*Repo, error) {
	s := OpenDir(dir)
	r, err := Open(s)
	if err == nil || !create || !errors.Is(err, ErrNotRepo) {
		return r, err
	}
	ents, rerr := os.ReadDir(dir)
	if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return nil, rerr
	}
	for _, e := range ents {
		// A config being written by a run killed while it made the
		// repository is not content: remove it and make the repository.
		if strings.HasPrefix(e.Name(), "config.tmp-") && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("%s: %w, and not empty: refusing to make one there", dir, ErrNotRepo)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return Init(s, time.Now())
}

// Store returns the repository's store.
func (r *Repo) Store() Store { return r.store }

// ID names of content-addressed files.
func idHex(sum [32]byte) string { return hex.EncodeToString(sum[:]) }

func packName(id string) string     { return "packs/" + id[:2] + "/" + id }
func stateName(id string) string    { return "states/" + id[:2] + "/" + id }
func indexName(id string) string    { return "index/" + id }
func snapshotName(id string) string { return "snapshots/" + id }

// parseID checks a 64-hex-digit file name.
func parseID(s string) (string, bool) {
	if len(s) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", false
	}
	return s, true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
