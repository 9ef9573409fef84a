package restore

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// EnvKillTrials names the environment variable that sets how many runs
// TestRealCyrusKill kills at random moments (default 3). For
// TestRealCyrusKillPoints, "all" tries every traced step of package cyrusfs
// and "outside" every step outside the staging directory (where the files
// Cyrus sees are made), instead of each kind's first such step and last.
const EnvKillTrials = "MBTOOL_KILL_TRIALS"

// startLabChild starts a restore of dumpPath into the spool of the
// imapd.conf conf in a subprocess, as the Cyrus user's files are written
// in production: by root, giving them to the user cyrus. env is added to
// its environment (the kill hooks).
func startLabChild(t *testing.T, conf, dumpPath string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+conf+"\n"+dumpPath, envChildOwner+"=cyrus")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// killSetup makes the source lab, its dump of alice and bob, and what
// Cyrus serves of them.
func killSetup(t *testing.T) (dumpPath string, want map[string]map[string]imapView) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: restore gives the files to the user cyrus")
	}
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	dumpPath = filepath.Join(cyruslab.TempDir(t), "dump")
	if err := os.WriteFile(dumpPath, labDump(t, src, "alice", "bob"), 0o600); err != nil {
		t.Fatal(err)
	}
	want = map[string]map[string]imapView{}
	for _, u := range []string{"alice", "bob"} {
		want[u] = userViews(t, src, u)
	}
	src.Stop(t)
	return dumpPath, want
}

// killTrial restores into a fresh, running lab in a subprocess started
// with env, kills it with SIGKILL after delay if delay >= 0, reruns the
// restore to the end, and checks that Cyrus serves every mailbox as the
// source did, that reconstruct -n finds nothing to
// repair, and that every file and directory of the lab still belongs to
// the user cyrus with no temporary name left. It reports whether the
// first run was killed.
func killTrial(t *testing.T, dumpPath string, want map[string]map[string]imapView, delay time.Duration, env ...string) (wasKilled bool, took time.Duration) {
	t.Helper()
	lab := cyruslab.Start(t, cyruslab.Options{})
	defer lab.Stop(t)
	start := time.Now()
	cmd := startLabChild(t, lab.Conf, dumpPath, env...)
	if delay >= 0 {
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
	}
	err := cmd.Wait()
	took = time.Since(start)
	wasKilled = killed(err)
	if err != nil && !wasKilled {
		t.Fatalf("restore: %v", err)
	}
	if err := startLabChild(t, lab.Conf, dumpPath).Wait(); err != nil {
		t.Fatalf("rerun after the kill: %v", err)
	}
	checkOwned(t, lab)
	for _, u := range []string{"alice", "bob"} {
		compareAll(t, u, userViews(t, lab, u), want[u])
	}
	lab.CheckServes(t, "alice", "bob")
	return wasKilled, took
}

// checkOwned checks that every file and directory under the lab's
// configuration directory, partition and lock directory belongs to the
// user cyrus, and that no temporary name of package cyrusfs is left.
func checkOwned(t *testing.T, lab *cyruslab.Lab) {
	t.Helper()
	cyrus := partition.CyrusOwner()
	for _, root := range []string{lab.ConfigDir, lab.Partition, filepath.Join(lab.Dir, "run", "lock")} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Error(err)
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				t.Error(err)
				return nil
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != cyrus.UID {
				t.Errorf("%s: owner %d, mode %v; want the user cyrus (%d)", p, st.Uid, fi.Mode(), cyrus.UID)
			}
			if strings.HasPrefix(d.Name(), ".mbtool-") {
				t.Errorf("%s left behind", p)
			}
			return nil
		})
	}
}

// TestRealCyrusKillPoints kills restores as root into a real Cyrus lab at
// steps of package cyrusfs (issue 13 finding 4): before a file is made,
// after it is made but before its owner is set, after the owner is set but
// before it has a name, before and after it gets its name, before a
// directory is made, before and after a rename; and at the crash points of
// restore's commit phase. A first run traces every step (with its path);
// each kind is then tried at its first step outside the staging directory
// (where the files Cyrus will see are made), at its first inside it (the
// private staging directory, where a mailbox directory or file is made
// under its name before its owner is set: the rerun must remove it) and
// at its last, and at two commit crash points; with MBTOOL_KILL_TRIALS=all at every step, with
// MBTOOL_KILL_TRIALS=outside at every step outside the staging directory
// (and every commit crash point in both cases). After
// each kill a rerun completes and Cyrus serves every mailbox, every file
// still owned by the user cyrus.
func TestRealCyrusKillPoints(t *testing.T) {
	dumpPath, want := killSetup(t)
	trace := filepath.Join(t.TempDir(), "trace")
	killTrial(t, dumpPath, want, -1, cyrusfs.EnvTrace+"="+trace)
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	mode := os.Getenv(EnvKillTrials)
	all := mode == "all" || mode == "outside"
	var points []string
	first, firstIn, last := map[string]string{}, map[string]string{}, map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		n, path, _ := strings.Cut(rest, " ")
		at := kind + ":" + n
		if mode == "all" || mode == "outside" && !strings.Contains(path, stagePrefix) {
			points = append(points, at)
		}
		if _, ok := first[kind]; !ok && !strings.Contains(path, stagePrefix) {
			first[kind] = at
		}
		if _, ok := firstIn[kind]; !ok && strings.Contains(path, stagePrefix) {
			firstIn[kind] = at
		}
		last[kind] = at
	}
	if !all {
		for _, kind := range cyrusfs.StepKinds {
			if last[kind] == "" {
				t.Errorf("no step of kind %s", kind)
			}
			for _, at := range []string{first[kind], firstIn[kind], last[kind]} {
				if at != "" && !slices.Contains(points, at) {
					points = append(points, at)
				}
			}
		}
	}
	t.Logf("%d steps traced; killing at %d of them", strings.Count(string(b), "\n"), len(points))
	for _, at := range points {
		if k, _ := killTrial(t, dumpPath, want, -1, cyrusfs.EnvKillAt+"="+at); !k {
			t.Errorf("not killed at step %s", at)
		}
		if t.Failed() {
			t.Fatalf("after a kill at step %s", at)
		}
	}
	for n := 1; all || n <= 2; n++ {
		if k, _ := killTrial(t, dumpPath, want, -1, fmt.Sprintf("%s=%d", EnvCrashAt, n)); !k {
			break // fewer than n crash points
		}
		if t.Failed() {
			t.Fatalf("after a kill at commit crash point %d", n)
		}
	}
}

// TestRealCyrusKill kills restores as root into a real Cyrus lab at random
// moments until 3 runs were killed (MBTOOL_KILL_TRIALS=N for N), each
// followed by a rerun that must complete with Cyrus serving every mailbox.
func TestRealCyrusKill(t *testing.T) {
	dumpPath, want := killSetup(t)
	trials := 3
	if n, err := strconv.Atoi(os.Getenv(EnvKillTrials)); err == nil {
		trials = n
	}
	_, d := killTrial(t, dumpPath, want, -1)
	r := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	killedRuns, attempts := 0, 0
	for ; killedRuns < trials && attempts < 4*trials; attempts++ {
		delay := time.Duration(r.Int64N(int64(d)))
		if k, _ := killTrial(t, dumpPath, want, delay); k {
			killedRuns++
		} else {
			// The run ended first: the first run, which set d, was
			// slower than this one (a loaded machine). Aim earlier.
			d = max(d/2, time.Millisecond)
		}
		if t.Failed() {
			t.Fatalf("after a kill at %v", delay)
		}
	}
	if killedRuns < trials {
		t.Errorf("only %d of %d runs killed", killedRuns, attempts)
	}
	t.Logf("%d runs killed at random moments (%d tries within %v)", killedRuns, attempts, d)
}
