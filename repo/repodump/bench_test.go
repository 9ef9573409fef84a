package repodump

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/restore"
	"github.com/mbtool/mbtool/verify"
	"github.com/zeebo/blake3"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// day changes a live Cyrus as a day of mail does: pct/100 of n new
// messages, half that expunged, twice that flagged, spread over the
// users' INBOXes, through IMAP as the admin; then the day's cyr_expire.
// Cyrus 3.6 expunges lazily (expunge_mode: delayed): an expunged
// message keeps its index record and its file, and so stays in every
// night's snapshot, until cyr_expire -X purges it; Debian runs
// cyr_expire -X 3 every night (cyrus.conf's delprune event). A day here
// lasts minutes, so -X 0 stands for it: what a day expunged is gone from
// the spool by the next night, and only the snapshots of the nights
// before still need it, which is what prune can reclaim.
func day(b testing.TB, lab *cyruslab.Lab, spool *partition.Spool, n int, pct float64, rng *rand.Rand, nightNo int) {
	b.Helper()
	users, err := spool.Users()
	if err != nil {
		b.Fatal(err)
	}
	c := adminSession(b, lab)
	defer c.Close()
	per := func(share float64) int { return max(1, int(float64(n)*pct*share/100/float64(len(users))+0.5)) }
	for _, u := range users {
		box := "user." + u
		if _, err := spool.Lookup(box); err != nil {
			continue // a user with seen state only (the admin, since the first day)
		}
		if err := c.SetACL(box, cyruslab.Admin, "lrswitedi"); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Select(box); err != nil {
			b.Fatal(err)
		}
		msgs, err := c.UIDFetch("1:*", "(FLAGS)")
		if err != nil {
			b.Fatal(err)
		}
		pick := func(k int) string {
			var s []string
			for i := 0; i < k && len(msgs) > 0; i++ {
				s = append(s, fmt.Sprint(msgs[rng.IntN(len(msgs))].UID))
			}
			return strings.Join(s, ",")
		}
		if set := pick(per(2)); set != "" {
			if err := c.UIDStore(set, "+FLAGS", `(\Flagged)`); err != nil {
				b.Fatal(err)
			}
		}
		if set := pick(per(0.5)); set != "" {
			if err := c.UIDStore(set, "+FLAGS", `(\Deleted)`); err != nil {
				b.Fatal(err)
			}
			if err := c.UIDExpunge(set); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < per(1); i++ {
			body := make([]byte, 2000+rng.IntN(16000))
			for j := range body {
				body[j] = 'a' + byte(rng.IntN(26))
				if j%72 == 71 {
					body[j] = '\n'
				}
			}
			msg := fmt.Sprintf("From: x@example.org\r\nTo: %s@example.org\r\nSubject: night %d message %d\r\n\r\n%s\r\n", u, nightNo, i, body)
			if _, err := c.Append(box, nil, time.Time{}, []byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
				b.Fatal(err)
			}
		}
	}
	lab.Tool(b, "cyr_expire", "-X", "0")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// nights is the nightly scenario on a live Cyrus with a
// generated partition of n messages: night 1, then nights-1 days of 1%
// new, 0.5% expunged and 2% flagged messages (through IMAP), each
// followed by a night into the repository. After each night every user
// and the shared mailboxes must write out as the standalone dump of that
// night (compared by digest). When measure is set, night 2 is also timed
// against night 1 in alternating rounds (see alternate).
type nightsRun struct {
	lab      *cyruslab.Lab
	r        *repo.Repo
	dir      string
	times    []time.Duration
	sizes    []int64 // repository bytes each night added
	newBytes []int64 // message bytes each night stored
	snaps    []*repo.Snapshot
	digests  []map[string][32]byte // per night: each entry's standalone dump
	// views holds, for each night prune --keep-daily 7 keeps (with more
	// than 7 nights), what IMAP showed of every mailbox after it
	// (imapViews).
	views map[int]imapcompare.Snapshot
	// alternate's figures (measure): night 1 and night 2 of the
	// partition after the first day, alternating.
	alt1, alt2           []time.Duration
	altBytes1, altBytes2 int64
}

func nights(tb testing.TB, n, count, rounds int) *nightsRun {
	ctx := context.Background()
	nr := &nightsRun{lab: cyruslab.Start(tb, cyruslab.Options{}), views: map[int]imapcompare.Snapshot{}}
	spool := openSpool(tb, nr.lab.Conf)
	if _, err := gen.Restore(ctx, spool, gen.Options{Seed: 1, Messages: n}); err != nil {
		tb.Fatal(err)
	}
	warm(tb, nr.lab, spool)
	if count > 7 {
		grantAdmin(tb, nr.lab, spool)
	}
	nr.dir = filepath.Join(tb.TempDir(), "repo")
	r, err := repo.OpenDirRepo(nr.dir, true)
	if err != nil {
		tb.Fatal(err)
	}
	nr.r = r
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 1, 2, 0, 0, 0, time.Local)
	var night1 string // a copy of the repository after night 1 (rounds)
	for i := 0; i < count; i++ {
		at := base.AddDate(0, 0, i)
		if i > 0 {
			day(tb, nr.lab, spool, n, 1, rng, i)
		}
		if i == 1 && rounds > 0 {
			nr.alternate(tb, night1, rounds, at)
		}
		before := dirBytes(nr.dir)
		start := time.Now()
		sum, err := Run(ctx, openSpool(tb, nr.lab.Conf), r, Options{All: true, Now: at, Host: "lab", Version: "bench"})
		if err != nil {
			tb.Fatal(err)
		}
		if len(sum.Problems) > 0 || len(sum.Skipped) > 0 {
			tb.Fatalf("night %d: %v %v", i+1, sum.Problems, sum.Skipped)
		}
		nr.times = append(nr.times, time.Since(start))
		nr.sizes = append(nr.sizes, dirBytes(nr.dir)-before)
		nr.newBytes = append(nr.newBytes, sum.NewBytes)
		nr.snaps = append(nr.snaps, sum.Snapshot)
		tb.Logf("night %d: %s, %d bytes added (%d of new message files), %d users, %d mailboxes, %d message references",
			i+1, nr.times[i].Round(time.Millisecond), nr.sizes[i], sum.NewBytes, sum.Users, sum.Mailboxes, sum.Files)
		// Every entry of the night writes out as its standalone dump.
		s := openSpool(tb, nr.lab.Conf)
		d := map[string][32]byte{}
		for _, u := range sum.Snapshot.Users {
			o := dump.Options{Users: []string{u.Name}, Host: "lab", Version: "bench", Now: at}
			if u.Name == repo.SharedName {
				shared, err := dump.SharedMailboxes(s)
				if err != nil {
					tb.Fatal(err)
				}
				o.Users, o.Mailboxes = nil, shared
			}
			h := blake3.New()
			if _, err := dump.Run(ctx, s, h, o); err != nil {
				tb.Fatal(err)
			}
			d[u.Name] = [32]byte(h.Sum(nil))
			if got := nr.export(tb, sum.Snapshot, u.Name); got != d[u.Name] {
				tb.Fatalf("night %d: %s writes out differently from its standalone dump", i+1, repo.DisplayName(u.Name))
			}
		}
		nr.digests = append(nr.digests, d)
		if count > 7 && i >= count-7 {
			nr.views[i] = imapViews(tb, nr.lab)
		}
		if i == 0 && rounds > 0 {
			night1 = filepath.Join(tb.TempDir(), "night1")
			if out, err := exec.Command("cp", "-a", nr.dir, night1).CombinedOutput(); err != nil {
				tb.Fatalf("cp: %v: %s", err, out)
			}
		}
	}
	return nr
}

// export returns the digest of one entry of snapshot s written out.
func (nr *nightsRun) export(tb testing.TB, s *repo.Snapshot, user string) [32]byte {
	idx, err := nr.r.LoadIndex()
	if err != nil {
		tb.Fatal(err)
	}
	defer idx.Close()
	h := blake3.New()
	if _, err := nr.r.WriteDump(context.Background(), idx, s, h, repo.ExportOptions{Users: []string{user}}); err != nil {
		tb.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// alternate times night 1 and night 2 of the partition as it is now, in
// rounds alternating which goes first: night 1 into an empty repository,
// night 2 into a copy of night1 (the repository after the first night),
// with a sync (untimed) before each.
func (nr *nightsRun) alternate(tb testing.TB, night1 string, rounds int, at time.Time) {
	ctx := context.Background()
	for k := 0; k < rounds; k++ {
		for j := 0; j < 2; j++ {
			second := (j == 1) == (k%2 == 0)
			dir := filepath.Join(tb.TempDir(), "alt")
			if second {
				if out, err := exec.Command("cp", "-a", night1, dir).CombinedOutput(); err != nil {
					tb.Fatalf("cp: %v: %s", err, out)
				}
			}
			r, err := repo.OpenDirRepo(dir, true)
			if err != nil {
				tb.Fatal(err)
			}
			exec.Command("sync").Run()
			before := dirBytes(dir)
			start := time.Now()
			if _, err := Run(ctx, openSpool(tb, nr.lab.Conf), r, Options{All: true, Now: at, Host: "lab", Version: "bench"}); err != nil {
				tb.Fatal(err)
			}
			d := time.Since(start)
			if second {
				nr.alt2, nr.altBytes2 = append(nr.alt2, d), dirBytes(dir)-before
			} else {
				nr.alt1, nr.altBytes1 = append(nr.alt1, d), dirBytes(dir)-before
			}
			os.RemoveAll(dir)
		}
	}
	tb.Logf("night 1 and night 2 of the same partition, %d alternating rounds: night 1 %v, night 2 %v; median night 2 / night 1 = %.4f (min %.4f, max %.4f); bytes added %d and %d (%.4f)",
		rounds, nr.alt1, nr.alt2, float64(median(nr.alt2))/float64(median(nr.alt1)), ratioMin(nr.alt2, nr.alt1), ratioMax(nr.alt2, nr.alt1),
		nr.altBytes1, nr.altBytes2, float64(nr.altBytes2)/float64(nr.altBytes1))
}

func ratioMin(a, b []time.Duration) float64 {
	m := 0.0
	for i := range a {
		if r := float64(a[i]) / float64(b[i]); i == 0 || r < m {
			m = r
		}
	}
	return m
}

func ratioMax(a, b []time.Duration) float64 {
	m := 0.0
	for i := range a {
		m = max(m, float64(a[i])/float64(b[i]))
	}
	return m
}

// warm reads every user's INBOX once through IMAP, as a live server's
// mailboxes have been read: Cyrus adds a generated record's cache record
// when it first reads it, without a new MODSEQ (docs/format.md, "Box").
// Then the nightly cyr_expire runs once, as it has on a live server (see
// day): it purges the records the generated partition holds expunged and
// repacks the mailboxes that need it.
func warm(tb testing.TB, lab *cyruslab.Lab, spool *partition.Spool) {
	users, err := spool.Users()
	if err != nil {
		tb.Fatal(err)
	}
	c := adminSession(tb, lab)
	defer c.Close()
	for _, u := range users {
		if _, err := spool.Lookup("user." + u); err != nil {
			continue // a user with seen state only
		}
		if err := c.SetACL("user."+u, cyruslab.Admin, "lrswitedi"); err != nil {
			tb.Fatal(err)
		}
		if _, err := c.Select("user." + u); err != nil {
			tb.Fatal(err)
		}
		if _, err := c.UIDFetch("1:*", "(FLAGS)"); err != nil {
			tb.Fatal(err)
		}
	}
	lab.Tool(tb, "cyr_expire", "-X", "0")
}

// keepDaily prunes with --keep-daily 7 and checks that every kept night
// writes out as before; it returns the repository's bytes before and
// after.
func (nr *nightsRun) keepDaily(tb testing.TB) (before, after int64) {
	before = dirBytes(nr.dir)
	ps, err := nr.r.Prune(context.Background(), repo.PruneOptions{Policy: repo.Policy{Daily: 7}})
	if err != nil {
		tb.Fatal(err)
	}
	after = dirBytes(nr.dir)
	share := 0.0
	if t := ps.UsedBytes + ps.UnusedLeft; t > 0 {
		share = 100 * float64(ps.UnusedLeft) / float64(t)
	}
	tb.Logf("prune --keep-daily 7: %d bytes before, %d after (%d packs removed, %d rewritten, %d kept; %d snapshot states removed; "+
		"in the packs: %d bytes the kept nights use, %d unused left, %.2f%% against --max-unused's %.0f%%)",
		before, after, ps.PacksRemoved, ps.PacksRepacked, ps.PacksKept, ps.StatesRemoved,
		ps.UsedBytes, ps.UnusedLeft, share, 100*repo.DefaultMaxUnused)
	ss, err := nr.r.Snapshots()
	if err != nil {
		tb.Fatal(err)
	}
	if len(ss) != 7 {
		tb.Errorf("%d snapshots kept", len(ss))
	}
	for _, s := range ss {
		night := -1
		for i, x := range nr.snaps {
			if x.ID == s.ID {
				night = i
			}
		}
		if night < len(nr.snaps)-7 {
			tb.Fatalf("prune kept snapshot %s, not one of the last 7 nights", s.ShortID())
		}
		for _, u := range s.Users {
			if nr.export(tb, s, u.Name) != nr.digests[night][u.Name] {
				tb.Errorf("night %d: %s writes out differently after prune", night+1, repo.DisplayName(u.Name))
			}
		}
		// Restored into a fresh Cyrus, the night shows over IMAP what the
		// live Cyrus showed that night.
		want := nr.views[night]
		if want == nil {
			tb.Fatalf("night %d: no IMAP view recorded", night+1)
		}
		if sameViews(tb, fmt.Sprintf("night %d restored after prune", night+1), nr.restoredViews(tb, s), want) {
			tb.Logf("night %d (snapshot %s), restored from the pruned repository into a fresh Cyrus: the admin's IMAP view (%d sections) is the one Cyrus served that night",
				night+1, s.ShortID(), len(want))
		}
	}
	return before, after
}

// TestNightlyScenario is the nightly scenario, to completion, at
// a small size (MBTOOL_NIGHTS_MESSAGES messages, default 2,000; and
// MBTOOL_NIGHTS nights, default 8; the is 100,000 and 30, on
// demand): every night writes out as that night's standalone dump; night
// 2 adds at most 3% of night 1's bytes; the repository stays within 1.2x
// of night 1 plus the new message bytes; prune --keep-daily 7 keeps the
// last 7 nights, each writing out as before and, restored into a fresh
// Cyrus, showing over IMAP what the live Cyrus showed that night; and the
// repository verifies with --read-data. (Times are BenchmarkNights' and scripts/bench's.)
func TestNightlyScenario(t *testing.T) {
	n := envInt("MBTOOL_NIGHTS_MESSAGES", 2000)
	count := envInt("MBTOOL_NIGHTS", 8)
	nr := nights(t, n, count, 0)
	if r := float64(nr.sizes[1]) / float64(nr.sizes[0]); r > 0.03 {
		t.Errorf("night 2 added %d bytes, %.2f%% of night 1's %d", nr.sizes[1], 100*r, nr.sizes[0])
	}
	var sumNew int64
	for _, x := range nr.newBytes[1:] {
		sumNew += x
	}
	total := dirBytes(nr.dir)
	if r := float64(total) / float64(nr.sizes[0]+sumNew); r > 1.2 {
		t.Errorf("the repository is %d bytes, %.3fx night 1 (%d) plus the new message bytes (%d)", total, r, nr.sizes[0], sumNew)
	}
	t.Logf("repository %d bytes: %.3fx night 1 plus the new message bytes", total, float64(total)/float64(nr.sizes[0]+sumNew))
	if count > 7 {
		before, after := nr.keepDaily(t)
		if after >= before {
			t.Errorf("prune --keep-daily 7 did not shrink the repository: %d bytes, %d before", after, before)
		}
	}
	cs, err := nr.r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil || len(cs.Findings) > 0 {
		t.Fatalf("verify --repo --read-data: %v %v", err, cs.Findings)
	}
}

// BenchmarkNights is the nightly scenario (nights) with
// MBTOOL_BENCH_MESSAGES messages (default 20,000; the figure is at
// 100,000) and MBTOOL_BENCH_NIGHTS nights (default 2; 30 for the issue's),
// timed: night 1 and night 2 of the partition after the first day in
// MBTOOL_BENCH_ROUNDS alternating rounds (default 5), each night's time
// and bytes, the repository against night 1 plus the new bytes, prune
// --keep-daily 7 (with more than 7 nights), and restores of the last night
// from the repository and from its standalone dump, alternating (medians
// of 3). scripts/bench -repo-nightly runs it and reports its lines. Run:
//
//	MBTOOL_REAL_CYRUS=1 MBTOOL_BENCH_MESSAGES=100000 MBTOOL_BENCH_NIGHTS=30 \
//	  go test -run '^$' -bench '^BenchmarkNights$' -benchtime 1x -timeout 6h ./repo/repodump
func BenchmarkNights(b *testing.B) {
	n := envInt("MBTOOL_BENCH_MESSAGES", 20000)
	count := max(2, envInt("MBTOOL_BENCH_NIGHTS", 2))
	// MBTOOL_BENCH_ROUNDS=0: bytes only, no timed rounds (a loaded machine).
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("MBTOOL_BENCH_ROUNDS")); err == nil && v >= 0 {
		rounds = v
	}
	b.ResetTimer()
	nr := nights(b, n, count, rounds)
	b.StopTimer()
	dir := nr.dir
	if rounds > 0 {
		b.ReportMetric(float64(nr.times[0].Milliseconds()), "night1-ms")
		b.ReportMetric(float64(median(nr.alt2))/float64(median(nr.alt1)), "night2/night1-time")
	}
	b.ReportMetric(float64(nr.sizes[1])/float64(nr.sizes[0]), "night2/night1-bytes")
	var sumNew int64
	for _, x := range nr.newBytes[1:] {
		sumNew += x
	}
	total := dirBytes(dir)
	b.ReportMetric(float64(total)/float64(nr.sizes[0]+sumNew), "repo/(night1+new)")
	b.Logf("repository %d bytes: %.3fx night 1 (%d) plus the new message bytes (%d)", total, float64(total)/float64(nr.sizes[0]+sumNew), nr.sizes[0], sumNew)

	if rounds > 0 {
		standalone := nr.standaloneFile(b)
		nr.restoreTimes(b, standalone)
		nr.verifyTimes(b, standalone, rounds)
	}
	if count > 7 {
		before, after := nr.keepDaily(b)
		b.ReportMetric(float64(after)/float64(before), "after-prune/before")
	}
}

// standaloneFile writes the last night's standalone dump (every user and
// the shared mailboxes, as dump --all writes it) to a file, as a user
// keeping full dumps would have it.
func (nr *nightsRun) standaloneFile(b *testing.B) string {
	f, err := os.Create(filepath.Join(b.TempDir(), "night.dlist"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := dump.Run(context.Background(), openSpool(b, nr.lab.Conf), f, dump.Options{All: true}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return f.Name()
}

// restoreTimes times restores of the last night from the repository and
// from its standalone dump file, alternating (medians of 3).
func (nr *nightsRun) restoreTimes(b *testing.B, standalone string) {
	ctx := context.Background()
	r := nr.r
	last := nr.snaps[len(nr.snaps)-1]
	var fromRepo, fromDump []time.Duration
	for k := 0; k < 3; k++ {
		for _, viaRepo := range []bool{k%2 == 0, k%2 != 0} {
			conf, err := gen.EmptyPartition(filepath.Join(b.TempDir(), "target"))
			if err != nil {
				b.Fatal(err)
			}
			target := openSpool(b, conf)
			start := time.Now()
			var in io.ReadCloser
			var idx *repo.Index
			if viaRepo {
				// As restore --repo reads it (commands/repo.go).
				if idx, err = r.LoadIndex(); err != nil {
					b.Fatal(err)
				}
				in = r.OpenDump(ctx, idx, last, repo.ExportOptions{ReaderRehashes: true, Unsealed: true})
			} else if in, err = os.Open(standalone); err != nil {
				b.Fatal(err)
			}
			_, err = restore.Run(ctx, target, in, restore.Options{Unsealed: viaRepo})
			in.Close()
			if idx != nil {
				idx.Close()
			}
			if err != nil {
				b.Fatal(err)
			}
			if viaRepo {
				fromRepo = append(fromRepo, time.Since(start))
			} else {
				fromDump = append(fromDump, time.Since(start))
			}
			os.RemoveAll(filepath.Dir(filepath.Dir(conf)))
		}
	}
	b.Logf("restore of the last night: from the repository %v, from its standalone dump %v", fromRepo, fromDump)
	b.ReportMetric(float64(median(fromDump))/float64(median(fromRepo)), "restore-speed-repo/dump")
}

// verifyTimes times verify --repo --read-data of the whole repository
// (every night's snapshot, every pack byte re-read and every file
// re-hashed) against verify of the last night's standalone dump file
// alone, alternating (medians of rounds). The dump side does less work
// than the repository's (one night of the nights the repository holds),
// so the ratio is a lower bound of the repository's against the
// equivalent standalone dumps.
func (nr *nightsRun) verifyTimes(b *testing.B, standalone string, rounds int) {
	ctx := context.Background()
	var fromRepo, fromDump []time.Duration
	for k := 0; k < rounds; k++ {
		for _, viaRepo := range []bool{k%2 == 0, k%2 != 0} {
			exec.Command("sync").Run()
			start := time.Now()
			if viaRepo {
				sum, err := nr.r.Check(ctx, repo.CheckOptions{ReadData: true})
				if err != nil || len(sum.Findings) > 0 {
					b.Fatalf("verify --repo --read-data: %v %v", err, sum)
				}
				fromRepo = append(fromRepo, time.Since(start))
				continue
			}
			f, err := os.Open(standalone)
			if err != nil {
				b.Fatal(err)
			}
			sum, err := verify.Run(ctx, f, verify.Options{})
			f.Close()
			if err != nil || !sum.OK() {
				b.Fatalf("verify of the standalone dump: %v %+v", err, sum)
			}
			fromDump = append(fromDump, time.Since(start))
		}
	}
	b.Logf("verify: --repo --read-data of %d nights %v, the last night's standalone dump %v", len(nr.snaps), fromRepo, fromDump)
	b.ReportMetric(float64(median(fromDump))/float64(median(fromRepo)), "verify-speed-repo/dump")
}
