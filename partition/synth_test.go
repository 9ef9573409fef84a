package partition

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"hash/crc32"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/cyrusdb"
)

// synthSpool writes a minimal spool holding one mailbox, user.bench, with
// n index records (v17, valid CRCs, no message files), laid out by the
// rules this package reads: the real fixtures are too small to show how
// reading scales. It returns the Spool.
func synthSpool(t testing.TB, n int) *Spool {
	t.Helper()
	dir := t.TempDir()
	const id = "bench0000000000000000000a"
	conf := "configdirectory: " + dir + "/config\npartition-default: " + dir + "/spool\n" +
		"defaultpartition: default\nhashimapspool: true\n"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := ParseConfig(strings.NewReader(conf), "synth.conf")
	must(err)
	mdir := idPath(dir+"/spool", id)
	must(os.MkdirAll(mdir, 0o755))
	must(os.MkdirAll(dir+"/config", 0o755))

	f, err := os.Create(cfg.MboxlistPath)
	must(err)
	recs := [][2]string{
		{"I" + id, "%(T e N user\x1fbench P default V 1700000000 C 1 F 1 M 1700000000 A %(bench lrswipkxtecdan) H ())"},
		{"Nuser\x1fbench", "%(T e I " + id + " P default V 1700000000 C 1 F 1 M 1700000000 A %(bench lrswipkxtecdan))"},
	}
	i := 0
	must(cyrusdb.WriteTwoskip(f, 1, func() ([]byte, []byte, bool) {
		if i == len(recs) {
			return nil, nil, false
		}
		i++
		return []byte(recs[i-1][0]), []byte(recs[i-1][1]), true
	}))
	must(f.Close())

	must(os.WriteFile(mdir+"/"+FileHeader, []byte(HeaderMagic+
		"%(T e N user.bench I "+id+" Q user.bench A %(bench lrswipkxtecdan) U ($Label1 Junk))\n"), 0o644))

	be := binary.BigEndian
	h := make([]byte, 160)
	be.PutUint32(h[8:], 17)
	be.PutUint32(h[12:], 160)
	be.PutUint32(h[16:], 112)
	be.PutUint32(h[20:], uint32(n))
	be.PutUint32(h[28:], uint32(n))
	be.PutUint32(h[44:], 1700000000)
	be.PutUint64(h[68:], uint64(n)+1)
	be.PutUint32(h[84:], uint32(n))
	be.PutUint32(h[156:], crc32.ChecksumIEEE(h[:156]))
	w, err := os.Create(mdir + "/" + FileIndex)
	must(err)
	_, err = w.Write(h)
	must(err)
	buf := make([]byte, 0, 112*1024)
	for uid := 1; uid <= n; uid++ {
		r := make([]byte, 112)
		be.PutUint32(r[0:], uint32(uid))
		be.PutUint32(r[4:], 1700000000+uint32(uid))
		be.PutUint32(r[12:], 10000+uint32(uid%5000))
		be.PutUint32(r[32:], uint32(uid%32))
		be.PutUint32(r[36:], uint32(uid%4))
		sum := sha1.Sum(r[:8])
		copy(r[60:], sum[:])
		be.PutUint64(r[80:], uint64(uid)+1)
		be.PutUint32(r[108:], crc32.ChecksumIEEE(r[:108]))
		buf = append(buf, r...)
		if len(buf) == cap(buf) || uid == n {
			_, err = w.Write(buf)
			must(err)
			buf = buf[:0]
		}
	}
	must(w.Close())
	s, err := Open(cfg)
	must(err)
	return s
}

// readBench opens user.bench and walks its records, returning the count.
func readBench(t testing.TB, s *Spool) int {
	e, err := s.Lookup("user.bench")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n := 0
	var prev uint32
	err = m.Records(func(r Record) error {
		if r.UID != prev+1 || r.Size < 10000 {
			t.Fatalf("record %+v after uid %d", r, prev)
		}
		prev = r.UID
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLargeIndexMemory checks that a 22 MB index is read through a
// temporary file with memory independent of its size.
func TestLargeIndexMemory(t *testing.T) {
	const n = 200_000 // 22.4 MB of records, above MemoryLimit
	s := synthSpool(t, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if got := readBench(t, s); got != n {
		t.Fatalf("%d records", got)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Errorf("allocated %d bytes reading %d records", alloc, n)
	} else {
		t.Logf("allocated %d bytes reading %d records (%d bytes of index)", alloc, n, n*112)
	}
}

// BenchmarkIndexVsHash compares reading 100,000 index records (snapshot,
// CRC checks, decoding) with SHA-1 hashing the message bytes they stand
// for, at the spool-average size of 10,180 bytes per message
// (the 100,000-message partition of scripts/bench: about 1 GB in 95,000 files), from memory — a lower bound
// for hashing the files. It reports both times per run and their ratio.
func BenchmarkIndexVsHash(b *testing.B) {
	const n = 100_000
	const avg = 10_180
	s := synthSpool(b, n)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>8)
	}
	var idx, hash time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if readBench(b, s) != n {
			b.Fatal("short read")
		}
		t1 := time.Now()
		h := sha1.New()
		for left := int64(n * avg); left > 0; left -= int64(len(chunk)) {
			h.Write(chunk[:min(left, int64(len(chunk)))])
		}
		h.Sum(nil)
		t2 := time.Now()
		idx += t1.Sub(t0)
		hash += t2.Sub(t1)
	}
	b.ReportMetric(float64(idx.Milliseconds())/float64(b.N), "index-ms/op")
	b.ReportMetric(float64(hash.Milliseconds())/float64(b.N), "sha1-ms/op")
	b.ReportMetric(float64(idx)/float64(hash), "index/sha1")
}
