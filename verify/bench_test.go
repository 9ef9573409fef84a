package verify

import (
	"bytes"
	"context"
	"crypto/sha1"
	"io"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures/gen"
)

// BenchmarkVerify verifies a generated dump of about 100 MB of messages
// (fixtures/gen) held in memory; MB/s counts message bytes. The sha1
// benchmark hashes the same messages on one core with Go's crypto/sha1, the
// floor of a sequential checker (coreutils' sha1sum is slower still: see
// docs/benchmarks.md, made by go run ./scripts/bench).
func BenchmarkVerify(b *testing.B) {
	var buf bytes.Buffer
	c, err := gen.WriteDump(&buf, gen.Options{Seed: 1, Messages: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(c.Bytes)
		for b.Loop() {
			sum, err := Run(context.Background(), bytes.NewReader(data), Options{})
			if err != nil || !sum.OK() {
				b.Fatalf("%v %+v", err, sum)
			}
		}
	})
	b.Run("sha1", func(b *testing.B) {
		// The message bytes only, found by re-reading the dump's literals
		// once up front.
		var msgs [][]byte
		d, _ := dumpfile.NewReader(bytes.NewReader(data))
		for {
			_, name, _, err := d.Next()
			if err != nil {
				break
			}
			if name != "MESSAGE" {
				continue
			}
			for {
				tok, err := d.DL().Next()
				if err != nil || tok.Kind == dlist.End {
					break
				}
				if tok.Kind != dlist.File {
					continue
				}
				m, _ := io.ReadAll(d.DL().Body())
				msgs = append(msgs, m)
			}
		}
		b.SetBytes(c.Bytes)
		for b.Loop() {
			for _, m := range msgs {
				sha1.Sum(m)
			}
		}
	})
}
