package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/s3store"
)

// faulty starts a store with a fault-injecting proxy in front of it and
// a client that reaches the store through the proxy.
func faulty(t *testing.T, opts s3store.Options) (*s3lab.Mini, *s3lab.Proxy, *s3store.Client) {
	t.Helper()
	m := s3lab.StartMini(t, s3lab.Options{})
	p := s3lab.StartProxy(t, m.Store, 1)
	m.Setenv(t)
	opts.Endpoint = p.Endpoint
	c, err := s3store.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, p, c
}

func random(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

type readerAt []byte

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, io.EOF
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Throttling, internal errors, dropped connections, a store that does not
// answer, and answers cut in half: every upload and read completes, with
// the bytes that were sent.
func TestFaultsAreRetried(t *testing.T) {
	m, p, c := faulty(t, s3store.Options{PartSize: 5 << 20, Timeout: 3 * time.Second})
	ctx := context.Background()
	data := random(12<<20 + 777)
	p.SetRules(
		s3lab.Rule{Fault: s3lab.SlowDown, Method: "PUT", Nth: 1},
		s3lab.Rule{Fault: s3lab.InternalError, Method: "PUT", Nth: 2},
		s3lab.Rule{Fault: s3lab.Drop, Method: "PUT", Nth: 3},
		s3lab.Rule{Fault: s3lab.Hang, Method: "PUT", Nth: 4},
		s3lab.Rule{Fault: s3lab.DropAfter, Method: "POST", Path: "uploadId", Nth: 1}, // the completion took effect, its answer is lost
	)
	if err := c.Upload(ctx, m.Bucket, "f/multi", readerAt(data), int64(len(data)), true); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatalf("upload under faults: %v", err)
	}
	st := p.Stats()
	if st.Faults[s3lab.SlowDown] == 0 || st.Faults[s3lab.Hang] == 0 || st.Faults[s3lab.DropAfter] == 0 {
		t.Errorf("faults injected: %v", st.Faults)
	}
	p.SetRules(
		s3lab.Rule{Fault: s3lab.Truncate, Method: "GET", Nth: 2},
		s3lab.Rule{Fault: s3lab.Drop, Method: "GET", Nth: 4},
		s3lab.Rule{Fault: s3lab.SlowDown, Method: "HEAD", Nth: 1},
	)
	o, err := c.Open(ctx, m.Bucket, "f/multi")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	got, err := io.ReadAll(o.Reader())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read under faults: %v, equal %v", err, bytes.Equal(got, data))
	}
	if p.Stats().Faults[s3lab.Truncate] == 0 {
		t.Errorf("no answer was cut: %v", p.Stats().Faults)
	}
	// Exclusive creation: the second is refused, also when its first
	// try was throttled.
	p.SetRules(s3lab.Rule{Fault: s3lab.SlowDown, Method: "PUT", Nth: 2})
	if err := c.Put(ctx, m.Bucket, "f/lock", []byte("one"), true); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, m.Bucket, "f/lock", []byte("two"), true); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second exclusive put: %v, want fs.ErrExist", err)
	}
}

// A body damaged on its way (one bit flipped past the layers that would
// notice) is refused by the store, which checks the CRC32C sent with it,
// and the request is sent again: an object is never stored with bytes
// other than those mbtool sent, whole or in parts. The payload itself is
// signed (its SHA-256) until the store has echoed a CRC32C, and then
// not (UNSIGNED-PAYLOAD): the CRC32C is what catches the damage.
func TestDamagedBodyRefused(t *testing.T) {
	m, p, c := faulty(t, s3store.Options{PartSize: 5 << 20})
	ctx := context.Background()
	small := random(300 << 10)
	p.SetRules(s3lab.Rule{Fault: s3lab.Corrupt, Method: "PUT", Nth: 1})
	if err := c.Put(ctx, m.Bucket, "d/small", small, true); err != nil {
		t.Fatalf("put with a damaged first try: %v", err)
	}
	big := random(12<<20 + 777)
	p.SetRules(s3lab.Rule{Fault: s3lab.Corrupt, Method: "PUT", Path: "partNumber=2", Nth: 1})
	if err := c.Upload(ctx, m.Bucket, "d/big", readerAt(big), int64(len(big)), true); err != nil {
		t.Fatalf("upload with a damaged part: %v", err)
	}
	if n := p.Stats().Faults[s3lab.Corrupt]; n != 2 {
		t.Errorf("%d bodies damaged, want 2", n)
	}
	// The damaged request was sent once more than an undamaged upload of
	// the same bytes sends.
	p.SetRules()
	if err := c.Put(ctx, m.Bucket, "d/small-clean", small, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, m.Bucket, "d/big-clean", readerAt(big), int64(len(big)), true); err != nil {
		t.Fatal(err)
	}
	puts := func(key string) int {
		n := 0
		for _, r := range p.Log("/" + key) {
			if r.Method == "PUT" && strings.HasSuffix(r.Path, "/"+key) {
				n++
			}
		}
		return n
	}
	for key, want := range map[string][]byte{"d/small": small, "d/big": big} {
		if n, clean := puts(key), puts(key+"-clean"); n != clean+1 {
			t.Errorf("%s: %d PUTs, %d without the damage: the damaged one was not sent again", key, n, clean)
		}
		checkReadBack(t, c, m.Bucket, key, want)
	}
	for _, r := range p.Log("/d/") {
		// d/small went first, before the store had echoed a CRC32C.
		signed := strings.HasSuffix(r.Path, "/d/small")
		if r.Method == "PUT" && (r.PayloadHash == "UNSIGNED-PAYLOAD") == signed {
			t.Errorf("%s %s sent x-amz-content-sha256 %q", r.Method, r.Path, r.PayloadHash)
		}
	}
}

// A store that does not return the CRC32C it computed of an upload (older
// MinIO, Ceph RGW, Garage; here the proxy strips it from the answers) may
// not have checked it either: the payload is then sent signed, so that
// the store checks its SHA-256, and a body damaged on the way is refused
// and sent again. Once the store has echoed a CRC32C, payloads go
// unsigned; an unsigned one answered without the CRC32C is an error, not
// a success, and the client signs again from then on.
func TestUnechoedChecksumSigned(t *testing.T) {
	m, p, c := faulty(t, s3store.Options{PartSize: 5 << 20})
	ctx := context.Background()
	small, big := random(300<<10), random(12<<20+777)
	p.SetRules(s3lab.Rule{Fault: s3lab.Corrupt, Method: "PUT", Nth: 1},
		s3lab.Rule{Fault: s3lab.NoChecksum, Rate: 1})
	if err := c.Put(ctx, m.Bucket, "n/small", small, true); err != nil {
		t.Fatalf("put with a damaged first try to a store that echoes no CRC32C: %v", err)
	}
	if err := c.Upload(ctx, m.Bucket, "n/big", readerAt(big), int64(len(big)), true); err != nil {
		t.Fatalf("upload to a store that echoes no CRC32C: %v", err)
	}
	if st := p.Stats(); st.Faults[s3lab.Corrupt] != 1 || st.Faults[s3lab.NoChecksum] == 0 {
		t.Fatalf("the faults did not happen: %v", st.Faults)
	}
	payloads := func(prefix string) (signed, unsigned int) {
		for _, r := range p.Log(prefix) {
			if r.Method != "PUT" {
				continue
			}
			if r.PayloadHash == "UNSIGNED-PAYLOAD" {
				unsigned++
			} else {
				signed++
			}
		}
		return signed, unsigned
	}
	// Two tries of n/small, three parts of n/big.
	if s, u := payloads("/n/"); s != 5 || u != 0 {
		t.Errorf("to a store that echoes no CRC32C: %d payloads signed, %d unsigned; want 5 and 0", s, u)
	}
	for key, want := range map[string][]byte{"n/small": small, "n/big": big} {
		checkReadBack(t, c, m.Bucket, key, want)
	}

	// The store echoes: the next payloads go unsigned.
	p.SetRules()
	if err := c.Put(ctx, m.Bucket, "e/1", small, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, m.Bucket, "e/2", small, false); err != nil {
		t.Fatal(err)
	}
	if s, u := payloads("/e/"); s != 1 || u != 1 {
		t.Errorf("once the store echoed: %d payloads signed, %d unsigned; want 1 and 1", s, u)
	}

	// It stops echoing: the unsigned upload is not a success, and the
	// next one is signed again.
	p.SetRules(s3lab.Rule{Fault: s3lab.NoChecksum, Rate: 1})
	err := c.Put(ctx, m.Bucket, "u/1", small, false)
	if err == nil {
		t.Fatal("an unsigned put answered without a CRC32C succeeded")
	}
	t.Logf("as it should: %v", err)
	if err := c.Put(ctx, m.Bucket, "u/2", small, false); err != nil {
		t.Fatal(err)
	}
	if s, u := payloads("/u/"); s != 1 || u != 1 {
		t.Errorf("after the store stopped echoing: %d payloads signed, %d unsigned; want 1 and 1", s, u)
	}
}

// A store that never answers fails the request after the bound, with an
// error that says so, rather than hanging.
func TestNoAnswerIsBounded(t *testing.T) {
	m, p, c := faulty(t, s3store.Options{Timeout: time.Second, Attempts: 2})
	p.SetRules(s3lab.Rule{Fault: s3lab.Hang, Rate: 1})
	start := time.Now()
	err := c.Put(context.Background(), m.Bucket, "x", []byte("x"), false)
	if err == nil {
		t.Fatal("put to a store that never answers succeeded")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("gave up after %s", d)
	}
	t.Logf("%v (after %s)", err, time.Since(start).Round(time.Millisecond))
}

// A dump written as an object is visible only when complete: an aborted
// one leaves nothing under its key, and no unfinished upload.
func TestWriterAbortLeavesNothing(t *testing.T) {
	m, p, c := faulty(t, s3store.Options{PartSize: 5 << 20})
	ctx := context.Background()
	w := c.NewWriter(ctx, m.Bucket, "dumps/a.dlist")
	if _, err := w.Write(random(11 << 20)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if _, err := c.Open(ctx, m.Bucket, "dumps/a.dlist"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after abort: %v", err)
	}
	n := 0
	c.Unfinished(ctx, m.Bucket, "dumps/", func(s3store.Unfinished) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d unfinished uploads after abort", n)
	}
	// The completion takes effect but its answer is lost: the retry finds
	// the upload gone, and the object there.
	p.SetRules(s3lab.Rule{Fault: s3lab.DropAfter, Method: "POST", Path: "uploadId", Nth: 1})
	data := random(11<<20 + 5)
	w = c.NewWriter(ctx, m.Bucket, "dumps/a.dlist")
	for b := data; len(b) > 0; b = b[min(len(b), 1<<20):] {
		if _, err := w.Write(b[:min(len(b), 1<<20)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	o, err := c.Open(ctx, m.Bucket, "dumps/a.dlist")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(o.Reader())
	if !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, wrote %d", len(got), len(data))
	}
	if p.Stats().Faults[s3lab.DropAfter] != 1 {
		t.Errorf("faults: %v", p.Stats().Faults)
	}
}

// checkReadBack reads the object key back whole and says if it is not
// want.
func checkReadBack(t *testing.T, c *s3store.Client, bucket, key string, want []byte) {
	t.Helper()
	o, err := c.Open(context.Background(), bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o.Reader())
	o.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s read back: %v, %d bytes, equal %v", key, err, len(got), bytes.Equal(got, want))
	}
}
