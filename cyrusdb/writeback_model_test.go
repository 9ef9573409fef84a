package cyrusdb

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// TestWriteCacheRandom: random transactions of small and
// large values (some larger than half the cache, written through), sets,
// replacements and deletes in random key order, Gets in between; each
// committed file is checked against the model, and by Cyrus's
// cyr_dbtool when it is installed.
func TestWriteCacheRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := model{}
	for _, rec := range genRecords(300) {
		m[string(rec[0])] = string(rec[1])
	}
	f := txnFile(t, m.records())
	keys := func() []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		return ks
	}
	for round := range 25 {
		txn, err := BeginTwoskip(f.Name(), f)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			k := fmt.Sprintf("Nk%05d", r.IntN(2000))
			switch op := r.IntN(10); {
			case op < 2:
				ks := keys()
				if len(ks) == 0 {
					continue
				}
				k = ks[r.IntN(len(ks))]
				if err := txn.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				delete(m, k)
			case op < 3:
				v, ok, err := txn.Get([]byte(k))
				want, wok := m[k]
				if err != nil || ok != wok || string(v) != want {
					t.Fatalf("round %d op %d: Get(%q) = %d bytes %v %v; want %d bytes %v", round, i, k, len(v), ok, err, len(want), wok)
				}
			default:
				n := 10 + r.IntN(200)
				if r.IntN(15) == 0 {
					n = 60<<10 + r.IntN(300<<10)
				}
				v := bytes.Repeat([]byte{byte('a' + r.IntN(26))}, n)
				if err := txn.Set([]byte(k), v); err != nil {
					t.Fatal(err)
				}
				m[k] = string(v)
			}
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, f, m)
	}
	if os.Getenv("MBTOOL_REAL_CYRUS") == "" {
		return
	}
	d := newDBTool(t)
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	p := d.install("model.db", raw)
	if !d.consistent(p) {
		t.Fatal("cyr_dbtool consistent fails")
	}
	if got := d.show(p, "twoskip"); !equalRecords(got, m.records()) {
		t.Fatalf("Cyrus reads %d records, want %d", len(got), len(m))
	}
}
