package cyrusdb

import (
	"fmt"
	"os"
	"testing"
)

// sortedBatch is a transaction of many changes in ascending key order, as
// partition's UpdateTwoskip makes them: new keys between the existing
// ones (every other record), replaced values (every tenth), and new keys
// after all of them. It returns the changes in order; m, if not nil,
// gets them applied.
func sortedBatch(n int, m model) [][2]string {
	var ops [][2]string
	for i := range n {
		k := fmt.Sprintf("Nuser\x1fu%07d\x1fINBOX", i)
		if i%10 == 0 {
			ops = append(ops, [2]string{k, fmt.Sprintf("%%(T e I replaced%d)", i)})
		}
		if i%2 == 0 {
			ops = append(ops, [2]string{k + "\x1fSent", fmt.Sprintf("%%(T e I sent%d P default)", i)})
		}
	}
	for i := range n {
		ops = append(ops, [2]string{fmt.Sprintf("Nuser\x1fv%07d", i), fmt.Sprintf("%%(T e I v%d P default)", i)})
	}
	for _, op := range ops {
		if m != nil {
			m[op[0]] = op[1]
		}
	}
	return ops
}

func applyOps(txn *TwoskipTxn, ops [][2]string) error {
	for _, op := range ops {
		var err error
		if op[1] == "" {
			err = txn.Delete([]byte(op[0]))
		} else {
			err = txn.Set([]byte(op[0]), []byte(op[1]))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// killedTxn runs in a kill test's child: one transaction of ops on the
// twoskip file at path, killed before the write the environment names
// (killBeforeWrite, armed by the caller); it prints how many writes the
// transaction made when it was not killed, and exits.
func killedTxn(path string, writes *int, ops [][2]string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		var txn *TwoskipTxn
		if txn, err = BeginTwoskip(path, f); err == nil {
			if err = applyOps(txn, ops); err == nil {
				err = txn.Commit()
			}
		}
	}
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(2)
	}
	fmt.Println("writes", *writes)
	os.Exit(0)
}

// TestTxnSortedBatch makes a transaction of thousands of changes in key
// order, more than the page cache holds (so dirty pages are written out
// on eviction), and checks the file whole, and what the batch cost: each
// search starts from the previous one's position (a few record reads per
// change, not a path from the head), and the writes are page runs, far
// fewer than the changes (not one per record and rewritten head).
func TestTxnSortedBatch(t *testing.T) {
	const n = 2000
	m := model{}
	for _, r := range genRecords(n) {
		m[string(r[0])] = string(r[1])
	}
	f := txnFile(t, m.records())
	ops := sortedBatch(n, m)
	before := ReadCounters()
	txn, err := BeginTwoskip(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyOps(txn, ops); err != nil {
		t.Fatal(err)
	}
	// The transaction reads its own writes, evicted or not.
	for _, k := range []string{"Nuser\x1fu0000000\x1fINBOX", "Nuser\x1fu0001000\x1fINBOX\x1fSent", "Nuser\x1fv0000000", "Nuser\x1fv0001999"} {
		if v, ok, err := txn.Get([]byte(k)); err != nil || !ok || string(v) != m[k] {
			t.Fatalf("Get(%q) in the transaction = %q, %v, %v; want %q", k, v, ok, err, m[k])
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	d := ReadCounters().Sub(before)
	checkFile(t, f, m)
	fi, _ := f.Stat()
	perChange := float64(d.RecordReads) / float64(len(ops))
	t.Logf("%d changes: %.1f record reads per change, %d writes, file %d bytes", len(ops), perChange, d.Writes, fi.Size())
	// From the head it is about two per level (TestTxnReadsGrowAsLog:
	// 20 at 1,000 records).
	if perChange > 6 {
		t.Errorf("%.1f record reads per change of a sorted batch, want at most 6", perChange)
	}
	// The file ends at about 150 pages, every one of them changed (new
	// records, or heads rewritten). A page is written once at the
	// flush, or again when it was evicted before (its slot wanted by
	// another page: the cache holds 64): at most twice, plus the three
	// header writes. Without the page cache's write-back it was one
	// write per record and per rewritten head, over 9,000.
	if max := 2*fi.Size()/pageSize + 10; d.Writes > max {
		t.Errorf("%d writes for %d changes, want at most %d (two per page)", d.Writes, len(ops), max)
	}
}

// TestTxnFingerAnyOrder mixes ascending runs with steps back, deletes and
// lookups, so that searches start from the finger and from the head in
// every combination, against the model.
func TestTxnFingerAnyOrder(t *testing.T) {
	m := model{}
	for _, r := range genRecords(500) {
		m[string(r[0])] = string(r[1])
	}
	f := txnFile(t, m.records())
	txn, err := BeginTwoskip(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		base := (round * 37) % 500
		for i := range 40 {
			k := fmt.Sprintf("Nuser\x1fu%07d\x1fINBOX\x1fx%d", base+i/2, i%2)
			switch (round + i) % 7 {
			case 3:
				if err := txn.Delete([]byte(fmt.Sprintf("Nuser\x1fu%07d\x1fINBOX", base+i))); err != nil {
					t.Fatal(err)
				}
				delete(m, fmt.Sprintf("Nuser\x1fu%07d\x1fINBOX", base+i))
			case 5:
				if _, _, err := txn.Get([]byte(k)); err != nil {
					t.Fatal(err)
				}
			default:
				v := fmt.Sprintf("r%d i%d", round, i)
				if err := txn.Set([]byte(k), []byte(v)); err != nil {
					t.Fatal(err)
				}
				m[k] = v
			}
		}
	}
	for k, v := range m {
		if got, ok, err := txn.Get([]byte(k)); err != nil || !ok || string(got) != v {
			t.Fatalf("Get(%q) = %q, %v, %v; want %q", k, got, ok, err, v)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, f, m)
}

// TestCyrusReadsSortedBatch: Cyrus reads every record of a large sorted
// batch committed in place, finds the file consistent, and writes its
// own transaction on top.
func TestCyrusReadsSortedBatch(t *testing.T) {
	d := newDBTool(t)
	const n = 2000
	m := model{}
	for _, r := range genRecords(n) {
		m[string(r[0])] = string(r[1])
	}
	path := d.install("batch.db", writeTwoskip(t, 1, m.records()))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	txn, err := BeginTwoskip(path, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyOps(txn, sortedBatch(n, m)); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	if !d.consistent(path) {
		t.Fatal("cyr_dbtool consistent rejects the file")
	}
	if got := d.show(path, "twoskip"); !equalRecords(got, m.records()) {
		t.Fatalf("Cyrus shows %d records, want %d", len(got), len(m))
	}
	d.batch(path, "twoskip", append(append([]byte("BEGIN\n"), batchSet([]byte("Nuser\x1fu0000001\x1fINBOX\x1fz"), []byte("c"))...), "COMMIT\n"...))
	m["Nuser\x1fu0000001\x1fINBOX\x1fz"] = "c"
	openCheck(t, d, path)
}

// envBatchChild names the database the child of TestSortedBatchKilled
// changes.
const envBatchChild = "MBTOOL_BATCH_CHILD"

// TestSortedBatchKilled kills a process in the middle of a large sorted
// batch, before chosen writes: the DIRTY header, the first page runs
// (pages evicted from the cache while the batch goes on, heads of
// committed records pointing to records not yet written), the last run,
// the clean header. The file left reads as the last commit, and Cyrus's
// recovery and ours bring it back to exactly that, consistent.
func TestSortedBatchKilled(t *testing.T) {
	const n = 1500
	if path := os.Getenv(envBatchChild); path != "" {
		sortedBatchChild(path, n)
	}
	d := newDBTool(t)
	before := model{}
	for _, r := range genRecords(n) {
		before[string(r[0])] = string(r[1])
	}
	after := model{}
	for k, v := range before {
		after[k] = v
	}
	sortedBatch(n, after)
	base := writeTwoskip(t, 1, before.records())
	run := func(name string, killAt int) (string, bool) {
		path := d.install(name, base)
		return path, runKilled(t, "TestSortedBatchKilled", envBatchChild+"="+path, fmt.Sprintf("%s=%d", envTxnKillAt, killAt))
	}
	// Unkilled, to count the writes.
	full, killed := run("full.db", 0)
	if killed {
		t.Fatal("child killed without a kill point")
	}
	ff, _ := os.Open(full)
	checkFile(t, ff, after)
	ff.Close()
	total := countBatchWrites(t, n, base)
	t.Logf("the batch made %d writes", total)
	for _, k := range []int{1, 2, 3, 4, total / 2, total - 1, total} {
		path, killed := run(fmt.Sprintf("k%d.db", k), k)
		if !killed {
			t.Fatalf("kill before write %d of %d: not killed", k, total)
		}
		ours := checkRecovered(t, d, path, fmt.Sprintf("kill before write %d", k), before)
		cyr, _ := os.ReadFile(path)
		mine, _ := os.ReadFile(ours)
		if string(cyr) != string(mine) {
			t.Errorf("kill before write %d: our recovery differs from Cyrus's (%d and %d bytes)", k, len(mine), len(cyr))
		}
	}
}

// countBatchWrites runs the batch of TestSortedBatchKilled on a copy of
// base in this process and returns how many writes it made.
func countBatchWrites(t *testing.T, n int, base []byte) int {
	t.Helper()
	f := txnFile(t, nil)
	if _, err := f.WriteAt(base, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(base))); err != nil {
		t.Fatal(err)
	}
	defer SeedLevels(7)()
	before := ReadCounters()
	txn, err := BeginTwoskip(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyOps(txn, sortedBatch(n, nil)); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return int(ReadCounters().Sub(before).Writes)
}

// TestBeginTwoskipView starts transactions from a view read under the
// lock: from its pages (no page read again), and, when the file changed
// after the view was read, from the file.
func TestBeginTwoskipView(t *testing.T) {
	m := model{}
	for _, r := range genRecords(1000) {
		m[string(r[0])] = string(r[1])
	}
	f := txnFile(t, m.records())
	for round := range 3 {
		fi, _ := f.Stat()
		db, err := ReadTwoskip(f.Name(), f, fi.Size())
		if err != nil {
			t.Fatal(err)
		}
		keys := sortedBatch(1000, nil)[round*10 : round*10+10]
		for _, op := range keys {
			if _, _, err := db.Get([]byte(op[0])); err != nil {
				t.Fatal(err)
			}
		}
		if round == 2 {
			// The file grew after the view: not a start.
			if _, err := f.WriteAt(make([]byte, 8), fi.Size()); err != nil {
				t.Fatal(err)
			}
		}
		txn, err := BeginTwoskipView(db, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range keys {
			if err := txn.Set([]byte(op[0]), []byte(op[1])); err != nil {
				t.Fatal(err)
			}
			m[op[0]] = op[1]
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, f, m)
	}
}

// sortedBatchChild is the child process of the sorted-batch kill tests:
// it applies a sorted batch of n changes to the twoskip file at path
// (levels seeded as countBatchWrites seeds them, so the same writes),
// killed before the write the environment names, and exits.
func sortedBatchChild(path string, n int) {
	writes := killBeforeWrite()
	SeedLevels(7)
	killedTxn(path, writes, sortedBatch(n, nil))
}
