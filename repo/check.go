package repo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/zeebo/blake3"
)

// chunkEntries is how many index entries the structural check sorts at
// once (about 4 MiB).
const chunkEntries = 64 << 10

// CheckOptions shape Check.
type CheckOptions struct {
	// ReadData reads every pack through: its digest, every file literal
	// re-hashed against its GUID, every index entry found at its place.
	ReadData bool
}

// Finding is one thing wrong with a repository.
type Finding struct {
	File string // the repository file, e.g. "packs/3f/3fa4..."
	Err  error
}

func (f Finding) String() string { return f.File + ": " + f.Err.Error() }

// CheckSummary is what Check looked at.
type CheckSummary struct {
	Snapshots, States, IndexFiles, Packs int
	Entries                              int64 // index entries
	Files                                int64 // distinct files the snapshots refer to
	BytesRead                            int64 // with ReadData: pack bytes read
	// Skipped counts the items the snapshots record as left out when
	// they were taken (MBTOOL SKIPPED lines): not damage, but what was
	// never in the repository.
	Skipped  int64
	Findings []Finding
	// Unreferenced packs and states are left by interrupted runs; they
	// are not damage, and the next prune removes them.
	UnreferencedPacks, UnreferencedStates int
}

// Check verifies the repository: every snapshot and state whole and
// hashing to its name, every file a snapshot refers to in the index, every
// index entry pointing at that file's literal in an existing pack; with
// ReadData, every pack byte. It changes nothing and takes no lock.
func (r *Repo) Check(ctx context.Context, opts CheckOptions) (*CheckSummary, error) {
	sum := &CheckSummary{}
	bad := func(file string, err error) { sum.Findings = append(sum.Findings, Finding{File: file, Err: err}) }

	// Snapshots first, then the index: a snapshot committed meanwhile
	// has its index file already.
	ids, err := r.SnapshotIDs()
	if err != nil {
		return nil, err
	}
	var snaps []*Snapshot
	for _, id := range ids {
		s, err := r.ReadSnapshot(id)
		if err != nil {
			bad(snapshotName(id), err)
			continue
		}
		snaps = append(snaps, s)
	}
	sum.Snapshots = len(snaps)

	packs := map[PackID]int64{}
	err = r.store.List("packs", func(name string, size int64) error {
		i := strings.LastIndexByte(name, '/')
		if id, ok := parseID(name[i+1:]); ok && name == packName(id) {
			var p PackID
			copy(p[:], mustHex(id))
			packs[p] = size
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sum.Packs = len(packs)

	idx := &Index{seed: maphash.MakeSeed()}
	defer idx.Close()
	var inames []string
	err = r.store.List("index", func(name string, size int64) error {
		inames = append(inames, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(inames)
	for _, name := range inames {
		id, ok := parseID(strings.TrimPrefix(name, "index/"))
		if !ok {
			bad(name, fmt.Errorf("%w: not an index file name", ErrDamaged))
			continue
		}
		if err := r.hashFile(name, id); err != nil {
			bad(name, err)
			continue
		}
		f, err := openIndexFile(r.store, name, idx.seed)
		if err != nil {
			bad(name, err)
			continue
		}
		idx.files = append(idx.files, f)
	}
	sum.IndexFiles = len(idx.files)

	// Every index entry: an existing pack, the literal's header right
	// before its offset.
	pc := newPackCache(r.store)
	defer pc.close()
	indexed := map[PackID]int{} // entries per pack
	// The literal headers are read in chunks of entries sorted by pack
	// and offset, so that each pack is opened once per chunk however the
	// GUIDs fall.
	type entry struct {
		g   guid.GUID
		loc Location
	}
	var chunk []entry
	checkChunk := func(name string) error {
		sort.Slice(chunk, func(i, j int) bool {
			a, b := chunk[i].loc, chunk[j].loc
			if a.Pack != b.Pack {
				return bytes.Compare(a.Pack[:], b.Pack[:]) < 0
			}
			return a.Offset < b.Offset
		})
		for _, e := range chunk {
			p, err := pc.get(e.loc.Pack)
			if err != nil {
				return err
			}
			if err := checkLiteralHeader(p, e.g, e.loc); err != nil {
				bad(name, err)
			}
		}
		chunk = chunk[:0]
		return ctx.Err()
	}
	for _, f := range idx.files {
		err := f.each(func(g guid.GUID, loc Location) error {
			sum.Entries++
			indexed[loc.Pack]++
			if _, ok := packs[loc.Pack]; !ok {
				bad(f.name, fmt.Errorf("%w: file %s is in pack %s, which does not exist", ErrDamaged, g, loc.Pack))
				return nil
			}
			if opts.ReadData {
				return ctx.Err() // reading the packs finds every entry's literal
			}
			if chunk = append(chunk, entry{g, loc}); len(chunk) == chunkEntries {
				return checkChunk(f.name)
			}
			return nil
		})
		if err == nil {
			err = checkChunk(f.name)
		}
		if err != nil {
			return nil, err
		}
	}
	for p := range packs {
		if indexed[p] == 0 {
			sum.UnreferencedPacks++
		}
	}

	// Every state of every snapshot, once.
	seen := map[string]bool{}
	files := guidtable.New(guidtable.Options{})
	defer files.Close()
	for _, s := range snaps {
		sum.Skipped += s.SkippedItems()
		for _, u := range s.Users {
			if seen[u.State] {
				continue
			}
			seen[u.State] = true
			name := stateName(u.State)
			missing := 0
			inIndex := func(part string, g guid.GUID) error {
				added, err := files.Add(g, nil)
				if err != nil || !added {
					return err
				}
				if _, ok, err := idx.Find(g); err != nil || ok {
					return err
				}
				missing++
				if missing <= 10 {
					bad(name, fmt.Errorf("%w: user %s of snapshot %s refers to file %s, which is in no index",
						ErrDamaged, u.Name, s.ShortID(), g))
				}
				return nil
			}
			got, err := r.readState(u.State, stateVisitor{
				files: inIndex,
				box: func(be BoxEntry) error {
					if !seen[be.Box] {
						if err := r.checkBox(be, seen, inIndex); err != nil {
							bad(stateName(be.Box), fmt.Errorf("user %s of snapshot %s, mailbox %s: %w", u.Name, s.ShortID(), be.Name, err))
						}
					}
					return nil
				},
				line: func(rd *dlist.Reader, verb, name string) error { return skipValue(rd) },
			})
			if missing > 10 {
				bad(name, fmt.Errorf("%w: %d more files missing", ErrDamaged, missing-10))
			}
			if err != nil {
				bad(name, err)
				continue
			}
			if got.Name != u.Name || got.Mailboxes != u.Mailboxes || got.Files != u.Files || got.Skipped != u.Skipped {
				bad(name, fmt.Errorf("%w: snapshot %s says user %s, %d mailboxes, %d files, %d skipped; the state has user %s, %d, %d, %d",
					ErrDamaged, s.ShortID(), u.Name, u.Mailboxes, u.Files, u.Skipped, got.Name, got.Mailboxes, got.Files, got.Skipped))
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	sum.States = len(seen)
	sum.Files = int64(files.Len())
	err = r.store.List("states", func(name string, size int64) error {
		if i := strings.LastIndexByte(name, '/'); !seen[name[i+1:]] {
			sum.UnreferencedStates++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	if opts.ReadData {
		var ids []PackID
		for p := range packs {
			ids = append(ids, p)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
		// Packs are read on all cores.
		var mu sync.Mutex
		var firstErr error
		work := make(chan PackID)
		var wg sync.WaitGroup
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range work {
					var found []error
					n, confirmed, err := r.readPack(ctx, p, idx, func(err error) { found = append(found, err) })
					if err == nil && len(found) == 0 && confirmed != indexed[p] {
						found = append(found, fmt.Errorf("%w: the index has %d entries for this pack, %d of them are at their literal",
							ErrDamaged, indexed[p], confirmed))
					}
					mu.Lock()
					sum.BytesRead += n
					for _, f := range found {
						bad(packName(p.String()), f)
					}
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}()
		}
		for _, p := range ids {
			work <- p
		}
		close(work)
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
	}
	return sum, nil
}

// checkBox checks the box of a mailbox entry, which seen does not hold
// yet, and its base (unless seen holds it; seen gets them) and that
// their files are in the index; a delta box is also merged with its base
// through, so that every UID it names is found.
func (r *Repo) checkBox(be BoxEntry, seen map[string]bool, files func(part string, g guid.GUID) error) error {
	if err := r.walkBox(be, seen, files); err != nil {
		return err
	}
	if be.Base == "" {
		return nil
	}
	m, err := r.openMerge(be, nil)
	if err != nil {
		return err
	}
	defer m.close()
	for {
		rec, err := m.next()
		if err != nil || rec == nil {
			return err
		}
	}
}

func mustHex(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		b[i] = unhexByte(s[2*i])<<4 | unhexByte(s[2*i+1])
	}
	return b
}

func unhexByte(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 0
}

// skipValue reads a line's value without keeping it.
func skipValue(rd *dlist.Reader) error {
	depth := 0
	for {
		t, err := rd.Next()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		switch t.Kind {
		case dlist.List, dlist.KVList:
			depth++
		case dlist.End:
			depth--
		case dlist.EOL:
			return fmt.Errorf("offset %d: line ends inside a value", t.Offset)
		}
		if depth == 0 && !t.IsKey {
			return nil
		}
	}
}

// hashFile checks that a file hashes to its name.
func (r *Repo) hashFile(name, id string) error {
	f, err := r.store.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
		return err
	}
	if got := idHex([32]byte(h.Sum(nil))); got != id {
		return fmt.Errorf("%w: its bytes hash to %s", ErrDamaged, got)
	}
	return nil
}

// readPack reads pack p through: its digest, every literal against its
// GUID, and the index's entries for the pack's files. It returns the bytes
// read and how many index entries for this pack it found at their
// literal.
func (r *Repo) readPack(ctx context.Context, p PackID, idx *Index, bad func(error)) (int64, int, error) {
	confirmed := 0
	f, err := r.store.Open(packName(p.String()))
	if err != nil {
		bad(err)
		return 0, 0, nil
	}
	defer f.Close()
	h := blake3.New()
	src := io.TeeReader(io.NewSectionReader(f, 0, f.Size()), h)
	rd := dlist.NewReader(bufio.NewReaderSize(src, 256<<10))
	line, err := rd.ReadLine()
	if err != nil || line.Verb != Verb || line.Value == nil || line.Value.Key != "PACK" {
		bad(fmt.Errorf("%w: no MBTOOL PACK header", ErrDamaged))
		return f.Size(), confirmed, nil
	}
	for {
		t, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			bad(fmt.Errorf("%w: %w", ErrDamaged, err))
			return f.Size(), confirmed, nil
		}
		if t.Kind != dlist.File {
			continue
		}
		g, size, off := t.File.GUID, t.File.Size, rd.Offset()
		if _, err := io.Copy(io.Discard, guid.NewReader(rd.Body(), g, size)); err != nil {
			if errors.Is(err, guid.ErrMismatch) {
				bad(fmt.Errorf("%w: file %s at offset %d: %w", ErrDamaged, g, off, err))
				continue
			}
			bad(fmt.Errorf("%w: file %s at offset %d: %w", ErrDamaged, g, off, err))
			return f.Size(), confirmed, nil
		}
		err = idx.findAll(g, func(loc Location) {
			switch {
			case loc.Pack != p:
			case loc.Offset == off && loc.Size == size:
				confirmed++
			default:
				bad(fmt.Errorf("%w: the index places file %s at offset %d (%d bytes), the pack has it at %d (%d bytes)",
					ErrDamaged, g, loc.Offset, loc.Size, off, size))
			}
		})
		if err != nil {
			return f.Size(), confirmed, err
		}
		if err := ctx.Err(); err != nil {
			return f.Size(), confirmed, err
		}
	}
	if got := idHex([32]byte(h.Sum(nil))); got != p.String() {
		bad(fmt.Errorf("%w: its bytes hash to %s", ErrDamaged, got))
	}
	return f.Size(), confirmed, nil
}
