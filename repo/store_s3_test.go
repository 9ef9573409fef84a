package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/s3store"
)

// startS3 starts a SeaweedFS store (or skips, as s3lab.Require does) and
// returns a client of it, configured from the environment as mbtool is.
func startS3(t *testing.T, opts s3store.Options) (*s3lab.Mini, *s3store.Client) {
	t.Helper()
	m := s3lab.StartMini(t, s3lab.Options{})
	m.Setenv(t)
	c, err := s3store.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

func s3Repo(t *testing.T, st *s3lab.Store, c *s3store.Client, prefix string) *Repo {
	t.Helper()
	u, err := s3store.ParseURL(st.URL(prefix))
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenS3Repo(t.Context(), c, u, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The Store contract, on a directory and on the object store alike:
// content-addressed commit (twice is fine), reads at any offset, lists,
// exclusive puts, removes.
func TestStoreContract(t *testing.T) {
	m, c := startS3(t, s3store.Options{PartSize: 5 << 20, Parallel: 3})
	u, _ := s3store.ParseURL(m.URL("contract"))
	stores := map[string]Store{"dir": OpenDir(t.TempDir()), "s3": OpenS3(t.Context(), c, u)}
	data := make([]byte, 13<<20+4321) // three parts and a bit: a multipart upload
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for kind, s := range stores {
		t.Run(kind, func(t *testing.T) {
			var name string
			for range 2 {
				w, err := s.Create()
				if err != nil {
					t.Fatal(err)
				}
				for b := data; len(b) > 0; b = b[min(len(b), 100_000):] {
					if _, err := w.Write(b[:min(len(b), 100_000)]); err != nil {
						t.Fatal(err)
					}
				}
				name = "packs/" + idHex(w.Sum())[:2] + "/" + idHex(w.Sum())
				if err := w.Commit(name); err != nil {
					t.Fatalf("commit of %s (the same bytes twice is fine): %v", name, err)
				}
			}
			f, err := s.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			if f.Size() != int64(len(data)) {
				t.Fatalf("size %d, wrote %d", f.Size(), len(data))
			}
			all, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
			if err != nil || !bytes.Equal(all, data) {
				t.Fatalf("read back whole: %v, equal %v", err, bytes.Equal(all, data))
			}
			for range 50 { // lone reads, and reads just ahead of the last
				off := rng.Int64N(int64(len(data)))
				n := min(int64(rng.IntN(70_000)), int64(len(data))-off)
				buf := make([]byte, n)
				if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+n]) {
					t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
				}
			}
			buf := make([]byte, 10)
			if n, err := f.ReadAt(buf, int64(len(data))-4); n != 4 || err != io.EOF {
				t.Errorf("ReadAt past the end: %d, %v", n, err)
			}
			f.Close()
			if err := s.PutExclusive("locks/x", []byte("one")); err != nil {
				t.Fatal(err)
			}
			if err := s.PutExclusive("locks/x", []byte("two")); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("second PutExclusive: %v, want fs.ErrExist", err)
			}
			var names []string
			for _, dir := range []string{"packs", "locks"} {
				if err := s.List(dir, func(n string, size int64) error { names = append(names, n); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(names, []string{name, "locks/x"}) {
				t.Errorf("listed %q", names)
			}
			if err := s.Remove("locks/x"); err != nil {
				t.Fatal(err)
			}
			if err := s.Remove("locks/x"); err != nil {
				t.Errorf("removing a missing file: %v", err)
			}
			if _, err := s.Open("locks/x"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("open of a removed file: %v", err)
			}
		})
	}
}

// The same nights into a directory and into the object store give the
// same repository: the same snapshots, the same files (names and sizes),
// the same exports and the same retention, and prune aborts the multipart
// upload a killed run left.
func TestS3SameAsDir(t *testing.T) {
	old := PackTarget
	PackTarget = 1 << 20
	defer func() { PackTarget = old }()
	m, c := startS3(t, s3store.Options{})
	repos := []*Repo{newRepo(t), s3Repo(t, m.Store, c, "site/repo")}
	base := time.Date(2026, 11, 1, 2, 0, 0, 0, time.Local)
	dumps := map[uint64][]byte{}
	dumpOf := func(seed uint64) []byte {
		if dumps[seed] == nil {
			dumps[seed] = genDump(t, seed, 100)
		}
		return dumps[seed]
	}
	snaps := make([][]*Snapshot, 2)
	for n := range 4 {
		for i, r := range repos {
			snaps[i] = append(snaps[i], addNight(t, r, base.AddDate(0, 0, n),
				map[string][]byte{"a": dumpOf(uint64(n)), "b": dumpOf(uint64(n + 1)), "c": dumpOf(100)}))
		}
	}
	files := func(r *Repo) []string {
		var out []string
		for _, dir := range []string{"packs", "index", "states", "snapshots"} {
			if err := r.store.List(dir, func(n string, size int64) error { out = append(out, n+" "+itoa(size)); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(out)
		return out
	}
	if a, b := files(repos[0]), files(repos[1]); !slices.Equal(a, b) {
		t.Fatalf("directory and object store differ:\n%s\n--\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	for i, s := range snaps[0] {
		if s.ID != snaps[1][i].ID || !bytes.Equal(exportAll(t, repos[0], s), exportAll(t, repos[1], snaps[1][i])) {
			t.Fatalf("night %d differs", i)
		}
	}

	// A run killed in the middle of a multipart upload: its first part
	// is sent, and it never completes nor aborts.
	small, err := s3store.New(t.Context(), s3store.Options{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	killed := small.NewWriter(t.Context(), m.Bucket, "site/repo/packs/ab/killed")
	if _, err := killed.Write(make([]byte, 6<<20)); err != nil {
		t.Fatal(err)
	}
	var sums []*PruneSummary
	for _, r := range repos {
		sum, err := r.Prune(context.Background(), PruneOptions{Policy: Policy{Daily: 2}})
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sum)
	}
	if sums[1].UploadsAborted != 1 {
		t.Errorf("prune aborted %d unfinished uploads, want 1", sums[1].UploadsAborted)
	}
	left := 0
	c.Unfinished(t.Context(), m.Bucket, "site/", func(s3store.Unfinished) error { left++; return nil })
	if left != 0 {
		t.Errorf("%d unfinished uploads after prune", left)
	}
	a, b := *sums[0], *sums[1]
	a.Decisions, b.Decisions, b.UploadsAborted = nil, nil, 0
	if fmt.Sprintf("%+v", a) != fmt.Sprintf("%+v", b) {
		t.Errorf("prune: directory %+v, object store %+v", a, b)
	}
	for i, d := range sums[0].Decisions {
		if d.Keep != sums[1].Decisions[i].Keep || d.Snapshot.ID != sums[1].Decisions[i].Snapshot.ID {
			t.Errorf("prune decided differently on snapshot %d", i)
		}
	}
	if a, b := files(repos[0]), files(repos[1]); !slices.Equal(a, b) {
		t.Fatalf("after prune, directory and object store differ:\n%s\n--\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	for _, r := range repos {
		ss, err := r.Snapshots()
		if err != nil || len(ss) != 2 {
			t.Fatalf("%s kept %d snapshots: %v", r.store.Location(), len(ss), err)
		}
		for _, s := range ss {
			if !bytes.Equal(exportAll(t, r, s), exportAll(t, repos[0], s)) {
				t.Errorf("%s: snapshot %s writes out differently", r.store.Location(), s.ShortID())
			}
		}
		check(t, r)
	}

}

// An index file whose bytes do not match its name is refused when it is
// opened from the object store, before dump trusts it.
func TestS3IndexChecked(t *testing.T) {
	m, c := startS3(t, s3store.Options{})
	r := s3Repo(t, m.Store, c, "x")
	addNight(t, r, time.Now(), map[string][]byte{"a": genDump(t, 1, 20)})
	var name string
	r.store.List("index", func(n string, _ int64) error { name = n; return nil })
	f, err := r.store.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	f.Close()
	b[8+entrySize-1] ^= 1 // the first entry's size: still a well-formed index file
	if err := c.Put(t.Context(), m.Bucket, "x/"+name, b, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadIndex(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("LoadIndex of a changed index file: %v, want ErrDamaged", err)
	}
}

// Locks on the object store, as on a directory: shared beside shared,
// exclusive alone; a prune is refused while a dump holds its lock; a run
// whose lock was removed by another host stops before its snapshot.
func TestS3Locks(t *testing.T) {
	m, c := startS3(t, s3store.Options{})
	r := s3Repo(t, m.Store, c, "locks")
	dump1, err := r.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	dump2, err := r.Lock(false)
	if err != nil {
		t.Fatalf("a second host's dump: %v", err)
	}
	if _, err := r.Prune(context.Background(), PruneOptions{Policy: Policy{Last: 1}}); !errors.Is(err, ErrLocked) {
		t.Fatalf("prune beside two dumps: %v, want ErrLocked", err)
	}
	dump2.Release()
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	b := r.NewBackup(idx)
	b.Guard = dump1.Check
	if _, err := b.Ingest(context.Background(), "a", bytes.NewReader(genDump(t, 7, 20))); err != nil {
		t.Fatal(err)
	}
	// Another host's operator runs unlock --remove-all.
	other, err := OpenS3Repo(t.Context(), c, mustURL(t, m.URL("locks")), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Unlock(true); err != nil {
		t.Fatal(err)
	}
	if s, err := b.Commit("h", "v", time.Now()); !errors.Is(err, ErrLockLost) || s != nil {
		t.Fatalf("commit after the lock was removed: %v, %v", s, err)
	}
	dump1.Release()
	if ss, err := r.Snapshots(); err != nil || len(ss) != 0 {
		t.Fatalf("%d snapshots, %v", len(ss), err)
	}
	if _, err := r.Prune(context.Background(), PruneOptions{Policy: Policy{Last: 1}}); err != nil {
		t.Fatalf("prune once the dumps are gone: %v", err)
	}
}

func mustURL(t *testing.T, s string) s3store.URL {
	t.Helper()
	u, err := s3store.ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
