package seencleanup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// envChild makes the test binary run one seen-cleanup --delete and exit:
// its value is "<imapd.conf>\n<undo file>".
const envChild = "MBTOOL_SEENCLEANUP_TEST_CHILD"

// envKillTrials names the environment variable that sets how many random
// kill -9 trials TestRealCyrusKill runs (default 5).
const envKillTrials = "MBTOOL_KILL_TRIALS"

func TestMain(m *testing.M) {
	if v := os.Getenv(envChild); v != "" {
		os.Exit(child(v))
	}
	os.Exit(m.Run())
}

func child(v string) int {
	conf, undo, _ := strings.Cut(v, "\n")
	cfg, err := partition.LoadConfig(conf)
	if err == nil {
		var spool *partition.Spool
		if spool, err = partition.Open(cfg); err == nil {
			_, err = Run(context.Background(), spool, Options{Users: []string{"alice", "bob"}, Delete: true, UndoFile: undo})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestRealCyrusKill kills seen-cleanup --delete, run as root against a
// live Cyrus lab, at every step of package cyrusfs it takes and at random
// moments until 5 runs were killed (MBTOOL_KILL_TRIALS=N for N). After each kill a rerun
// (with a new undo file) exits 0; the stale records are gone and each is in
// one of the undo files; the seen dbs are regular files of the user cyrus
// that cyr_dbtool finds consistent; Cyrus serves every mailbox and
// reconstruct -n reports nothing.
func TestRealCyrusKill(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: seen-cleanup gives the files to their owner")
	}
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	spool := openLabSpool(t, lab)
	dir := t.TempDir()
	trial := 0
	// run plants a stale record in alice's and bob's seen dbs, runs
	// seen-cleanup in a subprocess with env, killed after delay if delay
	// >= 0, then reruns it and checks. It returns whether the first run
	// was killed and how long it took.
	run := func(delay time.Duration, env ...string) (bool, time.Duration) {
		t.Helper()
		trial++
		stale := map[string]string{}
		for _, u := range []string{"alice", "bob"} {
			e, err := spool.Lookup("user." + u)
			if err != nil {
				t.Fatal(err)
			}
			v := "1 0 " + strconv.Itoa(trial) + " 0 1:" + strconv.Itoa(trial)
			lab.Tool(t, "cyr_dbtool", seenPath(t, spool, u), "twoskip", "set", e.UniqueID, v)
			stale[u] = e.UniqueID + "=" + v
		}
		undo := []string{filepath.Join(dir, fmt.Sprintf("undo%d-1", trial)), filepath.Join(dir, fmt.Sprintf("undo%d-2", trial))}
		start := time.Now()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(append(os.Environ(), envChild+"="+lab.Conf+"\n"+undo[0]), env...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if delay >= 0 {
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
		}
		err := cmd.Wait()
		took := time.Since(start)
		var ee *exec.ExitError
		wasKilled := err != nil && errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled()
		if err != nil && !wasKilled {
			t.Fatalf("trial %d: %v", trial, err)
		}
		cmd = exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"="+lab.Conf+"\n"+undo[1])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("trial %d: rerun: %v: %s", trial, err, out)
		}
		var saved []string
		for _, u := range undo {
			readUndoPath(u, func(s *syncrec.Seen) error {
				saved = append(saved, s.UniqueID+"="+string(seenValue(s)))
				return nil
			})
		}
		cyrus := partition.CyrusOwner()
		for _, u := range []string{"alice", "bob"} {
			got := records(t, spool, u)
			for _, r := range got {
				if r == stale[u] {
					t.Errorf("trial %d: %s's stale record %s still there", trial, u, r)
				}
			}
			found := false
			for _, s := range saved {
				found = found || s == stale[u]
			}
			if !found {
				t.Errorf("trial %d: %s's stale record %s in no undo file", trial, u, stale[u])
			}
			p := seenPath(t, spool, u)
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&syscall.S_IFMT != syscall.S_IFREG || int(st.Uid) != cyrus.UID || st.Mode&0o777 != 0o600 {
				t.Errorf("trial %d: %s: mode %o owner %d", trial, p, st.Mode, st.Uid)
			}
			if _, err := os.Lstat(p + ".NEW"); err == nil {
				t.Errorf("trial %d: %s.NEW left", trial, p)
			}
			lab.Tool(t, "cyr_dbtool", p, "twoskip", "consistent")
		}
		lab.CheckServes(t, "alice", "bob")
		return wasKilled, took
	}

	// Every step of package cyrusfs, from a trace.
	trace := filepath.Join(dir, "trace")
	run(-1, cyrusfs.EnvTrace+"="+trace)
	b, err := os.ReadFile(trace)
	if errors.Is(err, fs.ErrNotExist) {
		// No step of cyrusfs: the seen dbs are twoskip, changed in place
		// by transactions (cyrusdb's TestTxnKilled kills the writer before
		// each of a transaction's writes); a checkpoint, which replaces
		// the file through cyrusfs, is not due in a run this small.
		t.Log("the run took no step of package cyrusfs")
		b, err = nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	if len(b) > 0 {
		steps = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	for _, line := range steps {
		kind, rest, _ := strings.Cut(line, " ")
		n, _, _ := strings.Cut(rest, " ")
		if k, _ := run(-1, cyrusfs.EnvKillAt+"="+kind+":"+n); !k {
			t.Errorf("not killed at step %s %s", kind, n)
		}
		if t.Failed() {
			t.Fatalf("after a kill at step %s %s", kind, n)
		}
	}
	// Random moments within an untraced run's duration, until trials
	// runs were killed (a kill that lands after the end does not count).
	_, d := run(-1)
	trials := 5
	if n, err := strconv.Atoi(os.Getenv(envKillTrials)); err == nil {
		trials = n
	}
	r := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	killedRuns, attempts := 0, 0
	for ; killedRuns < trials && attempts < 4*trials; attempts++ {
		delay := time.Duration(r.Int64N(int64(d)))
		if k, _ := run(delay); k {
			killedRuns++
		}
		if t.Failed() {
			t.Fatalf("after a kill at %v", delay)
		}
	}
	if killedRuns < trials {
		t.Errorf("only %d of %d runs killed", killedRuns, attempts)
	}
	t.Logf("killed at %d steps; killed %d runs at random moments (%d tries within %v)", len(steps), killedRuns, attempts, d)
}

func seenPath(t *testing.T, spool *partition.Spool, user string) string {
	t.Helper()
	p, err := spool.SeenPath(user)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
