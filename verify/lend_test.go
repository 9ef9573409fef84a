package verify

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
)

// sparseDump is a dump of n APPLY MESSAGE lines of one small literal
// each, every one followed by gap bytes of other lines: as when most of a
// dump is APPLY MAILBOX records of messages shipped before (copies of
// them in many mailboxes), or lines verify skips.
func sparseDump(t testing.TB, n, size, gap int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := dumpfile.NewWriter(&out, dumpfile.Header{Host: "h", Version: "v"}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var c dumpfile.Counts
	dl := w.DL()
	filler := strings.Repeat("x", 1000)
	for i := range n {
		body := []byte(fmt.Sprintf("%0*d", size, i))
		dl.BeginLine("APPLY", "MESSAGE")
		dl.BeginList()
		if err := dl.FileBytes("p", guid.GUID(sha1.Sum(body)), body); err != nil {
			t.Fatal(err)
		}
		dl.EndList()
		if err := dl.EndLine(); err != nil {
			t.Fatal(err)
		}
		c.Messages++
		c.Bytes += int64(size)
		dl.BeginLine("APPLY", "JUNK")
		dl.BeginList()
		for range gap / len(filler) {
			dl.Atom(filler)
		}
		dl.EndList()
		if err := dl.EndLine(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(c); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestSparseLiterals: small literals far apart in the dump each hold a
// chunk of the dump reader's for as long as the batch they are in is not
// handed to the workers; the reading must not wait for a chunk only that
// batch would release.
func TestSparseLiterals(t *testing.T) {
	const n = 40
	b := sparseDump(t, n, 10, 300<<10)
	done := make(chan result, 1)
	go func() { done <- run(t, bytes.NewReader(b), Options{}) }()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.sum.Messages != n || !res.sum.Complete {
			t.Fatalf("%d messages, complete %v; want %d, complete:\n%s", res.sum.Messages, res.sum.Complete, n, res)
		}
		for _, f := range res.findings {
			if f.Kind != KindInvalid {
				t.Errorf("finding %s", f)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("verify hangs: the reader waits for a chunk held by the batch it has not handed over")
	}
}

// emptyBodies lends nothing: every literal read from it is empty.
type emptyBodies struct{}

func (emptyBodies) LendBody(int) ([]byte, dlist.Pin, error) { return nil, nil, io.EOF }

// TestManyEmptyLiterals: empty file literals (a hostile dump can hold
// millions, 50 bytes each) must not pile up in the batch being filled,
// whose memory would then grow with the dump.
func TestManyEmptyLiterals(t *testing.T) {
	p := newPool(2, 0, func(*literal, guid.GUID) { t.Error("empty literal reported bad") })
	defer p.stop()
	empty := guid.GUID(sha1.Sum(nil))
	most := 0
	for range 100_000 {
		if err := p.literal(&literal{guid: empty}, emptyBodies{}); err != nil {
			t.Fatal(err)
		}
		if p.cur != nil {
			most = max(most, len(p.cur.segs))
		}
	}
	if most > maxSegs {
		t.Fatalf("a batch held %d segments, more than %d", most, maxSegs)
	}
}
