package repo

import (
	"io"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/s3store"
)

// TestS3ExportReadsPacksForward: restoring a snapshot from the object
// store reads each pack forward, with one streaming GET per pack (after
// Open's first one), and no byte of a pack twice. Each GET that goes
// back costs a request and a dropped connection, and on a store that
// keeps the pack compressed (SeaweedFS gzips what looks like text) a
// decompression from the start of its chunk: reading the buffer ahead
// and then going back for the literal it cut, or for a large file's
// header, took twice the time of a restore.
func TestS3ExportReadsPacksForward(t *testing.T) {
	old := PackTarget
	PackTarget = 4 << 20
	defer func() { PackTarget = old }()
	m := s3lab.StartMini(t, s3lab.Options{})
	px := s3lab.StartProxy(t, m.Store, 1)
	px.Store.Setenv(t)
	c, err := s3store.New(t.Context(), s3store.Options{Endpoint: px.Endpoint, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	r := s3Repo(t, px.Store, c, "r")
	// Messages of every size up to several times the read buffer.
	dump := genDump(t, 1, 6000)
	s := addNight(t, r, time.Now(), map[string][]byte{"a": dump})
	packs := map[string]int64{}
	r.store.List("packs", func(n string, size int64) error { packs[n] = size; return nil })
	if len(packs) < 3 {
		t.Fatalf("%d packs, want several", len(packs))
	}
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	before := len(px.Log(""))
	d := r.OpenDump(t.Context(), idx, s, ExportOptions{})
	if _, err := io.Copy(io.Discard, d); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	gets, sent := map[string]int{}, map[string]int64{}
	for _, q := range px.Log("")[before:] {
		for n := range packs {
			if q.Method == "GET" && len(q.Path) > len(n) && q.Path[len(q.Path)-len(n):] == n {
				gets[n]++
				sent[n] += q.Sent
			}
		}
	}
	for n, size := range packs {
		// Open's GET of the first 128 KiB, and one stream.
		if gets[n] > 2 || sent[n] > size+128<<10 {
			t.Errorf("%s (%d bytes): %d GETs, %d bytes sent; want at most 2 GETs, %d bytes", n, size, gets[n], sent[n], size+128<<10)
		}
	}
}
