package repodump

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/restore"
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
// users' INBOXes, through IMAP as the admin.
func day(b testing.TB, lab *cyruslab.Lab, spool *partition.Spool, n int, pct float64, rng *rand.Rand, nightNo int) {
	b.Helper()
	users, err := spool.Users()
	if err != nil {
		b.Fatal(err)
	}
	c := lab.IMAP(b, cyruslab.Admin)
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
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkNights is the nightly scenario on a live Cyrus with a
// generated partition of MBTOOL_BENCH_MESSAGES messages (default 20,000;
// the figure is at 100,000): night 1, then MBTOOL_BENCH_NIGHTS-1
// days of 1% new, 0.5% expunged and 2% flagged messages, each followed by
// a night; then prune --keep-daily 7. It reports the second night's time
// and bytes against the first's, the repository against the first night
// plus the new bytes, and restores of the last night from the repository
// and from its standalone dump, alternating (medians of 3). Run:
//
//	MBTOOL_REAL_CYRUS=1 MBTOOL_BENCH_MESSAGES=100000 go test -run '^$' -bench Nights -benchtime 1x ./repo/repodump
func BenchmarkNights(b *testing.B) {
	n := envInt("MBTOOL_BENCH_MESSAGES", 20000)
	nights := envInt("MBTOOL_BENCH_NIGHTS", 2)
	ctx := context.Background()
	lab := cyruslab.Start(b, cyruslab.Options{})
	spool := openSpool(b, lab.Conf)
	if _, err := gen.Restore(ctx, spool, gen.Options{Seed: 1, Messages: n}); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "repo")
	r, err := repo.OpenDirRepo(dir, true)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 1, 2, 0, 0, 0, time.Local)
	var times []time.Duration
	var sizes, newBytes []int64
	var snaps []*repo.Snapshot
	b.ResetTimer()
	for i := 0; i < nights; i++ {
		if i > 0 {
			day(b, lab, spool, n, 1, rng, i)
		}
		before := dirBytes(dir)
		start := time.Now()
		sum, err := Run(ctx, openSpool(b, lab.Conf), r, Options{All: true, Now: base.AddDate(0, 0, i), Host: "lab", Version: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		sizes = append(sizes, dirBytes(dir)-before)
		newBytes = append(newBytes, sum.NewBytes)
		snaps = append(snaps, sum.Snapshot)
		b.Logf("night %d: %s, %d bytes added (%d of new message files), %d users, %d messages",
			i+1, times[i].Round(time.Millisecond), sizes[i], sum.NewBytes, sum.Users, sum.Files)
	}
	b.StopTimer()
	b.ReportMetric(float64(times[0].Milliseconds()), "night1-ms")
	if nights > 1 {
		b.ReportMetric(float64(times[1])/float64(times[0]), "night2/night1-time")
		b.ReportMetric(float64(sizes[1])/float64(sizes[0]), "night2/night1-bytes")
	}
	var sumNew int64
	for _, x := range newBytes[1:] {
		sumNew += x
	}
	total := dirBytes(dir)
	b.ReportMetric(float64(total)/float64(sizes[0]+sumNew), "repo/(night1+new)")

	// Restore of the last night: from the repository, and from its
	// standalone dump, alternating.
	last := snaps[len(snaps)-1]
	var standalone bytes.Buffer
	if _, err := dump.Run(ctx, openSpool(b, lab.Conf), &standalone, dump.Options{All: true}); err != nil {
		b.Fatal(err)
	}
	var fromRepo, fromDump []time.Duration
	for k := 0; k < 3; k++ {
		for _, viaRepo := range []bool{true, false} {
			conf, err := gen.EmptyPartition(filepath.Join(b.TempDir(), "target"))
			if err != nil {
				b.Fatal(err)
			}
			target := openSpool(b, conf)
			start := time.Now()
			var in io.Reader = bytes.NewReader(standalone.Bytes())
			if viaRepo {
				pr, pw := io.Pipe()
				go func() {
					idx, err := r.LoadIndex()
					if err == nil {
						_, err = r.WriteDump(ctx, idx, last, pw, repo.ExportOptions{})
						idx.Close()
					}
					pw.CloseWithError(err)
				}()
				in = pr
			}
			if _, err := restore.Run(ctx, target, in, restore.Options{}); err != nil {
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

	if nights > 7 {
		h := func(s *repo.Snapshot) [32]byte {
			idx, err := r.LoadIndex()
			if err != nil {
				b.Fatal(err)
			}
			defer idx.Close()
			hh := blake3.New()
			if _, err := r.WriteDump(ctx, idx, s, hh, repo.ExportOptions{}); err != nil {
				b.Fatal(err)
			}
			return [32]byte(hh.Sum(nil))
		}
		want := map[string][32]byte{}
		for _, s := range snaps[len(snaps)-7:] {
			want[s.ID] = h(s)
		}
		ps, err := r.Prune(ctx, repo.PruneOptions{Policy: repo.Policy{Daily: 7}})
		if err != nil {
			b.Fatal(err)
		}
		after := dirBytes(dir)
		var keptNew int64
		for _, x := range newBytes[len(newBytes)-6:] {
			keptNew += x
		}
		b.Logf("prune --keep-daily 7: %d bytes before, %d after (%d packs removed, %d rewritten)", total, after, ps.PacksRemoved, ps.PacksRepacked)
		b.ReportMetric(float64(after)/float64(total), "after-prune/before")
		ss, err := r.Snapshots()
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range ss {
			if h(s) != want[s.ID] {
				b.Errorf("snapshot %s writes out differently after prune", s.ShortID())
			}
		}
		if len(ss) != 7 {
			b.Errorf("%d snapshots kept", len(ss))
		}
	}
}
