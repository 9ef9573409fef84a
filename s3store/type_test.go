package s3store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/s3store"
)

// mailText returns n bytes that look like mail: what a pack holds.
func mailText(n int) []byte {
	words := []string{"Received: ", "from ", "mail.example.org ", "by ", "imap ", "\r\n", "Subject: ", "hello ", "world "}
	rng := rand.New(rand.NewPCG(5, 6))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

// TestObjectsStoredAsSent: SeaweedFS gzips an upload whose first bytes
// look like text when its Content-Type is the SDK's default
// (application/octet-stream, which it takes for "unknown"), and then
// decompresses a chunk from its start for every ranged GET of it: a pack
// read in 64 KiB reads took 20 times as long as the same bytes stored as
// sent. Objects written whole, by a multipart upload from a file and by a
// streaming Writer are kept uncompressed, and read back as written.
func TestObjectsStoredAsSent(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	m.Setenv(t)
	c, err := s3store.New(t.Context(), s3store.Options{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	small, big := mailText(100<<10), mailText(11<<20)
	if err := c.Put(ctx, m.Bucket, "put", small, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, m.Bucket, "upload", bytes.NewReader(big), int64(len(big)), false); err != nil {
		t.Fatal(err)
	}
	w := c.NewWriter(ctx, m.Bucket, "writer")
	if _, err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	for key, data := range map[string][]byte{"put": small, "upload": big, "writer": big} {
		chunks, compressed, err := m.Compressed(key)
		if err != nil {
			t.Fatal(err)
		}
		if chunks == 0 || compressed != 0 {
			t.Errorf("%s: the store keeps %d of its %d chunks compressed, want none", key, compressed, chunks)
		}
		o, err := c.Open(ctx, m.Bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o.Reader())
		o.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: read back %d bytes (%v), want its %d", key, len(got), err, len(data))
		}
	}
}

// TestUploadSummed: UploadSummed sends the CRC32Cs of the bytes as they
// were written to Sums, not of what it reads back from the spool: an
// upload whose spool no longer holds the bytes written (one byte changed,
// in the second part of a multipart upload or in a single PUT) fails the
// store's check and leaves nothing under its key, and one whose spool
// holds them is stored as written.
func TestUploadSummed(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	m.Setenv(t)
	c, err := s3store.New(t.Context(), s3store.Options{PartSize: 5 << 20, Parallel: 2, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, size := range []int{100<<10 + 7, 12<<20 + 12345} {
		data := mailText(size)
		sums := &s3store.Sums{}
		for p := data; len(p) > 0; p = p[min(len(p), 100003):] {
			sums.Write(p[:min(len(p), 100003)])
		}
		changed := append([]byte(nil), data...)
		changed[size*2/3] ^= 1
		bad := fmt.Sprintf("changed-%d", size)
		if err := c.UploadSummed(ctx, m.Bucket, bad, bytes.NewReader(changed), sums, true); err == nil {
			t.Errorf("%d bytes, one changed in the spool: uploaded", size)
		}
		if o, err := c.Open(ctx, m.Bucket, bad); err == nil {
			o.Close()
			t.Errorf("%d bytes, one changed in the spool: stored", size)
		}
		good := fmt.Sprintf("good-%d", size)
		if err := c.UploadSummed(ctx, m.Bucket, good, bytes.NewReader(data), sums, true); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		o, err := c.Open(ctx, m.Bucket, good)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o.Reader())
		o.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read back %d bytes (%v), not as written", size, len(got), err)
		}
	}
}
