package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/guidtable"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
)

func openSpool(t *testing.T, conf string) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runDump(t *testing.T, s *partition.Spool, opts Options) ([]byte, *Summary) {
	t.Helper()
	var buf bytes.Buffer
	if opts.Now.IsZero() {
		opts.Now = time.Unix(1795880000, 0)
	}
	sum, err := Run(context.Background(), s, &buf, opts)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return buf.Bytes(), sum
}

// The bundled real Cyrus spool dumps without a problem, every mailbox with
// the SYNC_CRCs in its Cyrus-written index header, each file once.
func TestDumpFixture(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	data, sum := runDump(t, s, Options{Users: []string{"alice", "bob"}, Mailboxes: []string{"shared.team"}})
	if len(sum.Problems) > 0 {
		t.Fatalf("problems: %v", sum.Problems)
	}
	st := checkDump(t, data)
	d, err := dumpfile.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h := d.Header(); h.IndexVersion != 17 || h.Format != dumpfile.FormatVersion {
		t.Errorf("header %+v: want index version 17 (Cyrus 3.6)", h)
	}

	entries, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, e := range entries {
		if e.Name == "shared" {
			continue // not selected
		}
		want++
		mb, ok := st.mailboxes[e.Name]
		if !ok {
			t.Errorf("%s not in the dump", e.Name)
			continue
		}
		m, err := s.OpenMailbox(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if mb.SyncCRC != m.Index.SyncCRC || mb.SyncCRCAnnot != m.Index.SyncCRCAnnot ||
			mb.UIDValidity != m.Index.UIDValidity || mb.LastUID != m.Index.LastUID || mb.UniqueID != e.UniqueID {
			t.Errorf("%s: dumped %+v, index header %+v", e.Name, mb, m.Index)
		}
		n := 0
		m.Records(func(partition.Record) error { n++; return nil })
		if n != len(st.records[e.Name]) {
			t.Errorf("%s: %d records in the index, %d dumped", e.Name, n, len(st.records[e.Name]))
		}
		m.Close()
	}
	if len(st.mailboxes) != want {
		t.Errorf("%d mailboxes dumped, want %d", len(st.mailboxes), want)
	}
	shared := 0
	for _, boxes := range st.guidBoxes {
		if len(boxes) > 1 {
			shared++
		}
	}
	if shared == 0 || sum.Shared == 0 {
		t.Errorf("no message file shared between mailboxes (fixture has COPY and duplicate APPENDs): %d, %d", shared, sum.Shared)
	}
	if st.seen == 0 || st.subs == 0 || st.quotas != 1 {
		t.Errorf("seen %d, subs %d, quotas %d", st.seen, st.subs, st.quotas)
	}
	if sum.Mailboxes != int64(len(st.mailboxes)) || sum.Messages != int64(st.literals) {
		t.Errorf("summary %+v", sum)
	}
}

// A damaged or missing message file is reported by mailbox and UID, left
// out, and the rest is dumped.
func TestDumpDamagedFiles(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	m, recs := sentRecords(t, s, 3)
	rotted, gone := recs[0], recs[2]
	p := m.MessagePath(rotted)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.MessagePath(gone)); err != nil {
		t.Fatal(err)
	}

	data, sum := runDump(t, s, Options{Users: []string{"alice"}})
	if len(sum.Problems) != 2 {
		t.Fatalf("problems %v, want 2", sum.Problems)
	}
	for i, want := range []partition.Record{rotted, gone} {
		p := sum.Problems[i]
		if p.Mailbox != "user.alice.Sent" || p.UID != want.UID || p.GUID != want.GUID {
			t.Errorf("problem %d = %v, want user.alice.Sent UID %d", i, p, want.UID)
		}
	}
	if !errors.Is(sum.Problems[0].Err, guid.ErrMismatch) || !errors.Is(sum.Problems[1].Err, os.ErrNotExist) {
		t.Errorf("problem causes: %v; %v", sum.Problems[0].Err, sum.Problems[1].Err)
	}
	// The dump is well formed; the two files are not in it.
	d, err := dumpfile.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if bytes.Contains(data, []byte(rotted.GUID.String()+" ")) && bytes.Contains(data, []byte("%{default "+rotted.GUID.String())) {
		t.Errorf("damaged file %s embedded", rotted.GUID)
	}
	if bytes.Contains(data, []byte("%{default "+gone.GUID.String())) {
		t.Errorf("missing file %s embedded", gone.GUID)
	}
}

func TestDumpNoSelection(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	if _, err := Run(context.Background(), s, &bytes.Buffer{}, Options{}); !errors.Is(err, ErrNoSelection) {
		t.Fatalf("Run with no selection: %v", err)
	}
	if _, err := Run(context.Background(), s, &bytes.Buffer{}, Options{Users: []string{"nobody"}}); !errors.Is(err, partition.ErrNoMailbox) {
		t.Fatalf("Run for a user without mailboxes: %v", err)
	}
}

func TestDumpCompressed(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	plain, _ := runDump(t, s, Options{Users: []string{"alice"}})
	z, _ := runDump(t, s, Options{Users: []string{"alice"}, Compress: true})
	if !bytes.HasPrefix(z, []byte{0x28, 0xb5, 0x2f, 0xfd}) || len(z) >= len(plain) {
		t.Fatalf("compressed dump: %d bytes, magic % x", len(z), z[:4])
	}
	a, b := checkDump(t, plain), checkDump(t, z)
	if a.trailer.BLAKE3 != b.trailer.BLAKE3 {
		t.Fatal("plain and zstd dumps of the same state differ")
	}
}

// --all dumps every user and every mailbox no user owns.
func TestDumpAll(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	data, sum := runDump(t, s, Options{All: true})
	if len(sum.Problems) > 0 {
		t.Fatal(sum.Problems)
	}
	st := checkDump(t, data)
	entries, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := st.mailboxes[e.Name]; !ok {
			t.Errorf("--all left out %s", e.Name)
		}
	}
	if len(st.mailboxes) != len(entries) || sum.Users != 2 {
		t.Errorf("%d mailboxes of %d, %d users", len(st.mailboxes), len(entries), sum.Users)
	}
}

func openSpoolB(b *testing.B, conf string) *partition.Spool {
	b.Helper()
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		b.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// TestDumpFixtureGUIDsOnFile dumps the fixture again with the table of
// embedded GUIDs on file from its first entry, as it is past some 40,000
// messages: the same checks hold.
func TestDumpFixtureGUIDsOnFile(t *testing.T) {
	defer func(l int64) { guidtable.DefaultMemLimit = l }(guidtable.DefaultMemLimit)
	guidtable.DefaultMemLimit = 1
	TestDumpFixture(t)
}

// sentRecords returns the fixture's user.alice.Sent (closed: for its
// paths) and its records, at least min of them.
func sentRecords(t *testing.T, s *partition.Spool, min int) (*partition.Mailbox, []partition.Record) {
	t.Helper()
	e, err := s.Lookup("user.alice.Sent")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	var recs []partition.Record
	m.Records(func(r partition.Record) error { recs = append(recs, r); return nil })
	m.Close()
	if len(recs) < min {
		t.Fatalf("fixture user.alice.Sent has %d records", len(recs))
	}
	return m, recs
}

// dumpOutcome is what a dump run gave.
type dumpOutcome struct {
	data []byte
	sum  *Summary
	err  error
}

// said is the run's error, or its problems, one a line.
func (o dumpOutcome) said() string {
	if o.err != nil {
		return o.err.Error()
	}
	msg := ""
	for _, pr := range o.sum.Problems {
		msg += pr.String() + "\n"
	}
	return msg
}

// dumpPastFIFO runs a dump of a spool where a FIFO was planted at fifo,
// failing the test if the dump is still blocked after two minutes (the
// FIFO is then opened for writing, so that the test can end).
func dumpPastFIFO(t *testing.T, s *partition.Spool, opts Options, fifo string) dumpOutcome {
	t.Helper()
	opts.Now = time.Unix(1795880000, 0)
	done := make(chan dumpOutcome, 1)
	go func() {
		var buf bytes.Buffer
		sum, err := Run(context.Background(), s, &buf, opts)
		done <- dumpOutcome{buf.Bytes(), sum, err}
	}()
	select {
	case o := <-done:
		return o
	case <-time.After(2 * time.Minute):
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("dump still running after two minutes: blocked opening a FIFO")
		return dumpOutcome{}
	}
}

// A message file that the user Cyrus runs as replaced with a symlink (to a
// file of the very bytes the index names, so that the GUID would match)
// or with a FIFO is reported and left out: dump, running as root, follows
// no symlink under a partition and never blocks opening a file that is
// not a regular one.
func TestDumpPlantedFiles(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	m, recs := sentRecords(t, s, 2)
	linked, fifo := recs[0], recs[1]
	b, err := os.ReadFile(m.MessagePath(linked))
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir() + "/secret"
	if err := os.WriteFile(outside, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.MessagePath(linked)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, m.MessagePath(linked)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.MessagePath(fifo)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(m.MessagePath(fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	o := dumpPastFIFO(t, s, Options{Users: []string{"alice"}}, m.MessagePath(fifo))
	if o.err != nil {
		t.Fatalf("dump: %v", o.err)
	}
	if len(o.sum.Problems) != 2 {
		t.Fatalf("problems %v, want 2 (the symlink and the FIFO)", o.sum.Problems)
	}
	for i, want := range []partition.Record{linked, fifo} {
		if p := o.sum.Problems[i]; p.Mailbox != "user.alice.Sent" || p.UID != want.UID {
			t.Errorf("problem %d = %v, want user.alice.Sent UID %d", i, p, want.UID)
		}
	}
	if bytes.Contains(o.data, []byte("%{default "+linked.GUID.String())) {
		t.Errorf("the file behind the symlink, %s, is in the dump", linked.GUID)
	}
}

// cyrus.index replaced by the user Cyrus runs as with a symlink (to a copy
// of itself) or a FIFO: dump refuses the file, naming it, and never blocks
// opening it.
func TestDumpPlantedIndex(t *testing.T) {
	for _, plant := range []string{"symlink", "fifo"} {
		t.Run(plant, func(t *testing.T) {
			s := openSpool(t, fixtures.UnpackT(t))
			e, err := s.Lookup("user.alice.Sent")
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.MetaPath(e, partition.FileIndex)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if plant == "symlink" {
				outside := t.TempDir() + "/cyrus.index"
				if err := os.WriteFile(outside, b, 0o600); err != nil {
					t.Fatal(err)
				}
				err = os.Symlink(outside, p)
			} else {
				err = syscall.Mkfifo(p, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := dumpPastFIFO(t, s, Options{Mailboxes: []string{"user.alice.Sent"}}, p).said(); !strings.Contains(msg, p) {
				t.Errorf("dump of user.alice.Sent with a planted %s as its cyrus.index: %q, want an error naming %s", plant, msg, p)
			}
		})
	}
}

// A user's seen database replaced by a FIFO (by the user Cyrus runs as):
// dump refuses it, naming it, and never blocks opening it.
func TestDumpPlantedSeenFIFO(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	p, err := s.SeenPath("alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if msg := dumpPastFIFO(t, s, Options{Users: []string{"alice"}}, p).said(); !strings.Contains(msg, p) {
		t.Errorf("dump of alice with a FIFO as her seen database: %q, want a problem naming %s", msg, p)
	}
}

// A mailbox directory, or a directory above it under the partition,
// replaced by the user Cyrus runs as with a symlink to a directory of the
// very same files outside the partition: dump refuses each mailbox behind
// it, naming the symlink, and embeds none of its files (issue 13: only
// the files themselves were opened without following symlinks).
func TestDumpPlantedMailboxDirectory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mbox   string // whose data directory, or its parent, is planted
		parent bool
	}{
		{"mailbox", "user.alice.Sent", false},
		{"parent", "user.alice.Sent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openSpool(t, fixtures.UnpackT(t))
			e, err := s.Lookup(tc.mbox)
			if err != nil {
				t.Fatal(err)
			}
			dir, _, err := s.Dirs(e)
			if err != nil {
				t.Fatal(err)
			}
			if tc.parent {
				dir = filepath.Dir(dir)
			}
			// The mailboxes behind the symlink: every one whose directory
			// lies beneath it.
			mbs, err := s.UserMailboxes("alice")
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, e := range mbs {
				if d, _, err := s.Dirs(e); err == nil && (d == dir || strings.HasPrefix(d, dir+"/")) {
					want = append(want, e.Name)
				}
			}
			if !slices.Contains(want, tc.mbox) || len(mbs) == len(want) {
				t.Fatalf("planting %s hides %v of alice's %d mailboxes", dir, want, len(mbs))
			}
			fixtures.PlantDirSymlink(t, dir)
			o := dumpPastFIFO(t, s, Options{Users: []string{"alice"}}, "")
			if o.err != nil {
				t.Fatalf("dump: %v", o.err)
			}
			var refused []string
			for _, p := range o.sum.Problems {
				if !strings.Contains(p.String(), "symlink") {
					t.Errorf("problem %v does not say symlink", p)
				}
				refused = append(refused, p.Mailbox)
			}
			for _, name := range want {
				if !slices.Contains(refused, name) {
					t.Errorf("%s, behind the planted symlink %s, was not refused (problems %v)", name, dir, o.sum.Problems)
				}
			}
			for _, name := range want {
				if bytes.Contains(o.data, []byte("MBOXNAME "+name+" ")) {
					t.Errorf("%s, behind the planted symlink, is in the dump", name)
				}
			}
		})
	}
}

// failAfter is an output that fails once n bytes are written.
type failAfter struct{ n int }

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// checkNoneLocked fails the test if any mailbox of s is still locked
// (its name lock cannot be taken exclusively within 2 s).
func checkNoneLocked(t *testing.T, s *partition.Spool, what string) {
	t.Helper()
	mbs, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range mbs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		l, err := s.LockMailboxName(ctx, e, true)
		cancel()
		if err != nil {
			t.Fatalf("%s: %s still locked: %v", what, e.Name, err)
		}
		l.Release()
	}
}

// The prefetcher opens mailboxes ahead of the writer: when the output
// fails in the middle of the run, every mailbox it opened is closed again
// (no name lock of Cyrus's is left held) and none of its goroutines is
// left running.
func TestDumpOutputFailsReleasesPrefetched(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	full, _ := runDump(t, s, Options{All: true})
	before := runtime.NumGoroutine()
	for _, at := range []int{len(full) / 5, len(full) / 2, len(full) - 200} {
		_, err := Run(context.Background(), s, &failAfter{n: at}, Options{All: true, Now: time.Unix(1795880000, 0)})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("output failing after %d bytes: %v", at, err)
		}
		checkNoneLocked(t, s, fmt.Sprintf("output failing after %d bytes", at))
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines running after the failed runs, %d before", n, before)
	}
}

// A message file is read whole into a chain of the read-ahead's buffers
// when it is at most half the read-ahead (4 MiB by default), and hashed
// by a worker then copied again from the file by the writer when larger.
// The bundled spool's 1.6 MB message (alice UID 34) takes the first path
// by default and the second with a 2 MiB read-ahead (whole files up to
// 1 MiB); both dumps are the same bytes, and the file damaged past its
// first 16 KiB is found either way.
func TestDumpWholeAndLargeFiles(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	e, err := s.Lookup("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	var big partition.Record
	m.Records(func(r partition.Record) error {
		if r.UID == 34 {
			big = r
		}
		return nil
	})
	m.Close()
	if big.Size < 1_500_000 || big.Size > 2<<20 {
		t.Fatalf("fixture user.alice UID 34 is %d bytes; want 1.6 MB", big.Size)
	}
	opts := Options{Users: []string{"alice"}}
	whole, _ := runDump(t, s, opts)
	opts.ReadAhead = 2 << 20
	large, _ := runDump(t, s, opts)
	if !bytes.Equal(whole, large) {
		t.Fatalf("the dump with a 2 MiB read-ahead (%d bytes) differs from the default's (%d bytes)", len(large), len(whole))
	}
	if !bytes.Contains(whole, []byte(fmt.Sprintf("%%{default %s %d}", big.GUID, big.Size))) {
		t.Fatalf("UID 34 (%s) is not in the dump", big.GUID)
	}

	f, err := os.OpenFile(m.MessagePath(big), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 1_000_000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, ahead := range []int64{0, 2 << 20} {
		opts.ReadAhead = ahead
		_, sum := runDump(t, s, opts)
		if len(sum.Problems) != 1 || sum.Problems[0].UID != 34 || !errors.Is(sum.Problems[0].Err, guid.ErrMismatch) {
			t.Errorf("read-ahead %d: problems %v; want UID 34's GUID mismatch", ahead, sum.Problems)
		}
	}
}
