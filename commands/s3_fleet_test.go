package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/s3lab"
)

// The tests of this file run mbtool as real processes against a real
// SeaweedFS (internal/s3lab) with --repo s3://BUCKET/PREFIX: several
// hosts dumping into one repository at once while retention runs, a
// volume server killed during a dump, the S3 gateway restarted during a
// restore, injected 503s, timeouts and dropped connections, and a run
// killed in the middle of a multipart upload. The invariants after each:
// every run either completes or fails cleanly (exit 0, or 1 with an error
// line, never a crash), the next run completes, `verify --repo
// --read-data` passes, and every snapshot writes out a dump that verify
// --against finds identical to the partition it was taken from.

// s3Partition generates a partition of users users (user0001, ...) with
// messages messages under t.TempDir and returns its imapd.conf and users.
func s3Partition(t *testing.T, seed uint64, users, messages int, meanSize int64) (string, []string) {
	t.Helper()
	conf, _, err := gen.Partition(context.Background(), filepath.Join(t.TempDir(), "spool"),
		gen.Options{Seed: seed, Messages: messages, MeanSize: meanSize, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	spool := openSpool(t, conf)
	names, err := spool.Users()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != users {
		t.Fatalf("generated %d users, want %d", len(names), users)
	}
	return conf, names
}

// s3Mbtool starts mbtool with st's environment (AWS_* for the store) and
// extra settings.
func s3Mbtool(t *testing.T, st *s3lab.Store, extra []string, args ...string) *proc {
	t.Helper()
	return startMbtool(t, procOptions{env: append(st.Env(), extra...)}, args...)
}

// s3Run runs mbtool to the end and returns its exit code, stdout and
// stderr.
func s3Run(t *testing.T, st *s3lab.Store, args ...string) (int, string, string) {
	t.Helper()
	p := s3Mbtool(t, st, nil, args...)
	code, stderr := p.wait(procTimeout)
	return code, p.stdout.String(), stderr
}

// s3Must runs mbtool and fails the test unless it exits 0.
func s3Must(t *testing.T, st *s3lab.Store, args ...string) string {
	t.Helper()
	code, stdout, stderr := s3Run(t, st, args...)
	if code != ExitOK {
		t.Fatalf("mbtool %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// cleanEnd checks that a run that may meet faults either completed or
// failed cleanly: exit 0, or exit 1 with an "mbtool: error:" line and no
// Go panic or fatal error.
func cleanEnd(t *testing.T, what string, code int, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "fatal error:") || strings.Contains(stderr, "goroutine ") {
		t.Fatalf("%s crashed (exit %d):\n%s", what, code, stderr)
	}
	switch code {
	case ExitOK:
	case ExitFailure:
		if firstLine(stderr, "mbtool: error:") == "" {
			t.Fatalf("%s: exit 1 without an error line:\n%s", what, stderr)
		}
		t.Logf("%s failed cleanly: %s", what, firstLine(stderr, "mbtool: error:"))
	default:
		t.Fatalf("%s: exit %d (want 0, or 1 failing cleanly):\n%s", what, code, stderr)
	}
}

type s3Snapshot struct {
	ID    string   `json:"id"`
	Users []string `json:"users"`
}

// s3Snapshots lists the repository's snapshots.
func s3Snapshots(t *testing.T, st *s3lab.Store, url string) []s3Snapshot {
	t.Helper()
	out := s3Must(t, st, "list", "--repo", url, "--json")
	var o struct {
		Listing []s3Snapshot `json:"listing"`
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return o.Listing
}

// s3Check verifies the repository with --read-data, and checks that each
// of its snapshots that holds one of users writes that user out as a dump
// identical to the live partition of conf (verify --against). It returns
// the snapshots.
func s3Check(t *testing.T, st *s3lab.Store, url, conf string, users []string) []s3Snapshot {
	t.Helper()
	if code, _, stderr := s3Run(t, st, "verify", "--repo", url, "--read-data"); code != ExitOK {
		t.Fatalf("verify --repo %s --read-data: exit %d\n%s", url, code, stderr)
	}
	ss := s3Snapshots(t, st, url)
	dir := t.TempDir()
	for _, s := range ss {
		for _, u := range s.Users {
			if !slices.Contains(users, u) {
				continue
			}
			f := filepath.Join(dir, s.ID[:12]+"-"+u+".dlist")
			s3Must(t, st, "export", "--repo", url, "--snapshot", s.ID, "--user", u, "-o", f)
			if code, stdout, stderr := s3Run(t, st, "verify", "-C", conf, "--against", f); code != ExitOK {
				t.Fatalf("snapshot %s, user %s: verify --against the partition: exit %d\n%s%s", s.ID[:12], u, code, stdout, stderr)
			}
		}
	}
	return ss
}

// s3SameAsSource checks that user u of the partition of tconf (where a
// test restored it) dumps back identical to the source partition of conf.
func s3SameAsSource(t *testing.T, st *s3lab.Store, tconf, conf, u, what string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), u+".dlist")
	s3Must(t, st, "dump", "-C", tconf, "--user", u, "-o", f)
	if code, stdout, stderr := s3Run(t, st, "verify", "-C", conf, "--against", f); code != ExitOK {
		t.Errorf("%s restored %s differs from the source: exit %d\n%s%s", u, what, code, stdout, stderr)
	}
}

// TestS3FourHostsAndPrune runs four dumps of different users into one
// repository on SeaweedFS at once, as four hosts would, while prune runs
// retention over and over: every run ends cleanly, every snapshot is
// complete, verify --read-data passes (no object referenced and deleted),
// and every snapshot writes out its users exactly as the partition holds
// them.
func TestS3FourHostsAndPrune(t *testing.T) {
	st := s3lab.StartMini(t, s3lab.Options{}).Store
	conf, users := s3Partition(t, 71, 8, 400, 5000)
	url := st.URL("fleet")
	hosts := [][]string{users[0:2], users[2:4], users[4:6], users[6:8]}
	dumpArgs := func(h []string) []string {
		args := []string{"dump", "-C", conf, "--repo", url}
		for _, u := range h {
			args = append(args, "--user", u)
		}
		return args
	}
	// A first night, so that prune has snapshots to remove.
	for _, h := range hosts {
		s3Must(t, st, dumpArgs(h)...)
	}

	// The second and third nights of the four hosts at once, and prune
	// keeping the last snapshot of each host until they are done.
	var wg sync.WaitGroup
	done := make(chan struct{})
	type result struct {
		what   string
		code   int
		stderr string
	}
	results := make(chan result, 64)
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for night := 2; night <= 3; night++ {
				p := s3Mbtool(t, st, nil, dumpArgs(h)...)
				code, stderr := p.wait(procTimeout)
				results <- result{fmt.Sprintf("host %d, night %d", i+1, night), code, stderr}
			}
		}()
	}
	prunes, pruned := 0, 0
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			p := s3Mbtool(t, st, nil, "prune", "--repo", url, "--keep-last", "1")
			code, stderr := p.wait(procTimeout)
			prunes++
			if code == ExitOK {
				pruned++
			}
			results <- result{fmt.Sprintf("prune %d", prunes), code, stderr}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(done)
	pwg.Wait()
	close(results)
	failed := map[int]bool{}
	for r := range results {
		// A dump and prune exclude each other (shared and exclusive
		// locks): either may refuse, cleanly, and nothing else may fail.
		cleanEnd(t, r.what, r.code, r.stderr)
		if r.code != ExitOK && !strings.Contains(r.stderr, "repository is locked") {
			t.Errorf("%s failed, and not on a lock:\n%s", r.what, r.stderr)
		}
		var host int
		if _, err := fmt.Sscanf(r.what, "host %d", &host); err == nil && r.code != ExitOK {
			failed[host-1] = true
		}
	}
	t.Logf("%d prunes during the dumps, %d of them ran; hosts whose dump met prune's lock: %v", prunes, pruned, failed)
	// The rerun of a dump that met the lock completes.
	for i := range failed {
		s3Must(t, st, dumpArgs(hosts[i])...)
	}

	s3Check(t, st, url, conf, users)
	// A final prune, with nothing running: one snapshot per host is left,
	// and it is still whole.
	s3Must(t, st, "prune", "--repo", url, "--keep-last", "1")
	ss := s3Check(t, st, url, conf, users)
	if len(ss) != len(hosts) {
		t.Errorf("after prune --keep-last 1: %d snapshots, want one per host (%d): %+v", len(ss), len(hosts), ss)
	}
	for _, h := range hosts {
		if !slices.ContainsFunc(ss, func(s s3Snapshot) bool { return slices.Equal(s.Users, h) }) {
			t.Errorf("no snapshot of %v left: %+v", h, ss)
		}
	}
}

// s3Faults are the proxy's faults for the fault tests: throttling, server
// errors, dropped connections before and after the store acted, answers
// cut short, and requests that hang past the client's timeout.
var s3Faults = []s3lab.Rule{
	{Fault: s3lab.SlowDown, Rate: 0.08},
	{Fault: s3lab.InternalError, Rate: 0.04},
	{Fault: s3lab.Drop, Rate: 0.03},
	{Fault: s3lab.DropAfter, Rate: 0.03},
	{Fault: s3lab.Truncate, Method: "GET", Rate: 0.03},
	{Fault: s3lab.Delay, Rate: 0.05, Delay: 300 * time.Millisecond},
	{Fault: s3lab.Hang, Rate: 0.01, Times: 3, Delay: time.Minute},
}

// s3Timeout is the client's request timeout in the fault tests, short so
// that a hung request costs seconds, not the default minute.
const s3Timeout = "MBTOOL_S3_TIMEOUT=3s"

// TestS3Faults runs dump, verify, restore and prune through a proxy
// that injects 503 SlowDown, 500, dropped and truncated connections,
// delays and hung requests: each run completes or fails cleanly, a rerun
// without faults completes, and nothing is lost: the repository verifies
// and its snapshot restores into an empty partition identical to the
// source.
func TestS3Faults(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	px := s3lab.StartProxy(t, m.Store, uint64(time.Now().UnixNano()))
	st := px.Store
	conf, users := s3Partition(t, 73, 3, 300, 8000)
	url := st.URL("faults")
	run := func(what string, args ...string) int {
		t.Helper()
		p := s3Mbtool(t, st, []string{s3Timeout}, args...)
		code, stderr := p.wait(procTimeout)
		cleanEnd(t, what, code, stderr)
		return code
	}

	px.SetRules(s3Faults...)
	for night := 1; night <= 2; night++ {
		if run(fmt.Sprintf("dump, night %d, with faults", night), "dump", "-C", conf, "--all", "--repo", url) != ExitOK {
			px.SetRules()
			s3Must(t, st, "dump", "-C", conf, "--all", "--repo", url)
			px.SetRules(s3Faults...)
		}
	}
	if code := run("verify --read-data with faults", "verify", "--repo", url, "--read-data"); code != ExitOK {
		t.Errorf("verify --read-data met faults and said exit %d: retries should have hidden them", code)
	}
	target := t.TempDir()
	tconf, err := gen.EmptyPartition(target)
	if err != nil {
		t.Fatal(err)
	}
	restored := 0
	for _, u := range users {
		if run("restore of "+u+" with faults", "restore", "--repo", url, "--user", u, "-C", tconf, "--replace") == ExitOK {
			restored++
		} else {
			px.SetRules()
			s3Must(t, st, "restore", "--repo", url, "--user", u, "-C", tconf, "--replace")
			px.SetRules(s3Faults...)
		}
	}
	if run("prune with faults", "prune", "--repo", url, "--keep-last", "1") != ExitOK {
		px.SetRules()
		s3Must(t, st, "prune", "--repo", url, "--keep-last", "1")
		px.SetRules(s3Faults...)
	}
	stats := px.Stats()
	t.Logf("proxy: %d requests, faults %v; %d of %d restores completed under faults", stats.Requests, stats.Faults, restored, len(users))
	if stats.Faults[s3lab.SlowDown] == 0 || stats.Faults[s3lab.DropAfter] == 0 {
		t.Errorf("too few faults to mean anything: %v", stats.Faults)
	}

	px.SetRules()
	if ss := s3Check(t, st, url, conf, users); len(ss) != 1 {
		t.Errorf("after prune --keep-last 1: %d snapshots, want 1", len(ss))
	}
	// What was restored under faults is the source's users, whole: a dump
	// of each from the target matches the source partition.
	for _, u := range users {
		s3SameAsSource(t, st, tconf, conf, u, "under faults")
	}
}

// TestS3KilledRunLeavesUploadToPrune kills dump --repo with SIGKILL in the
// middle of a multipart upload (the proxy holds its completion): nothing
// of the run is visible, the upload is left unfinished on the store, the
// next prune aborts it, and the next dump completes.
func TestS3KilledRunLeavesUploadToPrune(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	px := s3lab.StartProxy(t, m.Store, 1)
	st := px.Store
	// About 35 MB of messages per user: the pack is larger than a part
	// (16 MiB), so it goes up as a multipart upload.
	conf, users := s3Partition(t, 74, 2, 1400, 50000)
	url := st.URL("killed")
	s3Must(t, st, "dump", "-C", conf, "--user", users[0], "--repo", url)
	before := s3Snapshots(t, st, url)

	px.SetRules(s3lab.Rule{Fault: s3lab.Hang, Method: "POST", Path: "uploadId", Rate: 1})
	p := s3Mbtool(t, st, nil, "dump", "-C", conf, "--user", users[1], "--repo", url)
	p.until("an upload is held at its completion", func() bool {
		ups, err := m.Uploads()
		return err == nil && len(ups) > 0 && px.Stats().Faults[s3lab.Hang] > 0
	})
	p.signal(syscall.SIGKILL)
	p.wait(procTimeout)
	px.SetRules()
	ups, err := m.Uploads()
	if err != nil || len(ups) == 0 {
		t.Fatalf("after the kill: unfinished uploads %v, %v; want the killed run's", ups, err)
	}
	if after := s3Snapshots(t, st, url); len(after) != len(before) {
		t.Fatalf("the killed run left a snapshot: %+v", after)
	}
	s3Check(t, st, url, conf, users)

	s3Must(t, st, "prune", "--repo", url)
	if ups, err := m.Uploads(); err != nil || len(ups) != 0 {
		t.Fatalf("after prune: unfinished uploads %v, %v; want none", ups, err)
	}
	s3Must(t, st, "dump", "-C", conf, "--user", users[1], "--repo", url)
	if ss := s3Check(t, st, url, conf, users); len(ss) != len(before)+1 {
		t.Fatalf("after the rerun: %d snapshots, want %d", len(ss), len(before)+1)
	}
}

// TestS3ClusterFailures runs against SeaweedFS as separate processes
// (three volume servers, replication 001): a volume server is killed
// during a dump, and the S3 gateway restarted during a restore. A proxy
// that delays each write (or read) keeps the run going long enough to be
// hit in its middle. Each run completes or fails cleanly, the rerun
// completes, and nothing kept is lost: the repository verifies, its
// snapshots match the source, and the restored user dumps back identical
// to the source partition.
func TestS3ClusterFailures(t *testing.T) {
	c := s3lab.StartCluster(t, s3lab.ClusterOptions{})
	px := s3lab.StartProxy(t, c.Store, 1)
	st := px.Store
	conf, users := s3Partition(t, 75, 3, 600, 20000)
	url := st.URL("cluster")
	s3Must(t, st, "dump", "-C", conf, "--user", users[0], "--repo", url)

	px.SetRules(s3lab.Rule{Fault: s3lab.Delay, Method: "PUT", Rate: 1, Delay: 300 * time.Millisecond})
	puts := func() int { return px.Stats().Faults[s3lab.Delay] }
	p := s3Mbtool(t, st, nil, "dump", "-C", conf, "--all", "--repo", url)
	p.until("it has written to the store", func() bool { return puts() >= 3 })
	c.KillVolume(1)
	killedAt := puts()
	code, stderr := p.wait(procTimeout)
	cleanEnd(t, "dump with a volume server killed", code, stderr)
	if puts() == killedAt {
		t.Errorf("the dump wrote nothing after the volume server was killed (%d writes)", killedAt)
	}
	px.SetRules()
	// With one of three volume servers gone, the rerun completes.
	s3Must(t, st, "dump", "-C", conf, "--all", "--repo", url)
	s3Check(t, st, url, conf, users)

	target := t.TempDir()
	tconf, err := gen.EmptyPartition(target)
	if err != nil {
		t.Fatal(err)
	}
	u := users[1]
	px.SetRules(s3lab.Rule{Fault: s3lab.Delay, Method: "GET", Rate: 1, Delay: 200 * time.Millisecond})
	gets := func() int { return px.Stats().Faults[s3lab.Delay] }
	p = s3Mbtool(t, st, nil, "restore", "--repo", url, "--user", u, "-C", tconf)
	p.until("it has read from the store", func() bool { return gets() >= 3 })
	if err := c.RestartGateway(); err != nil {
		t.Fatal(err)
	}
	restartedAt := gets()
	code, stderr = p.wait(procTimeout)
	cleanEnd(t, "restore with the gateway restarted", code, stderr)
	if gets() == restartedAt {
		t.Errorf("the restore read nothing after the gateway restarted (%d reads)", restartedAt)
	}
	px.SetRules()
	if code != ExitOK {
		s3Must(t, st, "restore", "--repo", url, "--user", u, "-C", tconf, "--replace")
	}
	s3SameAsSource(t, st, tconf, conf, u, "across a gateway restart")
	if err := c.StartVolume(1); err != nil {
		t.Fatal(err)
	}
	s3Check(t, st, url, conf, users)
}
