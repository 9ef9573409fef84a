package partition

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
)

// manySpool writes a configuration whose mailboxes.db holds users users
// with folders mailboxes each (user.uNNNNNN, user.uNNNNNN.fK), their N and
// I records, and no mailbox files: enough for everything that only reads
// mailboxes.db.
func manySpool(t testing.TB, users, folders int) *Spool {
	t.Helper()
	dir := t.TempDir()
	conf := "configdirectory: " + dir + "/config\npartition-default: " + dir + "/spool\n" +
		"defaultpartition: default\nhashimapspool: true\n"
	cfg, err := ParseConfig(strings.NewReader(conf), "many.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir + "/config", dir + "/spool"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var recs [][2][]byte
	for u := range users {
		for f := range folders {
			name := manyName(u, f)
			e := Entry{Name: name, UniqueID: fmt.Sprintf("id%022d", u*folders+f), Partition: "default",
				Type: "e", UIDValidity: 1700000000, MTime: 1700000000,
				ACL: []ACLEntry{{ID: fmt.Sprintf("u%06d", u), Rights: "lrswipkxtecdan"}}}
			n, err := EncodeEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			i, err := EncodeIDEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, [2][]byte{NameKey(name), n}, [2][]byte{IDKey(e.UniqueID), i})
		}
	}
	sort.Slice(recs, func(i, j int) bool { return cyrusdb.KeyLess(recs[i][0], recs[j][0]) })
	if err := WriteTwoskipFile(cfg.MboxlistPath, Owner{UID: -1}, recs); err != nil {
		t.Fatal(err)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func manyName(u, f int) string {
	if f == 0 {
		return fmt.Sprintf("user.u%06d", u)
	}
	return fmt.Sprintf("user.u%06d.f%d", u, f)
}

// TestLookupReadsGrowAsLog counts the twoskip records a mailbox lookup
// reads at 10x and 100x the mailboxes: a search down the skip list reads
// O(log n) of them, where a scan (what Lookup did before) reads O(n).
func TestLookupReadsGrowAsLog(t *testing.T) {
	const folders = 10
	sizes := []int{100, 1000, 10000} // users: 1,000 to 100,000 mailboxes
	if testing.Short() {
		sizes = sizes[:2]
	}
	var perLookup []float64
	for _, users := range sizes {
		s := manySpool(t, users, folders)
		const lookups = 200
		before := cyrusdb.ReadCounters()
		for i := range lookups {
			u := (i * 7919) % users
			name := manyName(u, i%folders)
			e, err := s.Lookup(name)
			if err != nil || e.Name != name {
				t.Fatalf("Lookup(%s) = %v, %v", name, e.Name, err)
			}
			if _, ok, err := s.LookupAny(name + ".absent"); ok || err != nil {
				t.Fatalf("LookupAny(absent) = %v, %v", ok, err)
			}
			mbs, err := s.UserMailboxes(fmt.Sprintf("u%06d", u))
			if err != nil || len(mbs) != folders {
				t.Fatalf("UserMailboxes(u%06d) = %d, %v", u, len(mbs), err)
			}
		}
		d := cyrusdb.ReadCounters().Sub(before)
		if d.Walks != 0 {
			t.Errorf("%d mailboxes: %d whole-file walks for %d lookups", users*folders, d.Walks, lookups)
		}
		per := float64(d.RecordReads) / lookups
		perLookup = append(perLookup, per)
		n := float64(2 * users * folders) // N and I records
		// Three searches and the folders: a fair skip list reads about
		// 2 log2 n records per search.
		if bound := 3*3*math.Log2(n) + folders + 4; per > bound {
			t.Errorf("%d records: %.1f record reads per lookup round, bound %.1f", int(n), per, bound)
		}
		t.Logf("%d records: %.1f record reads per lookup round", int(n), per)
	}
	// 10x the records adds a constant (log), never a factor.
	for i := 1; i < len(perLookup); i++ {
		if perLookup[i] > 1.6*perLookup[i-1] {
			t.Errorf("record reads per lookup grew from %.1f to %.1f for 10x the mailboxes", perLookup[i-1], perLookup[i])
		}
	}
}

// TestUpdateMailboxesGrowsAsLog registers mailboxes one transaction at a
// time, as restore does, at 10x and 100x the mailboxes, and counts the
// work: whole-file passes only at Cyrus's checkpoints (when the file has
// doubled: O(log n) of them), record reads per mailbox O(log n). Before,
// every transaction rewrote the file: n passes, O(n) reads per mailbox.
func TestUpdateMailboxesGrowsAsLog(t *testing.T) {
	sizes := []int{100, 1000, 10000}
	if testing.Short() {
		sizes = sizes[:2]
	}
	var per []float64
	for _, users := range sizes {
		n := users
		s := manySpool(t, n/10, 1) // the file grows tenfold
		before := cyrusdb.ReadCounters()
		const group = 10 // restore registers a user's folders together
		for i := 0; i < n; i += group {
			err := s.UpdateMailboxes(Owner{UID: -1}, func(tx *MailboxesTx) error {
				for j := i; j < i+group; j++ {
					name := fmt.Sprintf("user.v%06d", j)
					if _, ok, err := tx.Lookup(name); ok || err != nil {
						return fmt.Errorf("Lookup(%s) = %v, %v", name, ok, err)
					}
					err := tx.Put(Entry{Name: name, UniqueID: fmt.Sprintf("new%021d", j), Partition: "default",
						Type: "e", UIDValidity: 1700000000, MTime: 1700000000})
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// The Spool's open handle sees each commit, in place or by
			// a checkpoint's rename.
			last := fmt.Sprintf("user.v%06d", i+group-1)
			if e, ok, err := s.LookupAny(last); !ok || err != nil || e.Name != last {
				t.Fatalf("LookupAny(%s) after its commit = %v, %v", last, ok, err)
			}
		}
		d := cyrusdb.ReadCounters().Sub(before)
		p := float64(d.RecordReads) / float64(n)
		per = append(per, p)
		t.Logf("%d mailboxes added to %d: %d whole-file passes, %d rewrites, %.1f record reads per mailbox",
			n, n/10, d.Walks, d.FreshFiles, p)
		if max := int64(2*math.Log2(10)) + 2; d.Walks > max {
			t.Errorf("%d mailboxes: %d whole-file passes, more than %d", n, d.Walks, max)
		}
		// The result is what Cyrus reads: every level linked, every record.
		db, err := cyrusdb.OpenTwoskip(s.Config.MboxlistPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Check(); err != nil {
			t.Fatal(err)
		}
		if got, want := db.NumRecords(), uint64(2*(n+n/10)); got != want {
			t.Errorf("%d records, want %d", got, want)
		}
		db.Close()
	}
	// Per mailbox and per log2 of the records, the reads stay flat; a
	// rewrite per transaction makes them grow about 6x per 10x.
	for i := 1; i < len(per); i++ {
		a, b := per[i-1]/math.Log2(float64(sizes[i-1])), per[i]/math.Log2(float64(sizes[i]))
		if b > 1.5*a {
			t.Errorf("record reads per mailbox per log2 n grew from %.1f to %.1f for 10x the mailboxes", a, b)
		}
	}
}
