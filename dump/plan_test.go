package dump

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

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
