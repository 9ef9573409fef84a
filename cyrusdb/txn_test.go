package cyrusdb

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// model is the expected content of a database.
type model map[string]string

func (m model) records() [][2][]byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2][]byte, len(keys))
	for i, k := range keys {
		out[i] = [2][]byte{[]byte(k), []byte(m[k])}
	}
	return out
}

// txnFile writes recs as a fresh file at a new path and returns it open.
func txnFile(t testing.TB, recs [][2][]byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.db")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := WriteTwoskip(f, 1, iter(recs)); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkFile reads f whole (Check: CRCs, order, every level's links, the
// record count) and compares it with want.
func checkFile(t testing.TB, f *os.File, want model) *Twoskip {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	db, err := ReadTwoskip(f.Name(), f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if !db.Clean() {
		t.Fatalf("file not clean after commit")
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	got, err := collect(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, want.records()) {
		t.Fatalf("file holds %d records, want %d", len(got), len(want))
	}
	return db
}

// applyRandom makes n random changes to m and txn: sets of new and
// existing keys, replacements with the same value, deletes of present and
// absent keys.
func applyRandom(t testing.TB, rnd *rand.Rand, txn *TwoskipTxn, m model, n, space int) {
	t.Helper()
	for range n {
		k := fmt.Sprintf("Nuser\x1fu%05d", rnd.IntN(space))
		switch rnd.IntN(5) {
		case 0, 1:
			v := fmt.Sprintf("value %d of %s", rnd.IntN(1000), k)
			if err := txn.Set([]byte(k), []byte(v)); err != nil {
				t.Fatal(err)
			}
			m[k] = v
		case 2:
			if v, ok := m[k]; ok {
				if err := txn.Set([]byte(k), []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
		default:
			if err := txn.Delete([]byte(k)); err != nil {
				t.Fatal(err)
			}
			delete(m, k)
		}
		// The transaction sees its own changes.
		v, ok, err := txn.Get([]byte(k))
		if err != nil || ok != (m[k] != "" || hasKey(m, k)) || ok && string(v) != m[k] {
			t.Fatalf("Get(%q) in the transaction = %q, %v, %v; want %q", k, v, ok, err, m[k])
		}
	}
}

func hasKey(m model, k string) bool { _, ok := m[k]; return ok }

// TestTxnRandom makes random transactions in place and checks the whole
// file after each, against a model; aborted transactions leave nothing.
func TestTxnRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	m := model{}
	for _, r := range genRecords(300) {
		m[string(r[0])] = string(r[1])
	}
	f := txnFile(t, m.records())
	for round := range 40 {
		txn, err := BeginTwoskip(f.Name(), f)
		if err != nil {
			t.Fatal(err)
		}
		if round%7 == 6 {
			scratch := model{}
			for k, v := range m {
				scratch[k] = v
			}
			applyRandom(t, rnd, txn, scratch, 1+rnd.IntN(40), 600)
			if err := txn.Abort(); err != nil {
				t.Fatal(err)
			}
		} else {
			applyRandom(t, rnd, txn, m, 1+rnd.IntN(40), 600)
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		checkFile(t, f, m)
	}
}

// TestTxnEmptyFile: a zero-length file is initialised as Cyrus does and
// takes records.
func TestTxnEmptyFile(t *testing.T) {
	f := txnFile(t, nil)
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	txn, err := BeginTwoskip(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, f, model{"k": "v"})
}

// TestTxnReadsGrowAsLog counts the records a change reads and the bytes it
// writes at 10x and 100x the records: O(log n), not the O(n) of a rewrite.
func TestTxnReadsGrowAsLog(t *testing.T) {
	sizes := []int{1000, 10000, 100000}
	if testing.Short() {
		sizes = sizes[:2]
	}
	var per []float64
	for _, n := range sizes {
		f := txnFile(t, genRecords(n))
		fi, _ := f.Stat()
		before := ReadCounters()
		txn, err := BeginTwoskip(f.Name(), f)
		if err != nil {
			t.Fatal(err)
		}
		const changes = 200
		for i := range changes {
			k := fmt.Appendf(nil, "Nuser\x1fu%07d\x1fINBOX\x1fnew%d", (i*7919)%n, i)
			if err := txn.Set(k, []byte("%(T e)")); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		d := ReadCounters().Sub(before)
		fi2, _ := f.Stat()
		if d.Walks != 0 || d.FreshFiles != 0 {
			t.Errorf("%d records: %d walks, %d fresh files for %d changes", n, d.Walks, d.FreshFiles, changes)
		}
		grown := fi2.Size() - fi.Size()
		if grown > changes*200 {
			t.Errorf("%d records: the file grew by %d bytes for %d changes", n, grown, changes)
		}
		p := float64(d.RecordReads) / changes
		per = append(per, p)
		if bound := 4*math.Log2(float64(n)) + 10; p > bound {
			t.Errorf("%d records: %.1f record reads per change, bound %.1f", n, p, bound)
		}
		t.Logf("%d records: %.1f record reads per change", n, p)
	}
	for i := 1; i < len(per); i++ {
		if per[i] > 1.6*per[i-1] {
			t.Errorf("record reads per change grew from %.1f to %.1f for 10x the records", per[i-1], per[i])
		}
	}
}

// TestUncleanLookupGrowsAsLog: a search of a file a writer left unclean
// steps down past the half-made links and climbs back to the levels of the
// records after them instead of walking level 0. The writer's records get
// chosen levels, not random ones: the first of them, near the start of the
// key order, is on every level, so every search for a key after it meets a
// half-made link on every level above 0 (a search that stayed on level 0
// from there would read O(n) records); the others are on level 0 only.
func TestUncleanLookupGrowsAsLog(t *testing.T) {
	levels := randLevel
	t.Cleanup(func() { randLevel = levels })
	var per []float64
	for _, n := range []int{1000, 10000} {
		f := txnFile(t, genRecords(n))
		txn, err := BeginTwoskip(f.Name(), f)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			randLevel = func() int { return 1 }
			if i == 0 {
				randLevel = func() int { return maxLevel }
			}
			if err := txn.Set(fmt.Appendf(nil, "Nuser\x1fu%07d\x1fnew", i*17%n), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		randLevel = levels
		// No commit: the file is DIRTY and longer than current_size.
		fi, _ := f.Stat()
		db, err := ReadTwoskip(f.Name(), f, fi.Size())
		if err != nil {
			t.Fatal(err)
		}
		if db.Clean() {
			t.Fatal("file clean in the middle of a transaction")
		}
		recs := genRecords(n)
		before := ReadCounters()
		const lookups = 100
		for i := range lookups {
			k := recs[(i*7919)%n][0]
			if _, ok, err := db.Get(k); !ok || err != nil {
				t.Fatalf("Get(%q) = %v, %v", k, ok, err)
			}
			if _, ok, err := db.Get(fmt.Appendf(nil, "Nuser\x1fu%07d\x1fnew", i*17%n)); ok || err != nil {
				t.Fatalf("Get of an uncommitted key = %v, %v", ok, err)
			}
		}
		p := float64(ReadCounters().Sub(before).RecordReads) / lookups
		per = append(per, p)
		t.Logf("%d records, unclean: %.1f record reads per two lookups", n, p)
		if bound := 2 * (4*math.Log2(float64(n)) + 10); p > bound {
			t.Errorf("%d records, unclean: %.1f record reads per two lookups, bound %.1f", n, p, bound)
		}
		if err := txn.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	if per[1] > 1.6*per[0] {
		t.Errorf("record reads per lookup grew from %.1f to %.1f for 10x the records", per[0], per[1])
	}
}

// TestCyrusReadsTxn: real Cyrus accepts files changed in place by our
// transactions (consistent, show), changes them itself, and we go on.
func TestCyrusReadsTxn(t *testing.T) {
	d := newDBTool(t)
	rnd := rand.New(rand.NewPCG(3, 4))
	m := model{}
	for _, r := range genRecords(500) {
		m[string(r[0])] = string(r[1])
	}
	path := d.install("txn.db", writeTwoskip(t, 1, m.records()))
	for round := range 6 {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		txn, err := BeginTwoskip(path, f)
		if err != nil {
			t.Fatal(err)
		}
		applyRandom(t, rnd, txn, m, 50, 1000)
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if !d.consistent(path) {
			t.Fatalf("round %d: cyr_dbtool consistent rejects the file", round)
		}
		if got := d.show(path, "twoskip"); !equalRecords(got, m.records()) {
			t.Fatalf("round %d: Cyrus shows %d records, want %d", round, len(got), len(m))
		}
		// Cyrus writes a transaction of its own on top.
		k := fmt.Sprintf("cyrus%d", round)
		d.batch(path, "twoskip", append(append([]byte("BEGIN\n"), batchSet([]byte(k), []byte("c"))...), "COMMIT\n"...))
		m[k] = "c"
	}
	openCheck(t, d, path)
}

// Environment of the child process of TestTxnKilled.
const (
	envTxnChild  = "MBTOOL_TXN_CHILD"   // the database to change
	envTxnKillAt = "MBTOOL_TXN_KILL_AT" // SIGKILL before this write (1-based)
)

// killedChanges is the transaction the child makes.
func killedChanges(m model) [][2]string {
	var ops [][2]string // value "" deletes
	for i := range 12 {
		k := fmt.Sprintf("Nuser\x1fu%07d\x1fINBOX", i*13)
		switch i % 3 {
		case 0:
			ops = append(ops, [2]string{k, ""})
		case 1:
			ops = append(ops, [2]string{k, "replaced"})
		default:
			ops = append(ops, [2]string{k + "\x1fnew", "added"})
		}
	}
	if m != nil {
		for _, op := range ops {
			if op[1] == "" {
				delete(m, op[0])
			} else {
				m[op[0]] = op[1]
			}
		}
	}
	return ops
}

// killBeforeWrite makes this process kill itself with SIGKILL before its
// write number $MBTOOL_TXN_KILL_AT (none if 0), and counts the writes.
func killBeforeWrite() *int {
	var killAt, writes int
	fmt.Sscan(os.Getenv(envTxnKillAt), &killAt)
	testHookWrite = func() {
		if writes++; writes == killAt {
			p, _ := os.FindProcess(os.Getpid())
			p.Kill()
			select {}
		}
	}
	return &writes
}

// runKilled runs test of this binary in a child with env added and
// reports whether it died of SIGKILL.
func runKilled(t *testing.T, test string, env ...string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
		return true
	}
	if err != nil {
		t.Fatalf("child %s: %v\n%s", test, err, out)
	}
	return false
}

// txnChild runs in the child: one transaction, killed before write N.
func txnChild() {
	writes := killBeforeWrite()
	killedTxn(os.Getenv(envTxnChild), writes, killedChanges(nil))
}

// TestTxnKilled kills a process in the middle of an in-place transaction,
// before each of its writes in turn, and shows that the file left behind
// reads as the last committed state (ours), and that both Cyrus's recovery
// (any cyr_dbtool open) and Recover bring it back to exactly that state,
// clean and consistent; a kill after the header write is a commit.
func TestTxnKilled(t *testing.T) {
	if os.Getenv(envTxnChild) != "" {
		txnChild()
		return
	}
	d := newDBTool(t)
	before := model{}
	for _, r := range genRecords(300) {
		before[string(r[0])] = string(r[1])
	}
	after := model{}
	for k, v := range before {
		after[k] = v
	}
	killedChanges(after)
	base := writeTwoskip(t, 1, before.records())
	child := func(path string, killAt int) (killed bool) {
		return runKilled(t, "TestTxnKilled", envTxnChild+"="+path, fmt.Sprintf("%s=%d", envTxnKillAt, killAt))
	}
	// A run without a kill, to count the writes.
	path := d.install("full.db", base)
	if child(path, 0) {
		t.Fatal("child killed without a kill point")
	}
	f, _ := os.Open(path)
	checkFile(t, f, after)
	f.Close()
	for k := 1; ; k++ {
		path := d.install(fmt.Sprintf("k%d.db", k), base)
		killed := child(path, k)
		want := before
		if !killed {
			want = after
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := collect(readTwoskip(t, raw), nil)
		if err != nil {
			t.Fatalf("kill before write %d: reading the file left: %v", k, err)
		}
		if !equalRecords(got, want.records()) {
			t.Fatalf("kill before write %d: %d records readable, want %d", k, len(got), len(want))
		}
		// Ours: Recover a copy.
		ours := d.install(fmt.Sprintf("k%d.ours.db", k), raw)
		of, err := os.OpenFile(ours, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Recover(ours, of); err != nil {
			t.Fatalf("kill before write %d: Recover: %v", k, err)
		}
		checkFile(t, of, want)
		of.Close()
		if !d.consistent(ours) {
			t.Fatalf("kill before write %d: cyr_dbtool consistent rejects our recovery", k)
		}
		// Cyrus's: any open of the file recovers it.
		if got := d.show(path, "twoskip"); !equalRecords(got, want.records()) {
			t.Fatalf("kill before write %d: Cyrus recovered %d records, want %d", k, len(got), len(want))
		}
		if !d.consistent(path) {
			t.Fatalf("kill before write %d: cyr_dbtool consistent after Cyrus's recovery", k)
		}
		cyr, _ := os.ReadFile(path)
		mine, _ := os.ReadFile(ours)
		if killed && !bytes.Equal(cyr, mine) {
			t.Errorf("kill before write %d: our recovery differs from Cyrus's (%d and %d bytes)", k, len(mine), len(cyr))
		}
		if !killed {
			t.Logf("the transaction made %d writes", k-1)
			break
		}
	}
}

// envRecoverChild names the file the child of TestRecoverKilled recovers.
const envRecoverChild = "MBTOOL_RECOVER_CHILD"

// TestRecoverKilled kills our own recovery of a crashed transaction before
// each of its writes in turn: what is left still reads as the last commit,
// and Cyrus's recovery and ours, run again, both finish it.
func TestRecoverKilled(t *testing.T) {
	if path := os.Getenv(envRecoverChild); path != "" {
		killBeforeWrite()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil {
			_, err = Recover(path, f)
		}
		if err != nil {
			fmt.Println("child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	d := newDBTool(t)
	before := model{}
	for _, r := range genRecords(300) {
		before[string(r[0])] = string(r[1])
	}
	// A transaction killed in the middle of its writes: after the DIRTY
	// header and the first run of pages (heads rewritten, pointing to
	// records not written yet), before the last run.
	crashed := d.install("crashed.db", writeTwoskip(t, 1, before.records()))
	if !runKilled(t, "TestTxnKilled", envTxnChild+"="+crashed, envTxnKillAt+"=3") {
		t.Fatal("the transaction was not killed")
	}
	raw, err := os.ReadFile(crashed)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; ; k++ {
		path := d.install(fmt.Sprintf("r%d.db", k), raw)
		killed := runKilled(t, "TestRecoverKilled", envRecoverChild+"="+path, fmt.Sprintf("%s=%d", envTxnKillAt, k))
		checkRecovered(t, d, path, fmt.Sprintf("recovery killed before write %d", k), before)
		if !killed {
			t.Logf("recovery made %d writes", k-1)
			break
		}
	}
}

// checkRecovered checks the twoskip file at path, left by a process
// killed as what says: it reads as before, and our recovery of a copy
// and Cyrus's of the file itself both give before, consistent. It
// returns the path of our recovered copy.
func checkRecovered(t *testing.T, d *dbtool, path, what string, before model) (ours string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(readTwoskip(t, raw), nil)
	if err != nil || !equalRecords(got, before.records()) {
		t.Fatalf("%s: %d records readable (%v), want %d", what, len(got), err, len(before))
	}
	ours = d.install(strings.TrimSuffix(filepath.Base(path), ".db")+".ours.db", raw)
	of, err := os.OpenFile(ours, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Recover(ours, of); err != nil {
		t.Fatalf("%s: Recover: %v", what, err)
	}
	checkFile(t, of, before)
	of.Close()
	if got := d.show(path, "twoskip"); !equalRecords(got, before.records()) {
		t.Fatalf("%s: Cyrus recovered %d records, want %d", what, len(got), len(before))
	}
	if !d.consistent(path) || !d.consistent(ours) {
		t.Fatalf("%s: cyr_dbtool consistent fails", what)
	}
	return ours
}
