package s3lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"time"
)

// filerView reads a store's metadata straight from its filer's HTTP API:
// what a test checks about the bucket without trusting the S3 client under
// test. SeaweedFS keeps bucket B under /buckets/B and the parts of
// unfinished multipart uploads under /buckets/B/.uploads/UPLOADID.
type filerView struct {
	filer  string // host:port
	bucket string
}

// httpClient is for the harness's own requests to the servers.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// errNotFound is returned by list for a directory that does not exist.
var errNotFound = errors.New("s3lab: no such directory on the filer")

// filerEntry is what the filer says of a file or directory.
type filerEntry struct {
	FullPath string
	Chunks   []struct {
		FileID string `json:"file_id"`
	} `json:"chunks"`
}

// list returns the names in the filer directory dir (all of them, page by
// page).
func (f filerView) list(dir string) ([]string, error) {
	entries, err := f.entries(dir)
	var names []string
	for _, e := range entries {
		names = append(names, path.Base(e.FullPath))
	}
	return names, err
}

// chunks returns the file ids of the chunks that hold the object key of
// the bucket.
func (f filerView) chunks(key string) ([]string, error) {
	p := path.Join("/buckets", f.bucket, key)
	entries, err := f.entries(path.Dir(p))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.FullPath == p {
			var ids []string
			for _, c := range e.Chunks {
				ids = append(ids, c.FileID)
			}
			return ids, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", errNotFound, p)
}

// entries returns the entries of the filer directory dir (all of them,
// page by page).
func (f filerView) entries(dir string) ([]filerEntry, error) {
	var all []filerEntry
	last := ""
	for {
		u := "http://" + f.filer + path.Clean("/"+dir) + "/?limit=1000&lastFileName=" + url.QueryEscape(last)
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("s3lab: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("s3lab: listing %s on the filer: %w", dir, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("s3lab: listing %s on the filer: %w", dir, err)
		}
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %s", errNotFound, dir)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("s3lab: listing %s on the filer: %s", dir, resp.Status)
		}
		var page struct {
			Entries               []filerEntry
			LastFileName          string
			ShouldDisplayLoadMore bool
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("s3lab: listing %s on the filer: %w", dir, err)
		}
		all = append(all, page.Entries...)
		if !page.ShouldDisplayLoadMore || len(page.Entries) == 0 || page.LastFileName == last {
			return all, nil
		}
		last = page.LastFileName
	}
}

// Uploads returns the ids of the multipart uploads of the bucket that were
// started and neither completed nor aborted, as the filer holds them.
func (f filerView) Uploads() ([]string, error) {
	ids, err := f.list("/buckets/" + f.bucket + "/.uploads")
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	return ids, err
}

// waitBucket polls until the filer has the bucket's directory and the S3
// gateway refuses an unsigned request (it serves, with its identities),
// or p exits, or startTimeout passes.
func waitBucket(f filerView, s3 string, p *proc) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	n := 0
	for {
		if !p.running() {
			return p.exited()
		}
		if _, last = f.list("/buckets/" + f.bucket); last == nil {
			// Unsigned: refused (403) once the gateway serves with its
			// identities loaded.
			resp, err := httpClient.Get("http://" + s3 + "/" + f.bucket)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusForbidden {
					return nil
				}
				err = fmt.Errorf("an unsigned request got %s, not 403", resp.Status)
			}
			last = err
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("s3lab: bucket %s not ready within %v: %v; %s", f.bucket, startTimeout, last, tail(p.log))
			if portTaken(p.log) {
				// weed mini goes on without a server that could not bind
				// (its admin server, say), and the bucket never comes:
				// the caller starts it again on other ports.
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		}
		if n++; n%20 == 0 && portTaken(p.log) {
			return fmt.Errorf("%w: %s: a server could not bind its port; %s", errPortTaken, p.name, tail(p.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// portTaken reports whether the log of a process says one of its servers
// could not bind its port.
func portTaken(log string) bool {
	b, err := os.ReadFile(log)
	return err == nil && bytes.Contains(b, []byte("address already in use"))
}
