package remote

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/benchstat"
	"github.com/mbtool/mbtool/internal/cyruslab"
)

// EnvBench turns on TestServerThroughput, which takes minutes.
const EnvBench = "MBTOOL_BENCH_SERVER"

// TestServerThroughput measures `mbtool restore --server` next to Cyrus's
// own sync_client pushing the same user to the same sync_server, in the
// same run, alternating the two (docs/benchmarks.md says how): each run
// starts with the user removed from the target (APPLY UNUSER). It also
// times `mbtool dump --server` next to an offline `mbtool dump` of the
// same user. Opt-in; with MBTOOL_BENCH_UPDATE=1 it rewrites the table in
// docs/server.md (between its marker comments), on a quiet machine:
//
//	MBTOOL_BENCH_SERVER=1 MBTOOL_BENCH_UPDATE=1 [MBTOOL_BENCH_MESSAGES=10000] [MBTOOL_BENCH_RUNS=5] \
//	    [MBTOOL_BENCH_BASELINE=/path/to/older/mbtool] go test -run ServerThroughput -v ./remote
func TestServerThroughput(t *testing.T) {
	if os.Getenv(EnvBench) != "1" {
		t.Skipf("set %s=1 to run (minutes)", EnvBench)
	}
	messages := 10000
	if n, err := strconv.Atoi(os.Getenv("MBTOOL_BENCH_MESSAGES")); err == nil && n > 0 {
		messages = n
	}
	runs := 5
	if n, err := strconv.Atoi(os.Getenv("MBTOOL_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	dst := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	src := cyruslab.Start(t, cyruslab.Options{SyncPort: true, ExtraConfig: fmt.Sprintf(
		"sync_host: %s\nsync_port: %s\nsync_authname: %s\nsync_password: %s\nsync_try_imap: no\n",
		strings.Split(dst.SyncAddr, ":")[0], strings.Split(dst.SyncAddr, ":")[1], dst.Admin, dst.Password)})
	defer noCrash(t, dst)
	work := t.TempDir()

	// The content: generated, loaded into the source over the protocol.
	genFile := filepath.Join(work, "gen.dump")
	f, err := os.Create(genFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := gen.WriteDump(f, gen.Options{Seed: 1, Messages: messages})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sum := restoreFile(t, genFile, dialer(src, src.SyncAddr))
	t.Logf("generated %d messages (%d files, %.1f MB), loaded into the source over sync_server in %s (%d mailboxes)",
		st.Records, st.Messages, float64(st.Bytes)/1e6, time.Since(start).Round(time.Millisecond), sum.Applied())
	user := "user0001"
	userDump := filepath.Join(work, "user.dump")
	var buf bytes.Buffer
	if _, err := dump.Run(context.Background(), openSpool(t, src.Conf), &buf, dump.Options{Users: []string{user}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userDump, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fileBytes := int64(buf.Len())

	bin := fixtures.BuildMbtool(t)
	env := append(os.Environ(), "MBTOOL_PASSWORD="+dst.Password)
	mbtool := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		return cmd
	}
	syncClient := func() *exec.Cmd {
		cmd, err := src.Command("sync_client", "-u", user)
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	type result struct{ secs, rssMiB []float64 }
	res := map[string]*result{}
	// Two pairs, each an mbtool command and what it stands next to; in
	// every round each pair runs back to back, the order flipping from
	// one round to the next.
	pairs := [][2]string{{"sync_client -u", "mbtool restore --server"}, {"mbtool dump (offline)", "mbtool dump --server"}}
	// MBTOOL_BENCH_BASELINE names another mbtool binary (say, main before
	// a change) whose dump --server alternates with this one's.
	baseline := os.Getenv("MBTOOL_BENCH_BASELINE")
	if baseline != "" {
		pairs = append(pairs, [2]string{"baseline dump --server", "mbtool dump --server (again)"})
	}
	for _, p := range pairs {
		res[p[0]], res[p[1]] = &result{}, &result{}
	}
	for i := 0; i < runs; i++ {
		for _, p := range pairs {
			order := []string{p[0], p[1]}
			if i%2 == 1 {
				order = []string{p[1], p[0]}
			}
			for _, k := range order {
				var cmd *exec.Cmd
				switch k {
				case "sync_client -u":
					unuser(t, dst, user)
					cmd = syncClient()
				case "mbtool restore --server":
					unuser(t, dst, user)
					cmd = mbtool("restore", "-q", "--server", dst.SyncAddr, "--auth-user", dst.Admin, userDump)
				case "mbtool dump (offline)":
					cmd = mbtool("dump", "-q", "-C", src.Conf, "--user", user, "-o", filepath.Join(work, "off.dump"))
				case "mbtool dump --server", "mbtool dump --server (again)":
					cmd = mbtool("dump", "-q", "--server", src.SyncAddr, "--auth-user", src.Admin, "--user", user, "-o", filepath.Join(work, "on.dump"))
				case "baseline dump --server":
					cmd = mbtool("dump", "-q", "--server", src.SyncAddr, "--auth-user", src.Admin, "--user", user, "-o", filepath.Join(work, "base.dump"))
					cmd.Path, cmd.Args[0] = baseline, baseline
				}
				secs, rss := timed(t, cmd)
				res[k].secs = append(res[k].secs, secs)
				res[k].rssMiB = append(res[k].rssMiB, rss)
				t.Logf("round %d %-26s %7.2f s %6.0f MiB", i+1, k, secs, rss)
				if strings.HasPrefix(k, "sync_client") || strings.Contains(k, "restore") {
					if got, want := userRecords(t, dst, user), userRecords(t, src, user); got != want {
						t.Errorf("%s: target has %s, source %s", k, got, want)
					}
				}
			}
		}
	}
	files, bytesIn := countFiles(buf.Bytes()), filesBytes(buf.Bytes())
	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `MBTOOL_BENCH_SERVER=1 MBTOOL_BENCH_MESSAGES=%d MBTOOL_BENCH_RUNS=%d go test -run ServerThroughput ./remote` on %s, %s; "+
		"loopback, COMPRESS DEFLATE on. %s: %d message files, %.1f MB in files, dump %.1f MB; %d alternating rounds; "+
		"seconds, msg/s and MB/s as median (min–max), peak RSS the largest of the rounds.\n\n",
		messages, runs, benchstat.Machine(), time.Now().UTC().Format("2006-01-02 15:04 MST"),
		user, files, float64(bytesIn)/1e6, float64(fileBytes)/1e6, runs)
	b.WriteString("| command | seconds | msg/s | MB/s | peak RSS MiB | time ratio, round by round |\n|---|---|---|---|---|---|\n")
	var warn []string
	for _, p := range pairs {
		for j, k := range p {
			s := benchstat.Summarize(res[k].secs)
			// Rates: the fastest run gives the highest rate.
			rate := func(n float64, verb string) string {
				return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", n/s.Med, n/s.Max, n/s.Min)
			}
			ratio := ""
			if j == 1 {
				ratio = "`" + p[0] + "` / this: " + benchstat.Summarize(benchstat.Ratios(res[p[0]].secs, res[k].secs)).Format("%.2fx")
			}
			rss := 0.0
			for _, r := range res[k].rssMiB {
				rss = max(rss, r)
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %.0f | %s |\n", k, s.Format("%.2f"), rate(float64(files), "%.0f"),
				rate(float64(bytesIn)/1e6, "%.1f"), rss, ratio)
			if s.Noisy() {
				warn = append(warn, fmt.Sprintf("\n**Warning:** `%s` spread %.0f%% of its median (more than %.0f%%): the machine was not quiet; rerun.\n",
					k, s.Spread()*100, benchstat.MaxSpread*100))
			}
		}
	}
	if runs < 5 {
		warn = append(warn, fmt.Sprintf("\n**Warning:** only %d round(s): a spread needs at least 5; do not publish.\n", runs))
	}
	b.WriteString(strings.Join(warn, ""))
	t.Log("\n" + b.String())
	if os.Getenv("MBTOOL_BENCH_UPDATE") == "1" {
		if err := benchstat.UpdateFile("../docs/server.md", "server throughput", b.String()); err != nil {
			t.Fatal(err)
		}
		t.Log("updated docs/server.md")
	}
}

func restoreFile(t *testing.T, name string, connect Connect) *RestoreSummary {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := Restore(context.Background(), f, connect, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// unuser removes a user and all its mailboxes from the lab, at once.
func unuser(t *testing.T, lab *cyruslab.Lab, user string) {
	t.Helper()
	c, err := dialer(lab, lab.SyncAddr)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Line("APPLY", "UNUSER", dlist.NewAtom(user), nil); err != nil {
		t.Fatal(err)
	}
}

// userRecords summarises a user's mailboxes on a lab: name, LAST_UID,
// HIGHESTMODSEQ and SYNC_CRC of each.
func userRecords(t *testing.T, lab *cyruslab.Lab, user string) string {
	t.Helper()
	s := listUser(t, lab, user)
	re := regexp.MustCompile(`MBOXNAME (\S+) .*?SYNC_CRC (\d+) .*?LAST_UID (\d+) HIGHESTMODSEQ (\d+)`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Join(m[1:], " "))
	}
	return strings.Join(out, "; ")
}

// timed runs cmd under /usr/bin/time -v and returns its wall time and
// peak RSS in MiB.
func timed(t *testing.T, cmd *exec.Cmd) (float64, float64) {
	t.Helper()
	cmd.Args = append([]string{"/usr/bin/time", "-v", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/usr/bin/time"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	secs := time.Since(start).Seconds()
	rss := 0.0
	if m := regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`).FindStringSubmatch(stderr.String()); m != nil {
		kb, _ := strconv.ParseFloat(m[1], 64)
		rss = kb / 1024
	}
	return secs, rss
}

var fileRE = regexp.MustCompile(`%\{\S+ [0-9a-f]{40} (\d+)\}\r\n`)

func countFiles(b []byte) int { return len(fileRE.FindAllIndex(b, -1)) }

func filesBytes(b []byte) int64 {
	var n int64
	for _, m := range fileRE.FindAllSubmatch(b, -1) {
		k, _ := strconv.ParseInt(string(m[1]), 10, 64)
		n += k
	}
	return n
}
