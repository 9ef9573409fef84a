package remote

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/cyruslab"
)

// EnvBench turns on TestServerThroughput, which takes minutes.
const EnvBench = "MBTOOL_BENCH_SERVER"

// TestServerThroughput measures `mbtool restore --server` next to Cyrus's
// own sync_client pushing the same user to the same sync_server, in the
// same run, alternating the two (BENCHMARKING.md): each run starts with the
// user removed from the target (APPLY UNUSER). It also times `mbtool dump
// --server` next to an offline `mbtool dump` of the same user. Opt-in:
//
//	MBTOOL_BENCH_SERVER=1 [MBTOOL_BENCH_MESSAGES=10000] go test -run ServerThroughput -v ./remote
func TestServerThroughput(t *testing.T) {
	if os.Getenv(EnvBench) != "1" {
		t.Skipf("set %s=1 to run (minutes)", EnvBench)
	}
	messages := 10000
	if n, err := strconv.Atoi(os.Getenv("MBTOOL_BENCH_MESSAGES")); err == nil && n > 0 {
		messages = n
	}
	const runs = 3
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

	bin := filepath.Join(work, "mbtool")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mbtool/mbtool").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
	order := []string{"sync_client -u", "mbtool restore --server", "mbtool dump (offline)", "mbtool dump --server"}
	for _, k := range order {
		res[k] = &result{}
	}
	for i := 0; i < runs; i++ {
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
			case "mbtool dump --server":
				cmd = mbtool("dump", "-q", "--server", src.SyncAddr, "--auth-user", src.Admin, "--user", user, "-o", filepath.Join(work, "on.dump"))
			}
			secs, rss := timed(t, cmd)
			res[k].secs = append(res[k].secs, secs)
			res[k].rssMiB = append(res[k].rssMiB, rss)
			if strings.HasPrefix(k, "sync_client") || strings.Contains(k, "restore") {
				if got, want := userRecords(t, dst, user), userRecords(t, src, user); got != want {
					t.Errorf("%s: target has %s, source %s", k, got, want)
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s: %d message files, %.1f MB in files, dump %.1f MB; median of %d alternated runs:\n",
		user, countFiles(buf.Bytes()), float64(filesBytes(buf.Bytes()))/1e6, float64(fileBytes)/1e6, runs)
	files, bytesIn := countFiles(buf.Bytes()), filesBytes(buf.Bytes())
	base := median(res["sync_client -u"].secs)
	for _, k := range order {
		m := median(res[k].secs)
		fmt.Fprintf(&b, "  %-26s %7.2f s  %7.0f msg/s  %6.1f MB/s  %6.0f MiB RSS", k, m, float64(files)/m, float64(bytesIn)/m/1e6, median(res[k].rssMiB))
		if strings.Contains(k, "restore") {
			fmt.Fprintf(&b, "  (%.2fx sync_client)", base/m)
		}
		fmt.Fprintf(&b, "  runs %v\n", res[k].secs)
	}
	t.Log(b.String())
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

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
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
