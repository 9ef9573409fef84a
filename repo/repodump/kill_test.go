package repodump

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
)

// TestMain lets the test binary act as the process that kill -9 hits.
func TestMain(m *testing.M) {
	if mode := os.Getenv("MBTOOL_KILL_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

func child(mode string) int {
	if mode != "users" {
		repo.PackTarget = 256 << 10 // many packs: many points to be killed between
	}
	r, err := repo.OpenDirRepo(os.Getenv("MBTOOL_KILL_REPO"), true)
	if err == nil {
		switch mode {
		case "users": // TestConcurrentProcessesDuplicate
			var cfg *partition.Config
			if cfg, err = partition.LoadConfig(os.Getenv("MBTOOL_KILL_CONF")); err == nil {
				var s *partition.Spool
				if s, err = partition.Open(cfg); err == nil {
					_, err = Run(context.Background(), s, r, Options{Users: strings.Split(os.Getenv("MBTOOL_KILL_USERS"), ","),
						Host: "h", Version: "v", Now: night})
				}
			}
		case "dump":
			var cfg *partition.Config
			if cfg, err = partition.LoadConfig(os.Getenv("MBTOOL_KILL_CONF")); err == nil {
				var s *partition.Spool
				if s, err = partition.Open(cfg); err == nil {
					_, err = Run(context.Background(), s, r, Options{All: true, Host: "h", Version: "v", Jobs: 2, Now: night.AddDate(0, 0, -1)})
				}
			}
		case "prune":
			_, err = r.Prune(context.Background(), repo.PruneOptions{Policy: repo.Policy{Last: 1}})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// killAt runs the child in mode and kills it with SIGKILL after d (or
// lets it finish first).
func killAt(t *testing.T, mode, conf, dir string, d time.Duration) (killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MBTOOL_KILL_CHILD="+mode, "MBTOOL_KILL_CONF="+conf, "MBTOOL_KILL_REPO="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s finished with %v: %s", mode, err, stderr.String())
		}
		return false
	case <-time.After(d):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

func verifyRepo(t *testing.T, r *repo.Repo, what string) *repo.CheckSummary {
	t.Helper()
	sum, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("%s: verify --repo: %v", what, err)
	}
	for _, f := range sum.Findings {
		t.Errorf("%s: verify --repo: %s", what, f)
	}
	return sum
}

// TestKill kills dump --repo and prune with SIGKILL at random points: the
// repository verifies (every snapshot complete), the next run completes,
// and what a snapshot holds writes out as the standalone dump of the
// partition it came from. MBTOOL_KILL_TRIALS sets the number of trials
// (2 by default; 30 for the figure).
func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	trials := 2
	if s := os.Getenv("MBTOOL_KILL_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	base := t.TempDir()
	var confs [2]string
	var spools [2]*partition.Spool
	for i := range confs {
		c, _, err := gen.Partition(ctx, filepath.Join(base, fmt.Sprint("p", i)),
			gen.Options{Seed: uint64(40 + i), Messages: 2000, MeanSize: 6000, PerMailbox: 300})
		if err != nil {
			t.Fatal(err)
		}
		confs[i], spools[i] = c, openSpool(t, c)
	}
	users, err := spools[0].Users()
	if err != nil {
		t.Fatal(err)
	}
	user := users[len(users)/2]
	standaloneOf := func(s *partition.Spool, at time.Time) []byte {
		var buf bytes.Buffer
		if _, err := dump.Run(ctx, s, &buf, dump.Options{Users: []string{user}, Host: "h", Version: "v", Now: at}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	want := [2][]byte{standaloneOf(spools[0], night), standaloneOf(spools[1], night.AddDate(0, 0, 1))}
	// How long a whole dump takes, to spread the kills over it.
	start := time.Now()
	scratch, err := repo.OpenDirRepo(filepath.Join(base, "scratch"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, spools[0], scratch, Options{All: true}); err != nil {
		t.Fatal(err)
	}
	full := time.Since(start) + 200*time.Millisecond

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < trials; i++ {
		dir := filepath.Join(base, fmt.Sprint("repo", i))
		d := time.Duration(rng.Int64N(int64(full)))
		killed := killAt(t, "dump", confs[0], dir, d)
		r, err := repo.OpenDirRepo(dir, true)
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("trial %d, dump killed", i)
		cs := verifyRepo(t, r, what)
		t.Logf("%s after %s (killed: %v): %d snapshots, %d packs (%d unreferenced)", what, d, killed, cs.Snapshots, cs.Packs, cs.UnreferencedPacks)
		for n := range spools {
			sum, err := Run(ctx, spools[n], r, Options{All: true, Host: "h", Version: "v", Now: night.AddDate(0, 0, n)})
			if err != nil {
				t.Fatalf("%s: the next dump: %v", what, err)
			}
			if got := export(t, r, sum.Snapshot, user); !bytes.Equal(got, want[n]) {
				t.Fatalf("%s: night %d of %s writes out differently from its standalone dump", what, n, user)
			}
		}
		verifyRepo(t, r, what+", then two nights")

		d = time.Duration(rng.Int64N(int64(full / 4)))
		killed = killAt(t, "prune", "", dir, d)
		what = fmt.Sprintf("trial %d, prune killed", i)
		cs = verifyRepo(t, r, what)
		t.Logf("%s after %s (killed: %v): %d snapshots, %d packs (%d unreferenced)", what, d, killed, cs.Snapshots, cs.Packs, cs.UnreferencedPacks)
		ss, err := r.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		last := ss[len(ss)-1]
		if got := export(t, r, last, user); !bytes.Equal(got, want[1]) {
			t.Fatalf("%s: the kept night writes out differently", what)
		}
		if _, err := r.Prune(ctx, repo.PruneOptions{Policy: repo.Policy{Last: 1}}); err != nil {
			t.Fatalf("%s: the next prune: %v", what, err)
		}
		if sum := verifyRepo(t, r, what+", then prune"); sum.UnreferencedPacks+sum.UnreferencedStates != 0 || sum.Snapshots != 1 {
			t.Errorf("%s: after the next prune: %+v", what, sum)
		}
		if got := export(t, r, last, user); !bytes.Equal(got, want[1]) {
			t.Fatalf("%s, then prune: the kept night writes out differently", what)
		}
	}
}
