package cyrusdb

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// benchDB writes n mailboxes.db-like records to a file and opens it.
func benchDB(b *testing.B, n int) (*Twoskip, [][2][]byte, int64) {
	b.Helper()
	recs := genRecords(n)
	path := filepath.Join(b.TempDir(), "mailboxes.db")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := WriteTwoskip(f, 1, iter(recs)); err != nil {
		b.Fatal(err)
	}
	fi, _ := f.Stat()
	f.Close()
	ts, err := OpenTwoskip(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ts.Close() })
	return ts, recs, fi.Size()
}

// BenchmarkForEach100k walks a 100,000-record file through the locked
// descriptor, checking every CRC and link.
func BenchmarkForEach100k(b *testing.B) {
	ts, recs, size := benchDB(b, 100_000)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := ts.ForEach(nil, func(k, v []byte) error { n++; return nil }); err != nil || n != len(recs) {
			b.Fatal(err, n)
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGet100k looks up keys of a 100,000-record file.
func BenchmarkGet100k(b *testing.B) {
	ts, recs, _ := benchDB(b, 100_000)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		r := recs[i*7919%len(recs)]
		if v, ok, err := ts.Get(r[0]); !ok || err != nil || !bytes.Equal(v, r[1]) {
			b.Fatal(ok, err)
		}
		i++
	}
}

// BenchmarkWriteTwoskip100k writes a 100,000-record file.
func BenchmarkWriteTwoskip100k(b *testing.B) {
	recs := genRecords(100_000)
	path := filepath.Join(b.TempDir(), "db")
	for b.Loop() {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteTwoskip(f, 1, iter(recs)); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkReadFlat reads a 100,000-line flat file.
func BenchmarkReadFlat100k(b *testing.B) {
	var buf bytes.Buffer
	recs := genRecords(100_000)
	if err := WriteFlat(&buf, recs); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		n := 0
		if err := ReadFlat("sub", bytes.NewReader(buf.Bytes()), func(k, v []byte) error { n++; return nil }); err != nil || n != len(recs) {
			b.Fatal(err, n)
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkTxnGet40k makes transactions of 20 searches each on a
// 40,000-record file, for keys spread over the file (uniqueids), as
// restore's commits search mailboxes.db before each change (a
// transaction that changes nothing writes nothing). The page cache
// must not make this slower than reading each record head by itself;
// with the keys next to each other (a user's mailboxes:
// recs[(i/20*7919+i%20)%n]) it made a transaction 2x faster.
func BenchmarkTxnGet40k(b *testing.B) {
	recs := genRecords(40_000)
	path := filepath.Join(b.TempDir(), "mailboxes.db")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := WriteTwoskip(f, 1, iter(recs)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		txn, err := BeginTwoskip(path, f)
		if err != nil {
			b.Fatal(err)
		}
		for range 20 {
			r := recs[i*7919%len(recs)]
			if v, ok, err := txn.Get(r[0]); !ok || err != nil || !bytes.Equal(v, r[1]) {
				b.Fatal(ok, err)
			}
			i++
		}
		if err := txn.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTxnCommitGroup makes transactions as restore's commit groups
// make them in mailboxes.db: 64 mailboxes each, an N record (names in
// ascending order, after the existing ones) and an I record (random
// uniqueids, spread over the file) per mailbox, set in key order, on a
// file of 40,000 records. It reports the record reads and the write
// system calls per mailbox besides the time (three fsyncs a group
// included).
func BenchmarkTxnCommitGroup(b *testing.B) {
	recs := genRecords(20_000)
	for i := range 20_000 {
		recs = append(recs, [2][]byte{fmt.Appendf(nil, "I%016x-%d", uint64(i)*0x9E3779B97F4A7C15, i), []byte("%(T e N user.x P default)")})
	}
	slices.SortFunc(recs, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	path := filepath.Join(b.TempDir(), "mailboxes.db")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := WriteTwoskip(f, 1, iter(recs)); err != nil {
		b.Fatal(err)
	}
	before := ReadCounters()
	n := 0
	for b.Loop() {
		var keys []string
		for range 64 {
			keys = append(keys, fmt.Sprintf("Nuser\x1fz%07d", n), fmt.Sprintf("I%016x-new", uint64(n)*0xC2B2AE3D27D4EB4F))
			n++
		}
		slices.Sort(keys)
		txn, err := BeginTwoskip(path, f)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			if err := txn.Set([]byte(k), []byte("%(T e I 0123456789abcdef P default V 1795877547 C 1 F 1 M 1795877546 A %(u lrswipkxtecdan))")); err != nil {
				b.Fatal(err)
			}
		}
		if err := txn.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	d := ReadCounters().Sub(before)
	b.ReportMetric(float64(d.RecordReads)/float64(n), "reads/mailbox")
	b.ReportMetric(float64(d.Writes)/float64(n), "writes/mailbox")
}
