package cyrusdb

import (
	"fmt"
	"os"
	"testing"
)

const envSortedChild = "MBTOOL_SORTED_BATCH_CHILD"

// TestSortedBatchKilledEvery: TestSortedBatchKilled at
// every write of a batch of 2,500 (its pages evicted: the batch
// outgrows the cache), not only at chosen ones.
func TestSortedBatchKilledEvery(t *testing.T) {
	const n = 2500
	if path := os.Getenv(envSortedChild); path != "" {
		sortedBatchChild(path, n)
	}
	if os.Getenv("MBTOOL_REAL_CYRUS") == "" {
		t.Skip("needs cyr_dbtool")
	}
	d := newDBTool(t)
	before := model{}
	for _, r := range genRecords(n) {
		before[string(r[0])] = string(r[1])
	}
	base := writeTwoskip(t, 1, before.records())
	total := countBatchWrites(t, n, base)
	t.Logf("the batch made %d writes", total)
	for k := 1; k <= total; k++ {
		path := d.install(fmt.Sprintf("k%d.db", k), base)
		if !runKilled(t, "TestSortedBatchKilledEvery", envSortedChild+"="+path, fmt.Sprintf("%s=%d", envTxnKillAt, k)) {
			t.Fatalf("kill before write %d of %d: not killed", k, total)
		}
		ours := checkRecovered(t, d, path, fmt.Sprintf("kill before write %d", k), before)
		os.Remove(path)
		os.Remove(ours)
	}
}
