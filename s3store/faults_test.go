package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/s3lab"
)

// faultClient starts a real SeaweedFS with a fault-injecting proxy in
// front and returns a client that goes through the proxy.
func faultClient(t *testing.T) (*Client, *s3lab.Proxy) {
	t.Helper()
	m := s3lab.StartMini(t, s3lab.Options{})
	px := s3lab.StartProxy(t, m.Store, 1)
	px.Store.Setenv(t)
	c, err := New(context.Background(), Options{Endpoint: px.Endpoint, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return c, px
}

// TestPutExclusiveLostAnswer: the store wrote an exclusive PUT but the
// answer was lost (the connection dropped after the store acted); the
// retry meets the object the first attempt made. That is success, not
// "exists": a lock file written so would otherwise fail the run and stay
// behind, blocking other hosts until it goes stale.
func TestPutExclusiveLostAnswer(t *testing.T) {
	c, px := faultClient(t)
	ctx := context.Background()
	b := px.Bucket
	px.SetRules(s3lab.Rule{Fault: s3lab.DropAfter, Method: "PUT", Nth: 1})
	if err := c.Put(ctx, b, "locks/a", []byte("mine"), true); err != nil {
		t.Fatalf("exclusive PUT whose first answer was lost: %v", err)
	}
	if st := px.Stats(); st.Faults[s3lab.DropAfter] != 1 {
		t.Fatalf("the fault did not happen: %+v", st)
	}
	px.SetRules()
	if err := c.Put(ctx, b, "locks/a", []byte("other"), true); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("exclusive PUT of other bytes over an existing key: %v, want fs.ErrExist", err)
	}
	o, err := c.Open(ctx, b, "locks/a")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got, err := io.ReadAll(o.Reader()); err != nil || string(got) != "mine" {
		t.Fatalf("locks/a holds %q, %v", got, err)
	}
}

// TestReadTruncated: answers to GETs cut short (the connection dropped in
// the middle of the body) are read again, for lone ranged reads and for
// streamed ones alike.
func TestReadTruncated(t *testing.T) {
	c, px := faultClient(t)
	ctx := context.Background()
	data := make([]byte, 3<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	if err := c.Put(ctx, px.Bucket, "obj", data, false); err != nil {
		t.Fatal(err)
	}
	o, err := c.Open(ctx, px.Bucket, "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	px.SetRules(s3lab.Rule{Fault: s3lab.Truncate, Method: "GET", Nth: 1})
	p := make([]byte, 1000)
	if _, err := o.ReadAt(p, 12345); err != nil || !bytes.Equal(p, data[12345:13345]) {
		t.Fatalf("a lone read whose answer was cut short: %v", err)
	}
	px.SetRules(s3lab.Rule{Fault: s3lab.Truncate, Method: "GET", Nth: 1}, s3lab.Rule{Fault: s3lab.Truncate, Method: "GET", Nth: 3})
	got, err := io.ReadAll(o.Reader())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a streamed read whose answers were cut short: %d bytes, %v", len(got), err)
	}
	if st := px.Stats(); st.Faults[s3lab.Truncate] < 2 {
		t.Fatalf("the faults did not happen: %+v", st)
	}
}

// TestListTruncated: a listing whose answer was cut short is asked for
// again, as any other request.
func TestListTruncated(t *testing.T) {
	c, px := faultClient(t)
	ctx := context.Background()
	for _, k := range []string{"d/a", "d/b", "d/c"} {
		if err := c.Put(ctx, px.Bucket, k, []byte(k), true); err != nil {
			t.Fatal(err)
		}
	}
	px.SetRules(s3lab.Rule{Fault: s3lab.Truncate, Method: "GET", Path: "list-type", Nth: 1})
	var keys []string
	err := c.List(ctx, px.Bucket, "d/", func(e Entry) error { keys = append(keys, e.Key); return nil })
	if err != nil || len(keys) != 3 {
		t.Fatalf("a listing whose answer was cut short: %v, %v", keys, err)
	}
	if st := px.Stats(); st.Faults[s3lab.Truncate] != 1 {
		t.Fatalf("the fault did not happen: %+v", st)
	}
}

// TestUploadCompleteLostAnswer: the store completed a multipart upload
// but the answer was lost; the retry must not turn the finished upload
// into a failure. (An exclusive upload, a repository file, then meets its
// own object as fs.ErrExist, which the repository takes as "the same
// bytes are there": names are content addresses.)
func TestUploadCompleteLostAnswer(t *testing.T) {
	c, px := faultClient(t)
	ctx := context.Background()
	data := make([]byte, 6<<20)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(data)
	c.opts.PartSize = minPartSize
	px.SetRules(s3lab.Rule{Fault: s3lab.DropAfter, Method: "POST", Path: "uploadId", Nth: 1})
	if err := c.Upload(ctx, px.Bucket, "big", bytes.NewReader(data), int64(len(data)), false); err != nil {
		t.Fatalf("an upload whose completion's answer was lost: %v", err)
	}
	if st := px.Stats(); st.Faults[s3lab.DropAfter] != 1 {
		t.Fatalf("the fault did not happen: %+v", st)
	}
	px.SetRules()
	o, err := c.Open(ctx, px.Bucket, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got, err := io.ReadAll(o.Reader()); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// TestUploadSpreadsParts: an upload is sent as parts of about the same
// size, as many at once as Parallel allows when it is large enough for
// them (parts of 5 MiB at least): the last pack of a dump, which the run
// waits for, went as one PUT whenever it was under the part size, and a
// pack of 32 MiB and a few bytes as two parts of 16 MiB and a third of a
// few bytes.
func TestUploadSpreadsParts(t *testing.T) {
	c, px := faultClient(t)
	ctx := context.Background()
	for _, tc := range []struct {
		size  int
		parts int
	}{
		{12 << 20, 2},     // under the part size: two of 6 MiB
		{32<<20 + 100, 4}, // four of 8 MiB and a bit
		{9 << 20, 1},      // too small for two parts: one PUT
		{100<<20 + 10, 7}, // seven of the part size (16 MiB) or less
	} {
		data := make([]byte, tc.size)
		_, _ = rand.NewChaCha8([32]byte{5}).Read(data)
		key := fmt.Sprintf("spread-%d", tc.size)
		before := len(px.Log(""))
		if err := c.Upload(ctx, px.Bucket, key, bytes.NewReader(data), int64(len(data)), true); err != nil {
			t.Fatal(err)
		}
		var puts []s3lab.Request
		for _, q := range px.Log("")[before:] {
			if q.Method == "PUT" {
				puts = append(puts, q)
			}
		}
		if len(puts) != tc.parts {
			t.Errorf("%d bytes: sent in %d PUTs, want %d", tc.size, len(puts), tc.parts)
		}
		if tc.parts > 1 && tc.parts <= c.opts.Parallel {
			// Every part in flight at once: each began before any ended.
			for _, q := range puts {
				for _, o := range puts {
					if !q.Start.Before(o.End) {
						t.Errorf("%d bytes: a part began at %s, after another ended (%s)", tc.size,
							q.Start.Format(time.StampMicro), o.End.Format(time.StampMicro))
					}
				}
			}
		}
		o, err := c.Open(ctx, px.Bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o.Reader())
		o.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d, %v", tc.size, len(got), err)
		}
	}
}

// TestOpenReadsSmallWhole: opening a small object (a state, a snapshot)
// and reading it all costs one request, where a HEAD, a lone GET and a
// streaming GET were three; an empty object, one larger than the first
// GET, and an Open whose answer was cut short read as they should.
func TestOpenReadsSmallWhole(t *testing.T) {
	c, px := faultClient(t)
	ctx := context.Background()
	small := make([]byte, 100<<10)
	big := make([]byte, headBytes+12345)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(small)
	_, _ = rand.NewChaCha8([32]byte{4}).Read(big)
	for key, data := range map[string][]byte{"small": small, "big": big, "empty": nil} {
		if err := c.Put(ctx, px.Bucket, key, data, false); err != nil {
			t.Fatal(err)
		}
	}
	read := func(key string) []byte {
		t.Helper()
		o, err := c.Open(ctx, px.Bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		p := make([]byte, 1000) // the first read of a state: its start
		n, err := o.ReadAt(p, 0)
		if err != nil && !(errors.Is(err, io.EOF) && n == int(o.Size())) {
			t.Fatalf("%s: %v", key, err)
		}
		rest, err := io.ReadAll(io.NewSectionReader(o, int64(n), o.Size()-int64(n)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return append(p[:n], rest...)
	}
	before := px.Stats().Requests
	if got := read("small"); !bytes.Equal(got, small) {
		t.Fatal("the small object read back differs")
	}
	if n := px.Stats().Requests - before; n != 1 {
		t.Errorf("opening and reading a %d-byte object took %d requests, want 1", len(small), n)
	}
	if got := read("big"); !bytes.Equal(got, big) {
		t.Fatal("the larger object read back differs")
	}
	if got := read("empty"); len(got) != 0 {
		t.Fatalf("the empty object read back %d bytes", len(got))
	}
	px.SetRules(s3lab.Rule{Fault: s3lab.Truncate, Method: "GET", Nth: 1})
	if got := read("small"); !bytes.Equal(got, small) {
		t.Fatal("the small object read back after a cut-short Open differs")
	}
	if st := px.Stats(); st.Faults[s3lab.Truncate] < 1 {
		t.Fatalf("the fault did not happen: %+v", st)
	}
}
