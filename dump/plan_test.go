package dump

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore"
)

// A mailbox named on its own that does not exist is a NotFoundError,
// also when it is in the namespace of a user who is dumped too ("no such
// mailbox: user.alice.Sentt (did you mean user.alice.Sent?)"), not taken
// for one dumped with its user.
func TestPlanTypoInSelectedUsersNamespace(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	var buf bytes.Buffer
	_, err := Run(context.Background(), s, &buf, Options{Users: []string{"alice"}, Mailboxes: []string{"user.alice.Sentt"}})
	var nf *NotFoundError
	if !errors.As(err, &nf) || len(nf.Mailboxes) != 1 || nf.Mailboxes[0] != "user.alice.Sentt" {
		t.Fatalf("dump --user alice user.alice.Sentt: err %v, want a NotFoundError naming user.alice.Sentt", err)
	}
}

// addDeleted makes DELETED.user.alice.Sent.6B0F37A3 in the spool: a copy
// of user.alice.Sent restored under that name (as Cyrus's delayed delete
// leaves one).
func addDeleted(t *testing.T, s *partition.Spool, from, into string) {
	t.Helper()
	data, _ := runDump(t, s, Options{Mailboxes: []string{from}})
	sel, err := mboxname.NewSelector(nil, []string{from})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Run(context.Background(), s, bytes.NewReader(data), restore.Options{Select: sel, Into: into}); err != nil {
		t.Fatal(err)
	}
}

// Plan.Total counts each mailbox the dump writes once: a user's deleted
// mailbox also named on its own is dumped once (with the user) and
// counted once.
func TestPlanTotalNamedDeletedOnce(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	const del = "DELETED.user.alice.Sent.6B0F37A3"
	addDeleted(t, s, "user.alice.Sent", del)
	var total Progress
	var buf bytes.Buffer
	sum, err := Run(context.Background(), s, &buf, Options{Users: []string{"alice"}, Mailboxes: []string{del},
		Now: time.Unix(1795880000, 0), Plan: func(p Progress) { total = p }})
	if err != nil {
		t.Fatal(err)
	}
	if total.Mailboxes != sum.Mailboxes {
		t.Errorf("the plan's total says %d mailboxes, the dump wrote %d", total.Mailboxes, sum.Mailboxes)
	}
}

// planHook is the offline source with a hook run after its Plan.
type planHook struct {
	*spoolSource
	after func()
}

func (h planHook) Plan(ctx context.Context, sel Selection) (*Plan, error) {
	p, err := h.spoolSource.Plan(ctx, sel)
	h.after()
	return p, err
}

// A user of the plan whose mailboxes are all deleted before the user's
// turn (and who has no seen state or subscriptions) leaves a trace: a
// problem naming the user (an MBTOOL SKIPPED line), and the user is not
// counted as dumped; the run goes on with the next user.
func TestPlanUserVanished(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	src := NewSpoolSource(s, 0, 0).(*spoolSource)
	h := planHook{src, func() {
		err := s.UpdateTwoskip(s.Config.MboxlistPath, false, partition.Owner{UID: -1, GID: -1}, func(tx *partition.TwoskipTx) error {
			tx.Delete(partition.NameKey("user.bob"))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}}
	var buf bytes.Buffer
	sum, err := Write(context.Background(), h, &buf, Options{Users: []string{"alice", "bob"}, Now: time.Unix(1795880000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range sum.Problems {
		if p.Mailbox == "user bob" && errors.Is(p.Err, ErrUserGone) {
			found = true
		}
	}
	if sum.Users != 1 {
		t.Errorf("%d users dumped, want 1 (alice)", sum.Users)
	}
	if !bytes.Contains(buf.Bytes(), []byte("MBTOOL SKIPPED")) {
		t.Errorf("the dump has no MBTOOL SKIPPED line")
	}
	if !found {
		t.Errorf("user bob's INBOX went between the plan and bob's turn: no problem reported (users %d, mailboxes %d, problems %v)", sum.Users, sum.Mailboxes, sum.Problems)
	}
}

// Stopping a run at any point (output failure, cancellation) with
// deleted mailboxes the writer skips (NoDeleted) and a named one leaves
// no mailbox locked and no goroutine running.
func TestPlanStopReleasesWithSkipped(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	addDeleted(t, s, "user.alice.Sent", "DELETED.user.alice.Sent.6B0F37A3")
	addDeleted(t, s, "user.bob", "DELETED.user.bob.6B0F37A3")
	opts := Options{Users: []string{"alice", "bob"}, Mailboxes: []string{"DELETED.user.alice.Sent.6B0F37A3", "shared.team"}, NoDeleted: true, Now: time.Unix(1795880000, 0)}
	full, sum := runDump(t, s, opts)
	t.Logf("full dump: %d bytes, %d mailboxes", len(full), sum.Mailboxes)
	before := runtime.NumGoroutine()
	check := func(what string) { checkNoneLocked(t, s, what) }
	for i := 1; i < 12; i++ {
		at := len(full) * i / 12
		o := opts
		_, err := Run(context.Background(), s, &failAfter{n: at}, o)
		if err == nil {
			t.Fatalf("output failing after %d bytes: no error", at)
		}
		check("output failing")
	}
	for k := int64(1); k <= sum.Mailboxes; k++ {
		ctx, cancel := context.WithCancel(context.Background())
		o := opts
		o.Progress = func(p Progress) {
			if p.Mailboxes >= k {
				cancel()
			}
		}
		var buf bytes.Buffer
		Run(ctx, s, &buf, o)
		cancel()
		check("cancelled")
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines running after the stopped runs, %d before", n, before)
	}
}

// With NoDeleted, a user's deleted mailbox named on its own is dumped
// (as a single mailbox, after the users) and not counted as left out;
// without it, it is dumped once, with its user.
func TestPlanNamedDeletedWithNoDeleted(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	const del = "DELETED.user.alice.Sent.6B0F37A3"
	addDeleted(t, s, "user.alice.Sent", del)
	for _, noDeleted := range []bool{true, false} {
		data, sum := runDump(t, s, Options{Users: []string{"alice"}, Mailboxes: []string{del}, NoDeleted: noDeleted})
		if n := bytes.Count(data, []byte("APPLY MAILBOX %(UNIQUEID ")); int64(n) != sum.Mailboxes {
			t.Fatalf("NoDeleted %v: %d APPLY MAILBOX lines, summary %d", noDeleted, n, sum.Mailboxes)
		}
		if n := bytes.Count(data, []byte(" MBOXNAME "+del+" ")); n != 1 {
			t.Errorf("NoDeleted %v: %s dumped %d times", noDeleted, del, n)
		}
		if sum.DeletedLeftOut != 0 {
			t.Errorf("NoDeleted %v: %d deleted mailboxes said left out", noDeleted, sum.DeletedLeftOut)
		}
	}
}

// setIndexVersion rewrites the header of the cyrus.index at path as
// minor version v (16 or 17: the same layout, as
// TestParseIndexOlderVersions re-encodes one): version 16 stores no
// changes_epoch.
func setIndexVersion(t *testing.T, path string, v uint32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	be.PutUint32(b[8:], v)
	if v < 17 {
		be.PutUint32(b[136:], 0)
	}
	be.PutUint32(b[156:], crc32.ChecksumIEEE(b[:156]))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The header's INDEXVERSION is the highest index version of the dumped
// mailboxes, with the plan's totals (a progress bar) or without them,
// where the plan stops reading index headers at the first of
// partition.MaxIndexVersion: with every mailbox at version 16 but the
// last one in mailboxes.db order, it is 17; with all at 16, 16.
func TestPlanIndexVersion(t *testing.T) {
	s := openSpool(t, fixtures.UnpackT(t))
	entries, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		p, err := s.MetaPath(e, partition.FileIndex)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	if len(paths) < 3 {
		t.Fatalf("the fixture has %d mailboxes with an index", len(paths))
	}
	for _, p := range paths[:len(paths)-1] {
		setIndexVersion(t, p, 16)
	}
	version := func() int {
		t.Helper()
		var v [2]int
		for i, plan := range []func(Progress){nil, func(Progress) {}} {
			data, sum := runDump(t, s, Options{All: true, Plan: plan})
			if len(sum.Problems) > 0 {
				t.Fatalf("problems: %v", sum.Problems)
			}
			d, err := dumpfile.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			v[i] = d.Header().IndexVersion
			d.Close()
		}
		if v[0] != v[1] {
			t.Errorf("INDEXVERSION %d without the plan's totals, %d with them", v[0], v[1])
		}
		return v[0]
	}
	if v := version(); v != 17 {
		t.Errorf("one mailbox at version 17, the last: INDEXVERSION %d, want 17", v)
	}
	setIndexVersion(t, paths[len(paths)-1], 16)
	if v := version(); v != 16 {
		t.Errorf("every mailbox at version 16: INDEXVERSION %d, want 16", v)
	}
}
