package repo

import (
	"bytes"
	"io"
	"strings"
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

// TestS3StatesInBackground: a user's boxes and state are uploaded while
// the run goes on, several at once (each mailbox commits a box: one at a
// time, a user of many mailboxes waited a round trip for each); the
// index and the snapshot are uploaded only once every one of them is
// stored; and a state whose upload fails fails the run's commit, with no
// snapshot written.
func TestS3StatesInBackground(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	px := s3lab.StartProxy(t, m.Store, 1)
	px.Store.Setenv(t)
	c, err := s3store.New(t.Context(), s3store.Options{Endpoint: px.Endpoint, PathStyle: true, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := s3Repo(t, px.Store, c, "r")
	px.SetRules(s3lab.Rule{Fault: s3lab.Delay, Method: "PUT", Path: "/states/", Delay: 200 * time.Millisecond})
	before := len(px.Log(""))
	addNight(t, r, time.Now(), map[string][]byte{"a": genDump(t, 1, 1000), "b": genDump(t, 2, 1000)})
	var states []s3lab.Request
	var last time.Time // when the last state's upload ended
	for _, q := range px.Log("")[before:] {
		if q.Method == "PUT" && strings.Contains(q.Path, "/states/") {
			states = append(states, q)
			if q.End.After(last) {
				last = q.End
			}
		}
	}
	if len(states) < 20 {
		t.Fatalf("%d states uploaded, want a box per mailbox and a state per user", len(states))
	}
	most := 0 // uploads of states in flight at once
	for _, q := range states {
		n := 0
		for _, o := range states {
			if !o.Start.After(q.Start) && o.End.After(q.Start) {
				n++
			}
		}
		most = max(most, n)
	}
	if most < 2 {
		t.Errorf("at most %d state uploads in flight at once, want several", most)
	}
	for _, q := range px.Log("")[before:] {
		if q.Method == "PUT" && (strings.Contains(q.Path, "/index/") || strings.Contains(q.Path, "/snapshots/")) && q.Start.Before(last) {
			t.Errorf("%s was uploaded at %s, before the last state's upload ended (%s)", q.Path, q.Start.Format(time.StampMicro), last.Format(time.StampMicro))
		}
	}

	// A state that cannot be stored: the run's commit fails, and the
	// repository keeps its one snapshot.
	px.SetRules(s3lab.Rule{Fault: s3lab.InternalError, Method: "PUT", Path: "/states/", Rate: 1})
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	b := r.NewBackup(idx)
	if _, err := b.Ingest(t.Context(), "a", bytes.NewReader(genDump(t, 3, 300))); err == nil {
		if _, err = b.Commit("h", "v", time.Now()); err == nil {
			t.Fatal("a run whose states were not stored committed a snapshot")
		}
	}
	b.Abort()
	px.SetRules()
	ss, err := r.Snapshots()
	if err != nil || len(ss) != 1 {
		t.Fatalf("%d snapshots after the failed run (%v), want 1", len(ss), err)
	}
}

// TestS3OpenDumpCloseCancelsReads: Close of a dump read from the object
// store, while the export waits for a GET the store does not answer (the
// reader stopped after an error of its own), ends that GET at once: it
// does not wait for the request's timeout and its retries.
func TestS3OpenDumpCloseCancelsReads(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	px := s3lab.StartProxy(t, m.Store, 1)
	px.Store.Setenv(t)
	c, err := s3store.New(t.Context(), s3store.Options{Endpoint: px.Endpoint, PathStyle: true, Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := s3Repo(t, px.Store, c, "r")
	s := addNight(t, r, time.Now(), map[string][]byte{"a": genDump(t, 1, 300)})
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	px.SetRules(s3lab.Rule{Fault: s3lab.Hang, Method: "GET", Path: "/packs/", Rate: 1})
	d := r.OpenDump(t.Context(), idx, s, ExportOptions{})
	for deadline := time.Now().Add(time.Minute); px.Stats().Faults[s3lab.Hang] == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the export asked for no pack")
		}
	}
	if err := closeWithin(t, d, "within a minute: it waits for the unanswered GET (its timeout is 10 minutes)"); err != nil {
		t.Errorf("Close: %v", err)
	}
}
