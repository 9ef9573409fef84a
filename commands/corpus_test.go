package commands

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures/hostile"
	"github.com/mbtool/mbtool/internal/cyruslab"
)

// startMeasured starts mbtool with args under mbtool-rusage and returns
// the process and a function that reads mbtool's peak RSS in bytes once
// the process has ended. The peak RSS of a child of this test process
// would not do: Linux carries the RSS high-water mark of the memory a
// process had before exec into its ru_maxrss, and a child starts in its
// parent's memory (vfork), so each child would report at least this test
// process's peak. mbtool-rusage is small, and its child's figure is
// mbtool's own; it passes SIGINT and SIGTERM on to mbtool, so p.signal
// reaches mbtool.
func startMeasured(t *testing.T, args ...string) (*proc, func() int64) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rusage")
	exe, err := exec.LookPath("mbtool-rusage")
	if err != nil {
		t.Fatalf("no mbtool-rusage in $PATH (TestMain sets it up): %v", err)
	}
	p := startExe(t, exe, procOptions{}, append([]string{out}, args...)...)
	return p, func() int64 {
		t.Helper()
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("mbtool %v: no rusage: %v\n%s", args, err, p.stderr.String())
		}
		rss, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return rss
	}
}

// runMeasured runs mbtool with args under mbtool-rusage (startMeasured)
// and returns its exit code, standard error and peak RSS in bytes.
func runMeasured(t *testing.T, args ...string) (int, string, int64) {
	t.Helper()
	p, rss := startMeasured(t, args...)
	code, stderr := p.wait(2 * time.Minute)
	return code, stderr, rss()
}

// rusageMain is mbtool-rusage FILE ARGS...: it runs mbtool ARGS, passing
// the streams and SIGINT and SIGTERM through, writes mbtool's peak RSS in
// bytes to FILE, and exits with mbtool's exit code.
func rusageMain() {
	cmd := exec.Command("mbtool", os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	err := cmd.Start()
	if err == nil {
		go func() {
			for s := range sigs {
				cmd.Process.Signal(s)
			}
		}()
		err = cmd.Wait()
	}
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "mbtool-rusage:", err)
		os.Exit(125)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	if err := os.WriteFile(os.Args[1], []byte(strconv.FormatInt(rss, 10)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mbtool-rusage:", err)
		os.Exit(125)
	}
	os.Exit(exitCode(cmd.ProcessState, nil))
}

// maxRSS is the bound on the peak RSS of every run over the corpus.
const maxRSS = 64 << 20

// TestHostileCorpus runs every dump of the hostile corpus (package
// fixtures/hostile: valid trailers, hostile content across every key of
// every APPLY command) through `mbtool verify`, `mbtool restore` and
// `mbtool restore --server`, each as a process of its own against one
// real Cyrus: the three agree with the case on accept or refuse, a refused
// offline restore leaves the target's configuration directory and
// partition byte-identical, no run
// panics or takes more than 64 MiB at its peak (rusage), and no Cyrus
// process dies of a signal (the lab's logs).
func TestHostileCorpus(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	t.Setenv(DefaultPasswordEnv, lab.Password)
	dir := t.TempDir()
	worst := map[string]int64{}
	only := os.Getenv("MBTOOL_CORPUS_RUN") // a regexp: run only the cases it matches (for debugging)
	for i, c := range hostile.Corpus() {
		if ok, _ := regexp.MatchString(only, c.Name); !ok {
			continue
		}
		name := filepath.Join(dir, fmt.Sprintf("%03d.dlist", i))
		if c.Compress {
			name += ".zst"
		}
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		runs := []struct {
			what string
			args []string
		}{
			{"verify", []string{"verify", "-q", name}},
			{"restore", []string{"restore", "-C", lab.Conf, "-q", name}},
			// Into another user, so as not to meet what the offline
			// restore just created.
			{"restore --server", []string{"restore", "--server", lab.SyncAddr, "--auth-user", lab.Admin, "-q",
				"--map-user", c.User + "=s" + c.User[1:], name}},
		}
		for _, r := range runs {
			var before string
			if r.what == "restore" {
				before = labSum(t, lab)
			}
			code, stderr, rss := runMeasured(t, r.args...)
			if r.what == "restore" && code != ExitOK {
				if after := labSum(t, lab); after != before {
					t.Errorf("%s (%s): restore refused (exit %d) but changed the target:\n%s",
						c.User, c.Name, code, diffLines(before, after))
				}
			}
			worst[r.what] = max(worst[r.what], rss)
			refused := code != ExitOK
			switch {
			case strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine "):
				t.Errorf("%s (%s): %s panicked:\n%s", c.User, c.Name, r.what, stderr)
			case code != ExitOK && code != ExitFailure && code != ExitUsage:
				t.Errorf("%s (%s): %s exit %d:\n%s", c.User, c.Name, r.what, code, stderr)
			case refused != c.Refuse:
				t.Errorf("%s (%s): %s exit %d, want refused=%v:\n%s", c.User, c.Name, r.what, code, c.Refuse, stderr)
			}
			if testing.Verbose() {
				t.Logf("%s (%s): %s exit %d, peak RSS %.1f MiB", c.User, c.Name, r.what, code, float64(rss)/(1<<20))
			}
			if rss > maxRSS {
				t.Errorf("%s (%s): %s peak RSS %d MiB, above %d MiB", c.User, c.Name, r.what, rss>>20, maxRSS>>20)
			}
		}
		os.Remove(name)
	}
	t.Logf("peak RSS over the corpus: verify %d MiB, restore %d MiB, restore --server %d MiB",
		worst["verify"]>>20, worst["restore"]>>20, worst["restore --server"]>>20)
	for _, log := range []string{lab.SyslogFile, lab.MasterLog()} {
		if log == "" {
			continue
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Errorf("lab log: %v", err)
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "signaled to death") || strings.Contains(l, "core dumped") {
				t.Errorf("a Cyrus process crashed: %s", l)
			}
		}
	}
}

// labSum is a checksum listing of a running lab's configuration directory
// and partition, leaving out what Cyrus itself rewrites while it runs (its
// process and socket directories).
func labSum(t testing.TB, lab *cyruslab.Lab) string {
	t.Helper()
	var keep []string
	for _, l := range strings.Split(treeSum(t, lab.ConfigDir), "\n") {
		if !strings.HasPrefix(l, "proc") && !strings.HasPrefix(l, "socket") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n") + "\n--\n" + treeSum(t, lab.Partition)
}
