package restore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/partition"
)

// envChild makes the test binary run one restore and exit: its value is
// "<imapd.conf>\n<dump file>[\nreplace <old>=<new>]".
const envChild = "MBTOOL_RESTORE_TEST_CHILD"

// envChildOwner, set to "cyrus", makes the child give the files it writes
// to the user cyrus (the default owner) instead of leaving them to the
// user running the tests.
const envChildOwner = "MBTOOL_RESTORE_TEST_OWNER"

// envChildGroup, set to N, makes the child commit at most N mailboxes a
// group (maxGroup), so that a small fixture makes several groups that
// span owners, with crash points between them.
const envChildGroup = "MBTOOL_RESTORE_TEST_GROUP"

func TestMain(m *testing.M) {
	if v := os.Getenv(envChild); v != "" {
		os.Exit(child(v))
	}
	os.Exit(m.Run())
}

func child(v string) int {
	conf, dumpPath, _ := strings.Cut(v, "\n")
	opts := Options{Owner: &testOwner}
	if os.Getenv(envChildOwner) == "cyrus" {
		opts.Owner = nil
	}
	if d, extra, ok := strings.Cut(dumpPath, "\n"); ok {
		dumpPath = d
		old, nu, _ := strings.Cut(strings.TrimPrefix(extra, "replace "), "=")
		opts.Replace, opts.MapUsers = true, map[string]string{old: nu}
	}
	if g := os.Getenv(envChildGroup); g != "" {
		n, err := strconv.Atoi(g)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "%s=%q: want a positive number\n", envChildGroup, g)
			return 1
		}
		maxGroup = n
	}
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.Open(dumpPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	if _, err := Run(context.Background(), spool, f, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild starts a restore of dumpPath into target in a subprocess.
func startChild(t *testing.T, target *partition.Spool, dumpPath string, crashAt int) *exec.Cmd {
	return startChildArgs(t, target, dumpPath, "", crashAt)
}

func startChildArgs(t *testing.T, target *partition.Spool, dumpPath, extra string, crashAt int) *exec.Cmd {
	return startChildGroup(t, target, dumpPath, extra, crashAt, 0)
}

// startChildGroup is startChildArgs with at most group mailboxes a commit
// group (0: maxGroup's own).
func startChildGroup(t *testing.T, target *partition.Spool, dumpPath, extra string, crashAt, group int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	v := target.Config.Path + "\n" + dumpPath
	if extra != "" {
		v += "\n" + extra
	}
	cmd.Env = append(os.Environ(), envChild+"="+v,
		fmt.Sprintf("%s=%d", EnvCrashAt, crashAt))
	if group > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", envChildGroup, group))
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// killed reports whether the child died of SIGKILL.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	st, ok := ee.Sys().(syscall.WaitStatus)
	return ok && st.Signaled() && st.Signal() == syscall.SIGKILL
}

// checkConsistent checks a target after a killed restore: mailboxes.db is
// a valid database (a run killed inside its transaction leaves it unclean,
// and it is first recovered as Cyrus, or the next run, recovers it under
// the write lock), and every mailbox registered in it is whole (identical
// to its source, every message file present).
func checkConsistent(t *testing.T, src, target *partition.Spool) int {
	t.Helper()
	f, err := lock.OpenLocked(target.Config.MboxlistPath, os.O_RDWR, true)
	if err != nil {
		t.Fatal(err)
	}
	if recovered, err := cyrusdb.Recover(target.Config.MboxlistPath, f); err != nil {
		t.Errorf("recovering mailboxes.db: %v", err)
	} else if recovered {
		t.Log("mailboxes.db recovered (killed inside its transaction)")
	}
	f.Close()
	db, err := cyrusdb.OpenTwoskip(target.Config.MboxlistPath)
	if err != nil {
		t.Fatal(err)
	}
	if !db.Clean() {
		t.Error("mailboxes.db not clean")
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
	db.Close()
	mbs, err := target.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range mbs {
		compareMailbox(t, src, e.Name, target, e.Name, same)
	}
	return len(mbs)
}

// checkUserFiles checks the users' files a killed restore may have
// written (their seen dbs, subscription files, alice's quota root): each
// is either missing or whole, as the source has it. They are written
// after every mailbox is registered, into a batch that names each only
// once every file of it is flushed (partition.NewFiles).
func checkUserFiles(t *testing.T, src, target *partition.Spool) (present int) {
	t.Helper()
	exists := func(path string, err error) bool {
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Lstat(path)
		return err == nil
	}
	for _, user := range []string{"alice", "bob"} {
		if exists(target.SeenPath(user)) {
			present++
			want, _ := src.ReadSeen(user)
			if got, err := target.ReadSeen(user); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("seen of %s after the kill: %v (%v), want %v", user, got, err, want)
			}
		}
		if exists(target.SubsPath(user)) {
			present++
			ws, _ := src.ReadSubs(user)
			if gs, err := target.ReadSubs(user); err != nil || !reflect.DeepEqual(gs, ws) {
				t.Errorf("subscriptions of %s after the kill: %q (%v), want %q", user, gs, err, ws)
			}
		}
	}
	if exists(target.QuotaPath("user.alice")) {
		present++
		wq, _ := src.ReadQuota("user.alice")
		if gq, err := target.ReadQuota("user.alice"); err != nil || !reflect.DeepEqual(gq.Usage, wq.Usage) || !reflect.DeepEqual(gq.Limits, wq.Limits) {
			t.Errorf("quota after the kill %+v (%v), want %+v", gq, err, wq)
		}
	}
	return present
}

// checkComplete checks that everything of the dump is in the target.
func checkComplete(t *testing.T, src, target *partition.Spool, names []string) {
	t.Helper()
	if n := checkConsistent(t, src, target); n != len(names) {
		t.Errorf("%d mailboxes registered, want %d", n, len(names))
	}
	for _, user := range []string{"alice", "bob"} {
		want, _ := src.ReadSeen(user)
		got, err := target.ReadSeen(user)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("seen of %s: %v (%v), want %v", user, got, err, want)
		}
		ws, _ := src.ReadSubs(user)
		if gs, err := target.ReadSubs(user); err != nil || !reflect.DeepEqual(gs, ws) {
			t.Errorf("subscriptions of %s: %q (%v), want %q", user, gs, err, ws)
		}
	}
	wq, _ := src.ReadQuota("user.alice")
	if gq, err := target.ReadQuota("user.alice"); err != nil || !reflect.DeepEqual(gq.Usage, wq.Usage) || !reflect.DeepEqual(gq.Limits, wq.Limits) {
		t.Errorf("quota %+v (%v), want %+v", gq, err, wq)
	}
	for _, p := range target.Config.Partitions {
		if m, _ := filepath.Glob(filepath.Join(p, stagePrefix+"*")); len(m) > 0 {
			t.Errorf("staging directories left: %v", m)
		}
	}
}

// TestCrash kills restores at every crash point of the commit phase and
// at random moments, checks the target each time, and checks that a
// second run completes it. The crash points are swept twice: with the
// default group size (the fixture's ten mailboxes in one group) and with
// groups of three, which span owners (alice's last mailbox, bob's and the
// first shared one make one group) and have crash points between them;
// the random kills use the small groups too.
func TestCrash(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"}, "shared", "shared.team")
	dumpPath := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(dumpPath, dump, 0o600); err != nil {
		t.Fatal(err)
	}
	names := append(append([]string{}, fixtureAlice...), "user.bob", "shared", "shared.team")
	const small = 3
	runs := 0
	finish := func(target *partition.Spool) {
		t.Helper()
		if err := startChildGroup(t, target, dumpPath, "", 0, small).Wait(); err != nil {
			t.Fatalf("rerun: %v", err)
		}
		checkComplete(t, src, target, names)
	}
	// How many of the users' files each kill of the sweeps left.
	var counts []int
	sweep := func(group int) int {
		points := 0
		for n := 1; ; n++ {
			target := emptyTarget(t, "")
			err := startChildGroup(t, target, dumpPath, "", n, group).Wait()
			if err == nil {
				return points // fewer than n crash points: the run completed
			}
			if !killed(err) {
				t.Fatalf("groups of %d, crash point %d: %v", group, n, err)
			}
			runs++
			points = n
			got := checkConsistent(t, src, target)
			files := checkUserFiles(t, src, target)
			t.Logf("groups of %d: killed at crash point %d: %d mailboxes registered, %d user files", group, n, got, files)
			counts = append(counts, files)
			finish(target)
		}
	}
	whole := sweep(0)
	if whole < 10 {
		t.Errorf("only %d crash points", whole)
	}
	// Groups of three: four groups, so at least three more crash points
	// (the placement of each mailbox and the end of each group stay).
	split := sweep(small)
	if split < whole+3 {
		t.Errorf("%d crash points with groups of %d, %d with one group: want at least 3 more", split, small, whole)
	}
	points := whole + split
	// Random moments within a run's duration, phase one included.
	start := time.Now()
	complete := emptyTarget(t, "")
	finish(complete)
	d := time.Since(start)
	// Kills that left some of the users' files written and some not:
	// the batch's crash points between the names it gives.
	all, partial := checkUserFiles(t, src, complete), 0
	for _, n := range counts {
		if n > 0 && n < all {
			partial++
		}
	}
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for i := 0; runs < points+4 && i < 12; i++ {
		target := emptyTarget(t, "")
		cmd := startChildGroup(t, target, dumpPath, "", 0, small)
		time.Sleep(time.Duration(r.Int64N(int64(d))))
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err != nil && !killed(err) {
			t.Fatalf("random kill %d: %v", i, err)
		}
		if err != nil {
			runs++
		}
		got := checkConsistent(t, src, target)
		files := checkUserFiles(t, src, target)
		t.Logf("killed at random (%v): %d mailboxes registered, %d user files", err, got, files)
		finish(target)
	}
	if partial < 2 {
		t.Errorf("%d kills left some of the users' files written: want the batch's crash points between them", partial)
	}
	t.Logf("%d killed runs, %d crash points", runs, points)
	if runs < 20 {
		t.Errorf("only %d killed runs", runs)
	}
}

// TestCrashReplace kills restores that replace a mailbox (bob's INBOX
// restored as alice's with --replace) at every crash point: user.alice is
// always either the old mailbox or the new one, whole, and a rerun ends
// with the new one.
func TestCrashReplace(t *testing.T) {
	dump, src := fixtureDump(t, []string{"bob"})
	dumpPath := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(dumpPath, dump, 0o600); err != nil {
		t.Fatal(err)
	}
	aliceIndex, err := src.ReadIndexHeader(mustLookup(t, src, "user.alice"))
	if err != nil {
		t.Fatal(err)
	}
	bobGUIDs := liveGUIDs(t, src, "user.bob")
	check := func(target *partition.Spool) bool {
		t.Helper()
		mbs, err := target.Mailboxes()
		if err != nil {
			t.Fatal(err)
		}
		replaced := false
		for _, e := range mbs {
			h, err := target.ReadIndexHeader(e)
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			// The new user.alice holds bob's messages, under alice's
			// UIDVALIDITY, UIDs and MODSEQs not lowered (docs/restore.md,
			// "Invariants").
			if e.Name == "user.alice" && reflect.DeepEqual(liveGUIDs(t, target, "user.alice"), bobGUIDs) {
				replaced = true
				if h.UIDValidity != aliceIndex.UIDValidity || h.LastUID < aliceIndex.LastUID || h.HighestModseq <= aliceIndex.HighestModseq {
					t.Errorf("replaced user.alice: UIDVALIDITY %d LAST_UID %d HIGHESTMODSEQ %d; alice's were %d %d %d",
						h.UIDValidity, h.LastUID, h.HighestModseq, aliceIndex.UIDValidity, aliceIndex.LastUID, aliceIndex.HighestModseq)
				}
				continue
			}
			// The fixture's own mailboxes, untouched: they open and read.
			m, err := target.OpenMailbox(context.Background(), e)
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			n := 0
			if err := m.Records(func(partition.Record) error { n++; return nil }); err != nil || n != int(h.NumRecords) {
				t.Errorf("%s: %d records, %v", e.Name, n, err)
			}
			m.Close()
		}
		return replaced
	}
	points := 0
	for n := 1; ; n++ {
		target := openSpool(t, fixtures.UnpackT(t))
		err := startChildArgs(t, target, dumpPath, "replace bob=alice", n).Wait()
		if err == nil {
			break
		}
		if !killed(err) {
			t.Fatalf("crash point %d: %v", n, err)
		}
		points = n
		t.Logf("killed at crash point %d: replaced %v", n, check(target))
		if err := startChildArgs(t, target, dumpPath, "replace bob=alice", 0).Wait(); err != nil {
			t.Fatalf("rerun: %v", err)
		}
		if !check(target) {
			t.Errorf("crash point %d: rerun did not replace user.alice", n)
		}
	}
	if points < 4 {
		t.Errorf("only %d crash points", points)
	}
}

// liveGUIDs returns the GUIDs of the records of mailbox name that are not
// expunged, sorted.
func liveGUIDs(t *testing.T, s *partition.Spool, name string) []string {
	t.Helper()
	m, err := s.OpenMailbox(context.Background(), mustLookup(t, s, name))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var out []string
	if err := m.Records(func(r partition.Record) error {
		if !r.Expunged() {
			out = append(out, r.GUID.String())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func mustLookup(t *testing.T, s *partition.Spool, name string) partition.Entry {
	t.Helper()
	e, err := s.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
