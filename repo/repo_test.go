package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/guid"
)

func newRepo(t *testing.T) *Repo {
	t.Helper()
	r, err := OpenDirRepo(filepath.Join(t.TempDir(), "repo"), true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func genDump(t *testing.T, seed uint64, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := gen.WriteDump(&buf, gen.Options{Seed: seed, Messages: n, MeanSize: 2000, PerMailbox: 100}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// addNight ingests one dump per user and commits a snapshot at t.
func addNight(t *testing.T, r *Repo, at time.Time, users map[string][]byte) *Snapshot {
	t.Helper()
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	b := r.NewBackup(idx)
	// In name order, so that two repositories fed the same nights hold
	// the same packs (TestS3SameAsDir).
	for _, name := range slices.Sorted(maps.Keys(users)) {
		if _, err := b.Ingest(context.Background(), name, bytes.NewReader(users[name])); err != nil {
			b.Abort()
			t.Fatal(err)
		}
	}
	s, err := b.Commit("h", "v", at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func exportAll(t *testing.T, r *Repo, s *Snapshot) []byte {
	t.Helper()
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	var buf bytes.Buffer
	if _, err := r.WriteDump(context.Background(), idx, s, &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func check(t *testing.T, r *Repo) *CheckSummary {
	t.Helper()
	sum, err := r.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sum.Findings {
		t.Errorf("verify: %s", f)
	}
	return sum
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// One message file delivered to many users is stored once.
func TestStoredOnceAcrossUsers(t *testing.T) {
	r := newRepo(t)
	d := genDump(t, 1, 300)
	users := map[string][]byte{}
	for i := 0; i < 100; i++ {
		users[string(rune('a'+i%26))+string(rune('a'+i/26))] = d
	}
	s := addNight(t, r, time.Unix(1795880000, 0), users)
	idx, _ := r.LoadIndex()
	defer idx.Close()
	// A user's files, each once (Files of a state counts a file once
	// per mailbox that has it).
	st, err := gen.WriteDump(io.Discard, gen.Options{Seed: 1, Messages: 300, MeanSize: 2000, PerMailbox: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := int64(idx.Len()), st.Messages; got != want {
		t.Fatalf("index holds %d files for 100 users of %d files each", got, want)
	}
	if s.NewBytes != st.Bytes {
		t.Errorf("stored %d bytes, one user's files are %d", s.NewBytes, st.Bytes)
	}
	check(t, r)
}

// Nights that share most files; prune by policy frees what only forgotten
// nights used, and every kept night writes out exactly as before.
func TestPruneKeepsWhatItKeeps(t *testing.T) {
	old := PackTarget
	PackTarget = 1 << 20 // packs of one night: some removed whole, the first night's rewritten
	defer func() { PackTarget = old }()
	r := newRepo(t)
	dumps := map[uint64][]byte{}
	dumpOf := func(seed uint64) []byte {
		if dumps[seed] == nil {
			dumps[seed] = genDump(t, seed, 200)
		}
		return dumps[seed]
	}
	base := time.Date(2026, 11, 1, 2, 0, 0, 0, time.Local)
	var snaps []*Snapshot
	for n := 0; n < 10; n++ {
		snaps = append(snaps, addNight(t, r, base.AddDate(0, 0, n),
			map[string][]byte{"a": dumpOf(uint64(n)), "b": dumpOf(uint64(n + 1)), "c": dumpOf(100)}))
	}
	before := map[string][]byte{}
	for _, s := range snaps {
		before[s.ID] = exportAll(t, r, s)
	}
	check(t, r)
	size := dirSize(t, r.store.Location())

	dry, err := r.Prune(context.Background(), PruneOptions{Policy: Policy{Daily: 3}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dirSize(t, r.store.Location()) != size {
		t.Fatal("dry run changed the repository")
	}
	sum, err := r.Prune(context.Background(), PruneOptions{Policy: Policy{Daily: 3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %d packs removed, %d rewritten, %d kept; %d bytes freed", sum.PacksRemoved, sum.PacksRepacked, sum.PacksKept, sum.BytesRemoved)
	if sum.PacksRemoved == 0 || sum.PacksRepacked == 0 {
		t.Errorf("the test meant to remove and rewrite packs: %+v", sum)
	}
	if sum.PacksRemoved != dry.PacksRemoved || sum.BytesRemoved != dry.BytesRemoved {
		t.Errorf("dry run said %d packs, %d bytes; prune removed %d, %d", dry.PacksRemoved, dry.BytesRemoved, sum.PacksRemoved, sum.BytesRemoved)
	}
	ss, err := r.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 3 || ss[0].ID != snaps[7].ID {
		t.Fatalf("kept %d snapshots", len(ss))
	}
	for _, s := range ss {
		if got := exportAll(t, r, s); !bytes.Equal(got, before[s.ID]) {
			t.Errorf("snapshot %s writes out differently after prune", s.ShortID())
		}
	}
	// What stays: the files the kept nights use, in packs at most 20%
	// unused, and their index entries only.
	cs := check(t, r)
	if cs.UnreferencedPacks != 0 || cs.UnreferencedStates != 0 || cs.IndexFiles != 1 {
		t.Errorf("after prune: %+v", cs)
	}
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	var used int64
	idx.Merged(func(_ guid.GUID, loc Location) error { used += loc.Size; return nil })
	if idx.Len() != cs.Files {
		t.Errorf("index holds %d files after prune, the kept snapshots use %d", idx.Len(), cs.Files)
	}
	packs := dirSize(t, filepath.Join(r.store.Location(), "packs"))
	if float64(packs) > 1.25*float64(used)+64<<10 {
		t.Errorf("packs hold %d bytes after prune for %d bytes of used files", packs, used)
	}
	t.Logf("repository %d bytes before prune, %d after; packs %d for %d bytes of files", size, dirSize(t, r.store.Location()), packs, used)
}

func TestPolicy(t *testing.T) {
	day := func(d, h int) *Snapshot {
		return &Snapshot{ID: time.Date(2026, 11, d, h, 0, 0, 0, time.Local).Format("0102-15") + "0000000000000000000000000000000000000000000000000000000",
			Time: time.Date(2026, 11, d, h, 0, 0, 0, time.Local), Host: "h", Users: []UserEntry{{Name: "a"}}}
	}
	// Nov 2026: the 1st is a Sunday; two runs on the 30th.
	ss := []*Snapshot{day(1, 2), day(2, 2), day(8, 2), day(9, 2), day(15, 2), day(29, 2), day(30, 2), day(30, 14)}
	for _, tc := range []struct {
		p    Policy
		want string // 1 = kept, oldest first
	}{
		{Policy{}, "11111111"},
		{Policy{Last: 2}, "00000011"},
		{Policy{Daily: 2}, "00000101"},
		{Policy{Weekly: 2}, "00000101"}, // weeks 48 (29th, Sunday) and 49 (30th)
		{Policy{Weekly: 3}, "00001101"}, // and week 46's last, the 15th
		{Policy{Monthly: 1}, "00000001"},
		{Policy{Daily: 1, Weekly: 5}, "10101101"}, // weeks of the 1st (a Sunday), 8th, 15th, 29th, 30th
	} {
		got := ""
		for _, d := range tc.p.Apply(ss) {
			if d.Keep {
				got += "1"
			} else {
				got += "0"
			}
		}
		if got != tc.want {
			t.Errorf("%+v: kept %s, want %s", tc.p, got, tc.want)
		}
	}
}

// A stale lock (its process gone) does not block; a live exclusive lock
// does, and a shared one does not block another shared one.
func TestLocks(t *testing.T) {
	r := newRepo(t)
	a, err := r.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Lock(false)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := r.Lock(true); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock beside shared ones: %v", err)
	}
	a.Release()
	b.Release()
	// A lock of a process that is gone: PID 1 with another start time.
	dead := encodeLock(lockInfo{Host: hostname(), PID: 1, Start: 12345678901, Time: time.Now(), Exclusive: true})
	if err := r.store.PutExclusive("locks/dead", dead); err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(true)
	if err != nil {
		t.Fatalf("stale lock blocked: %v", err)
	}
	if _, err := r.store.Open("locks/dead"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale lock of this host not removed: %v", err)
	}
	if _, err := r.Lock(false); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared lock beside an exclusive one: %v", err)
	}
	l.Release()
	// Another host's lock is live until it is StaleAfter old.
	other := encodeLock(lockInfo{Host: "elsewhere", PID: 1, Time: time.Now(), Exclusive: true})
	r.store.PutExclusive("locks/other", other)
	if _, err := r.Lock(false); !errors.Is(err, ErrLocked) {
		t.Fatalf("live lock of another host ignored: %v", err)
	}
	r.store.Remove("locks/other")
	old := encodeLock(lockInfo{Host: "elsewhere", PID: 1, Time: time.Now().Add(-StaleAfter - time.Minute), Exclusive: true})
	r.store.PutExclusive("locks/old", old)
	l, err = r.Lock(true)
	if err != nil {
		t.Fatalf("stale lock of another host blocked: %v", err)
	}
	l.Release()
}

// fullStore is a disk that fills up after a number of bytes.
type fullStore struct {
	Store
	left *int64
}

func (f fullStore) Create() (FileWriter, error) {
	w, err := f.Store.Create()
	if err != nil {
		return nil, err
	}
	return &fullWriter{FileWriter: w, left: f.left}, nil
}

type fullWriter struct {
	FileWriter
	left *int64
}

func (w *fullWriter) Write(p []byte) (int, error) {
	if *w.left < int64(len(p)) {
		return 0, syscall.ENOSPC
	}
	*w.left -= int64(len(p))
	return w.FileWriter.Write(p)
}

// A run that meets a full disk fails with ENOSPC and leaves the repository
// consistent; the next run completes.
func TestDiskFull(t *testing.T) {
	r := newRepo(t)
	d := genDump(t, 3, 300)
	first := addNight(t, r, time.Unix(1795880000, 0), map[string][]byte{"a": genDump(t, 2, 100)})
	for _, limit := range []int64{0, 1000, 100 << 10, 500 << 10} {
		left := limit
		full, err := Open(fullStore{Store: r.store, left: &left})
		if err != nil {
			t.Fatal(err)
		}
		idx, err := full.LoadIndex()
		if err != nil {
			t.Fatal(err)
		}
		b := full.NewBackup(idx)
		_, err = b.Ingest(context.Background(), "b", bytes.NewReader(d))
		if err == nil {
			_, err = b.Commit("h", "v", time.Unix(1795890000, 0))
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("limit %d: %v, want ENOSPC", limit, err)
		}
		b.Abort()
		idx.Close()
		if cs := check(t, r); cs.Snapshots != 1 {
			t.Fatalf("limit %d: %d snapshots", limit, cs.Snapshots)
		}
	}
	want := exportAll(t, r, first)
	s := addNight(t, r, time.Unix(1795890000, 0), map[string][]byte{"b": d})
	check(t, r)
	if got := exportAll(t, r, first); !bytes.Equal(got, want) {
		t.Error("the first night changed")
	}
	if s.User("b") == nil {
		t.Error("the next run lost user b")
	}
	if _, err := r.Prune(context.Background(), PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if cs := check(t, r); cs.UnreferencedPacks != 0 {
		t.Errorf("prune left %d unreferenced packs", cs.UnreferencedPacks)
	}
}

// verify --repo finds what is damaged: a missing pack or state in the
// structural check, a changed byte in a message only with ReadData.
func TestCheckFindsDamage(t *testing.T) {
	findings := func(r *Repo, readData bool) int {
		t.Helper()
		sum, err := r.Check(context.Background(), CheckOptions{ReadData: readData})
		if err != nil {
			t.Fatal(err)
		}
		return len(sum.Findings)
	}
	files := func(r *Repo, dir string) []string {
		var out []string
		r.store.List(dir, func(name string, size int64) error { out = append(out, name); return nil })
		return out
	}
	for _, damage := range []string{"flip", "pack", "state"} {
		r := newRepo(t)
		addNight(t, r, time.Unix(1795880000, 0), map[string][]byte{"a": genDump(t, 5, 100)})
		if n := findings(r, true); n != 0 {
			t.Fatalf("%d findings before any damage", n)
		}
		root := r.store.Location()
		switch damage {
		case "flip":
			p := filepath.Join(root, files(r, "packs")[0])
			os.Chmod(p, 0o600)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o600)
			if n := findings(r, true); n == 0 {
				t.Error("a changed byte in a pack: no finding with --read-data")
			}
		case "pack":
			os.Remove(filepath.Join(root, files(r, "packs")[0]))
			if n := findings(r, false); n == 0 {
				t.Error("a missing pack: no finding")
			}
		case "state":
			os.Remove(filepath.Join(root, files(r, "states")[0]))
			if n := findings(r, false); n == 0 {
				t.Error("a missing state: no finding")
			}
		}
	}
}

// A run killed while it made the repository (its config half written)
// leaves a directory the next run makes the repository in; anything else
// in a directory that is not a repository is refused.
func TestInitAfterKill(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "config.tmp-0123"), []byte("MBTOOL REP"), 0o600)
	if _, err := OpenDirRepo(dir, true); err != nil {
		t.Fatalf("after a killed init: %v", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "mail"), []byte("x"), 0o600)
	if _, err := OpenDirRepo(other, true); !errors.Is(err, ErrNotRepo) {
		t.Fatalf("a directory with other files: %v", err)
	}
}

// Prune rewrites packs partly unused until what stays unused is within
// MaxUnused of the repository (5% by default, restic's), the most unused
// first: a pack of night 1 a tenth unused is rewritten, one of night 2 a
// twentieth unused is not, and the kept night writes out as before.
// (Rewritten only above 20% unused each, no pack was: the repository
// never shrank by the mail that nights expunge a little at a time.)
func TestPruneMaxUnused(t *testing.T) {
	// Night 1 stores ten users of 50 messages (a00-a09) and twenty of
	// one (c00-c19) in one pack; night 2, 50 messages for each c user in
	// another; night 3, one new message for a00 and c00 instead of
	// theirs. Once nights 1 and 2 go, about 13% of the first pack is
	// unused, 5% of the second, 8% of the repository.
	small := func(seed uint64, n int) []byte { // messages of a few KB each, no attachments
		var buf bytes.Buffer
		if _, err := gen.WriteDump(&buf, gen.Options{Seed: seed, Messages: n, SmallOnly: true, PerMailbox: 100}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	var nights [3]map[string][]byte
	for n := range nights {
		nights[n] = map[string][]byte{}
	}
	for i := 0; i < 10; i++ {
		d := small(1000*(1+uint64(i)), 50)
		nights[0][fmt.Sprintf("a%02d", i)], nights[1][fmt.Sprintf("a%02d", i)], nights[2][fmt.Sprintf("a%02d", i)] = d, d, d
	}
	for i := 0; i < 20; i++ {
		d := small(1000*(20+uint64(i)), 50)
		nights[0][fmt.Sprintf("c%02d", i)] = small(1000*(50+uint64(i)), 1)
		nights[1][fmt.Sprintf("c%02d", i)], nights[2][fmt.Sprintf("c%02d", i)] = d, d
	}
	nights[2]["a00"], nights[2]["c00"] = small(80000, 1), small(81000, 1)
	base := time.Date(2026, 11, 1, 2, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		name      string
		maxUnused float64
		repacked  int
	}{
		{"default", 0, 1},
		{"15%", 0.15, 0},
		{"none", -1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			var last *Snapshot
			for n, users := range nights {
				last = addNight(t, r, base.AddDate(0, 0, n), users)
			}
			want := exportAll(t, r, last)
			sum, err := r.Prune(context.Background(), PruneOptions{Policy: Policy{Last: 1}, MaxUnused: tc.maxUnused})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("prune: %d packs removed, %d rewritten, %d kept; %d bytes used, %d unused left", sum.PacksRemoved,
				sum.PacksRepacked, sum.PacksKept, sum.UsedBytes, sum.UnusedLeft)
			// One pack a night; the third's is all used.
			if sum.PacksRepacked != tc.repacked || sum.PacksRepacked+sum.PacksKept != 3 || sum.PacksRemoved != 0 {
				t.Errorf("%d packs rewritten, %d kept and %d removed, want %d rewritten of 3", sum.PacksRepacked, sum.PacksKept, sum.PacksRemoved, tc.repacked)
			}
			limit := tc.maxUnused
			if limit == 0 {
				limit = DefaultMaxUnused
			}
			if share := float64(sum.UnusedLeft) / float64(sum.UsedBytes+sum.UnusedLeft); share > max(limit, 0) {
				t.Errorf("%.1f%% of the repository left unused", 100*share)
			}
			cs := check(t, r) // verify --repo --read-data
			if cs.UnreferencedPacks != 0 || cs.IndexFiles != 1 {
				t.Errorf("after prune: %+v", cs)
			}
			if got := exportAll(t, r, last); !bytes.Equal(got, want) {
				t.Error("the kept night writes out differently after prune")
			}
		})
	}
}

// TestIngestUnsealed: a dump read unsealed (dump --repo's pipe, whose
// trailer's digest is not checked) is still refused, with no state
// stored, when a message file's bytes are not those of its GUID, or when
// the dump does not end with its trailer: the ingest hashes every file it
// stores against its GUID.
func TestIngestUnsealed(t *testing.T) {
	d := genDump(t, 4, 50)
	lit := bytes.Index(d, []byte("%{"))
	body := lit + bytes.Index(d[lit:], []byte("}\r\n")) + 3
	if lit < 0 || body < lit+3 {
		t.Fatal("no file literal in the dump")
	}
	changed := append([]byte(nil), d...)
	changed[body+10] ^= 1
	trailer := bytes.LastIndex(d, []byte("MBTOOL TRAILER"))
	if trailer < 0 {
		t.Fatal("no trailer in the dump")
	}
	r := newRepo(t)
	for _, c := range []struct {
		what string
		dump []byte
		ok   bool
	}{
		{"a message file's byte changed", changed, false},
		{"no trailer", d[:trailer], false},
		{"as written", d, true},
	} {
		idx, err := r.LoadIndex()
		if err != nil {
			t.Fatal(err)
		}
		b := r.NewBackup(idx)
		u, err := b.User("a")
		if err != nil {
			t.Fatal(err)
		}
		ue, err := u.Ingest(context.Background(), bytes.NewReader(c.dump), IngestOptions{Unsealed: true})
		if c.ok != (err == nil) {
			t.Errorf("%s: %v", c.what, err)
		}
		if !c.ok {
			var mm *guid.MismatchError
			if c.what == "a message file's byte changed" && !errors.As(err, &mm) {
				t.Errorf("%s: %v, want a GUID mismatch", c.what, err)
			}
			b.Abort()
			idx.Close()
			continue
		}
		if ue.Files != 50 {
			t.Errorf("%s: %d files", c.what, ue.Files)
		}
		if _, err := b.Commit("h", "v", time.Unix(1795880000, 0)); err != nil {
			t.Fatal(err)
		}
		idx.Close()
	}
	if cs := check(t, r); cs.Snapshots != 1 {
		t.Errorf("%d snapshots", cs.Snapshots)
	}
}
