package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/partition"
)

// The fixture's dump, made once per test binary: the bundled real spool,
// users alice and bob (so that there are seen records, a quota root and
// subscriptions).
var (
	fixtureOnce  sync.Once
	fixtureDump  []byte
	fixtureZstd  []byte
	fixtureError error
)

func openFixture(t testing.TB) *partition.Spool {
	t.Helper()
	conf := fixtures.UnpackT(t)
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func dumpSpool(t testing.TB, sp *partition.Spool, compress bool, users ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	sum, err := dump.Run(context.Background(), sp, &buf, dump.Options{Users: users, Compress: compress,
		Host: "test", Version: "test", Now: time.Unix(1795882234, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("dump problems: %v", sum.Problems)
	}
	return buf.Bytes()
}

// fixture returns the plain and the zstd dump of alice and bob.
func fixture(t testing.TB) (plain, zstd []byte) {
	t.Helper()
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "verify-fixture-")
		if err != nil {
			fixtureError = err
			return
		}
		defer os.RemoveAll(dir)
		conf, err := fixtures.Unpack(dir)
		if err != nil {
			fixtureError = err
			return
		}
		cfg, err := partition.LoadConfig(conf)
		if err != nil {
			fixtureError = err
			return
		}
		sp, err := partition.Open(cfg)
		if err != nil {
			fixtureError = err
			return
		}
		fixtureDump = dumpSpool(t, sp, false, "alice", "bob")
		fixtureZstd = dumpSpool(t, sp, true, "alice", "bob")
	})
	if fixtureError != nil {
		t.Fatal(fixtureError)
	}
	return fixtureDump, fixtureZstd
}

// result is what one Run gave.
type result struct {
	sum      *Summary
	err      error
	findings []Finding
}

func (r result) kinds() []string {
	var ks []string
	for _, f := range r.findings {
		ks = append(ks, string(f.Kind))
	}
	sort.Strings(ks)
	return ks
}

func (r result) String() string {
	var b strings.Builder
	if r.err != nil {
		fmt.Fprintf(&b, "error: %v\n", r.err)
	}
	for _, f := range r.findings {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}

func run(t testing.TB, r io.Reader, opts Options) result {
	t.Helper()
	var res result
	opts.Report = func(f Finding) { res.findings = append(res.findings, f) }
	res.sum, res.err = Run(context.Background(), r, opts)
	if res.sum != nil && res.sum.Findings != len(res.findings) {
		t.Errorf("summary counts %d findings, %d reported", res.sum.Findings, len(res.findings))
	}
	return res
}

// rewrite re-encodes a dump line by line through edit, which may change a
// line or return nil to drop it, and writes a new trailer with the right
// counts and digest: the result differs from src only by what edit did.
func rewrite(t testing.TB, src []byte, edit func(l *dlist.Line) *dlist.Line) []byte {
	t.Helper()
	d, err := dumpfile.NewReader(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out bytes.Buffer
	w, err := dumpfile.NewWriter(&out, d.Header(), dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var c dumpfile.Counts
	for {
		verb, name, _, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		v, err := d.DL().ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		v.Key = name
		l := edit(&dlist.Line{Verb: verb, Value: v})
		if l == nil {
			continue
		}
		switch l.Value.Key {
		case "MAILBOX":
			c.Mailboxes++
		case "MESSAGE":
			for _, f := range l.Value.Children {
				if f.Kind == dlist.File {
					c.Messages++
					c.Bytes += f.File.Size
				}
			}
		}
		if err := w.DL().WriteLine(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(c); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// records calls fn for every RECORD of the mailbox line l.
func records(l *dlist.Line, fn func(rec *dlist.Value)) {
	if l.Value.Key != "MAILBOX" {
		return
	}
	if rs := l.Value.Get("RECORD"); rs != nil {
		for _, r := range rs.Children {
			fn(r)
		}
	}
}

// set replaces the value of key in the kvlist v.
func set(v *dlist.Value, key string, nv *dlist.Value) {
	for i, c := range v.Children {
		if c.Key == key {
			nv.Key = key
			v.Children[i] = nv
			return
		}
	}
	panic("no key " + key)
}
