package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestOpenUnsizedWholeAnswer: a store (or a proxy in front of it) that
// ignores the Range of Open's first GET and answers 200 with the whole
// object chunked, with neither Content-Range nor Content-Length, must not
// make the object read as empty (a state or a lock would then fail as
// damaged): its size comes from a HEAD, and a small one's bytes from the
// answer when the HEAD agrees. SeaweedFS never answers so, hence this stand-in
// server, which speaks only that edge: the first-bytes GET unsized, HEAD
// and other ranged GETs as S3 does.
func TestOpenUnsizedWholeAnswer(t *testing.T) {
	objects := map[string][]byte{"small": make([]byte, 1000), "big": make([]byte, headBytes+4567)}
	_, _ = rand.NewChaCha8([32]byte{5}).Read(objects["small"])
	_, _ = rand.NewChaCha8([32]byte{6}).Read(objects["big"])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		data, ok := objects[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		etag := fmt.Sprintf(`"%s-etag"`, key)
		w.Header().Set("ETag", etag)
		rng := r.Header.Get("Range")
		switch {
		case r.Method == http.MethodHead:
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		case r.Method != http.MethodGet:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case rng == "" || rng == "bytes=0-"+strconv.Itoa(headBytes-1): // Open's
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush() // chunked: no Content-Length
			w.Write(data)
		default:
			var from, to int
			if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &from, &to); err != nil || from > to || to >= len(data) {
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(to-from+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[from : to+1])
		}
	}))
	defer srv.Close()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "",
		"AWS_REGION": "us-east-1", "AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": t.TempDir() + "/none", "AWS_SHARED_CREDENTIALS_FILE": t.TempDir() + "/none",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "",
	} {
		t.Setenv(k, v)
	}
	c, err := New(context.Background(), Options{Endpoint: srv.URL, PathStyle: true, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"small", "big"} {
		o, err := c.Open(context.Background(), "bucket", key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if o.Size() != int64(len(objects[key])) {
			t.Errorf("%s: size %d, want %d", key, o.Size(), len(objects[key]))
		}
		if key == "small" && o.whole == nil {
			t.Errorf("%s: not kept from Open's answer", key)
		}
		got, err := io.ReadAll(o.Reader())
		o.Close()
		if err != nil || !bytes.Equal(got, objects[key]) {
			t.Errorf("%s: read back %d bytes (%v), want its %d", key, len(got), err, len(objects[key]))
		}
	}
}
