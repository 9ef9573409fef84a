package repo

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
)

// Backup is one run adding a snapshot: users are ingested (one at a time
// or several at once), then Commit writes the run's index file and its
// snapshot. Until Commit nothing the run wrote is referenced.
type Backup struct {
	r   *Repo
	idx *Index
	// Guard, if set, is called just before the snapshot is written; an
	// error stops the run there (repodump checks its lock: Lock.Check).
	Guard func() error

	mu       sync.Mutex
	added    *guidtable.Table // GUIDs this run stored: pack slot, offset, size
	recent   recentSet        // GUIDs lately found in the index, so that dump's question and the state's cost one lookup
	inflight map[guid.GUID]bool
	packs    []PackID // by slot; zero until the pack is committed
	free     []*slotWriter
	users    []UserEntry
	skipped  []dumpfile.Skip
	newFiles int64
	newBytes int64
	indexVer int

	prevOnce   sync.Once
	prevStates map[string]string // each user's state in the latest snapshot holding it
	prevErr    error
}

type slotWriter struct {
	*packWriter
	slot uint32
}

const addedValue = 4 + 8 + 8

// tableMem bounds the memory of each GUID table of a run (the rest of
// each table is in temporary files): a dump holds several of them at once
// (dump's own, the run's, each job's), within mbtool's 64 MiB.
const tableMem = 1 << 20

// NewBackup starts a run; idx is the repository's index, loaded after
// the lock was taken.
func (r *Repo) NewBackup(idx *Index) *Backup {
	return &Backup{r: r, idx: idx, added: guidtable.New(guidtable.Options{ValueSize: addedValue, MemLimit: tableMem}),
		inflight: map[guid.GUID]bool{}}
}

// Have reports whether the repository or this run holds g's file already
// (or another user of this run is storing it now).
func (b *Backup) Have(g guid.GUID) (bool, error) {
	b.mu.Lock()
	if b.inflight[g] {
		b.mu.Unlock()
		return true, nil
	}
	ok := b.recent.has(g)
	var err error
	if !ok {
		ok, err = b.added.Has(g)
	}
	b.mu.Unlock()
	if err != nil || ok {
		return ok, err
	}
	if _, ok, err = b.idx.Find(g); err != nil || !ok {
		return ok, err
	}
	b.mu.Lock()
	b.recent.add(g)
	b.mu.Unlock()
	return true, nil
}

// recentSet holds the last recentMax GUIDs added, or more, in two
// generations: dump asks about a mailbox's files just before the state
// names them, so the second question is answered from memory.
type recentSet struct {
	young, old map[guid.GUID]struct{}
}

const recentMax = 1 << 16

func (r *recentSet) has(g guid.GUID) bool {
	if _, ok := r.young[g]; ok {
		return true
	}
	_, ok := r.old[g]
	return ok
}

func (r *recentSet) add(g guid.GUID) {
	if r.young == nil || len(r.young) >= recentMax/2 {
		r.old, r.young = r.young, make(map[guid.GUID]struct{}, recentMax/2)
	}
	r.young[g] = struct{}{}
}

// claim reserves g for storing by the caller; false if it is held or
// being stored already.
func (b *Backup) claim(g guid.GUID) (bool, error) {
	have, err := b.Have(g)
	if err != nil || have {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[g] {
		return false, nil
	}
	b.inflight[g] = true
	return true, nil
}

// stored records g as stored at offset of the pack in slot.
func (b *Backup) stored(g guid.GUID, slot uint32, offset, size int64) error {
	var v [addedValue]byte
	binary.BigEndian.PutUint32(v[0:], slot)
	binary.BigEndian.PutUint64(v[4:], uint64(offset))
	binary.BigEndian.PutUint64(v[12:], uint64(size))
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.inflight, g)
	b.newFiles++
	b.newBytes += size
	_, err := b.added.Add(g, v[:])
	return err
}

func (b *Backup) unclaim(g guid.GUID) {
	b.mu.Lock()
	delete(b.inflight, g)
	b.mu.Unlock()
}

// takePack returns a pack writer for one ingest.
func (b *Backup) takePack() (*slotWriter, error) {
	b.mu.Lock()
	if n := len(b.free); n > 0 {
		w := b.free[n-1]
		b.free = b.free[:n-1]
		b.mu.Unlock()
		return w, nil
	}
	b.mu.Unlock()
	return b.newPack()
}

// rotate commits a full pack and returns a new one.
func (b *Backup) rotate(w *slotWriter) (*slotWriter, error) {
	if err := b.commitPack(w); err != nil {
		return nil, err
	}
	return b.newPack()
}

// newPack starts a pack in a new slot.
func (b *Backup) newPack() (*slotWriter, error) {
	b.mu.Lock()
	slot := uint32(len(b.packs))
	b.packs = append(b.packs, PackID{})
	b.mu.Unlock()
	pw, err := newPackWriter(b.r.store)
	if err != nil {
		return nil, err
	}
	return &slotWriter{packWriter: pw, slot: slot}, nil
}

func (b *Backup) commitPack(w *slotWriter) error {
	id, err := w.commit()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.packs[w.slot] = id
	b.mu.Unlock()
	return nil
}

// givePack returns a pack writer after an ingest.
func (b *Backup) givePack(w *slotWriter) {
	b.mu.Lock()
	b.free = append(b.free, w)
	b.mu.Unlock()
}

// addUser records a user's ingested state for the snapshot.
func (b *Backup) addUser(u UserEntry, indexVersion int) {
	b.mu.Lock()
	b.users = append(b.users, u)
	b.indexVer = max(b.indexVer, indexVersion)
	b.mu.Unlock()
}

// Skip records an item of the run that is in no user's state (a user
// gone before its turn): the snapshot keeps it as a standalone dump
// would.
func (b *Backup) Skip(s dumpfile.Skip) {
	b.mu.Lock()
	b.skipped = append(b.skipped, s)
	b.mu.Unlock()
}

// Stats returns what the run added so far.
func (b *Backup) Stats() (newFiles, newBytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.newFiles, b.newBytes
}

// Commit writes the packs still open, the run's index file and the
// snapshot, in that order, and returns the snapshot. A run without users
// writes no snapshot and returns nil.
func (b *Backup) Commit(host, version string, t time.Time) (*Snapshot, error) {
	defer b.added.Close()
	for _, w := range b.free {
		if len(w.entries) == 0 {
			w.abort()
			continue
		}
		if err := b.commitPack(w); err != nil {
			return nil, err
		}
	}
	b.free = nil
	if len(b.users) == 0 {
		return nil, nil
	}
	xw, err := newIndexWriter(b.r.store)
	if err != nil {
		return nil, err
	}
	err = b.added.Sorted(func(g guid.GUID, v []byte) error {
		slot := binary.BigEndian.Uint32(v[0:])
		if int(slot) >= len(b.packs) || b.packs[slot] == (PackID{}) {
			return fmt.Errorf("file %s: its pack was not written", g)
		}
		return xw.add(g, Location{Pack: b.packs[slot], Offset: int64(binary.BigEndian.Uint64(v[4:])),
			Size: int64(binary.BigEndian.Uint64(v[12:]))})
	})
	if err != nil {
		xw.abort()
		return nil, err
	}
	// The index is checked for the lock too: once committed, it tells
	// every later run that its files are stored, so it must not name
	// packs a prune may have removed after this run's lock was lost.
	if b.Guard != nil {
		if err := b.Guard(); err != nil {
			xw.abort()
			return nil, err
		}
	}
	if _, err := xw.commit(); err != nil {
		return nil, err
	}
	if b.Guard != nil {
		if err := b.Guard(); err != nil {
			return nil, err
		}
	}
	s := &Snapshot{Time: t.UTC().Truncate(time.Second), Host: host, Version: version, IndexVersion: b.indexVer,
		NewFiles: b.newFiles, NewBytes: b.newBytes, Users: b.users, Skipped: b.skipped}
	if err := b.r.writeSnapshot(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Abort discards what is open; committed packs and states stay until the
// next prune.
func (b *Backup) Abort() {
	for _, w := range b.free {
		w.abort()
	}
	b.free = nil
	b.added.Close()
}
