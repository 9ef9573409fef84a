package s3lab_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/s3store"
)

// TestCredentials checks, through mbtool's own S3 client, that a store
// takes requests signed with its credentials (through the proxy as well:
// signatures stay valid) and refuses a wrong secret.
func TestCredentials(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	px := s3lab.StartProxy(t, m.Store, 1)
	ctx := context.Background()
	for _, st := range []*s3lab.Store{m.Store, px.Store} {
		st.Setenv(t)
		c, err := s3store.New(ctx, s3store.Options{Endpoint: st.Endpoint})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Put(ctx, st.Bucket, "k", []byte("v"), true); err != nil {
			t.Fatalf("PUT with the store's credentials through %s: %v", st.Endpoint, err)
		}
		o, err := c.Open(ctx, st.Bucket, "k")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(o.Reader())
		o.Close()
		if err != nil || string(b) != "v" {
			t.Fatalf("GET: %q, %v", b, err)
		}
		if err := c.Delete(ctx, st.Bucket, "k"); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SECRET_ACCESS_KEY", st.SecretKey+"x")
		c, err = s3store.New(ctx, s3store.Options{Endpoint: st.Endpoint, Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Put(ctx, st.Bucket, "k2", []byte("v"), true)
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("PUT with a wrong secret through %s: %v, want it refused", st.Endpoint, err)
		}
		t.Logf("wrong secret: %v", err)
	}
}
