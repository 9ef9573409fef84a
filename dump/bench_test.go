package dump

import (
	"context"
	"io"
	"os"
	"testing"
)

// BenchmarkDumpPartition dumps the partition named by MBTOOL_BENCH_CONF (a
// generated one: go run ./scripts/bench makes them) to io.Discard. It is
// skipped without it; scripts/bench compares whole runs with tar.
func BenchmarkDumpPartition(b *testing.B) {
	conf := os.Getenv("MBTOOL_BENCH_CONF")
	if conf == "" {
		b.Skip("MBTOOL_BENCH_CONF not set")
	}
	cfg := openSpoolB(b, conf)
	var sum *Summary
	for b.Loop() {
		var err error
		sum, err = Run(context.Background(), cfg, io.Discard, Options{All: true})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(sum.Bytes)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sum.Records), "ns/record")
}
