package restore_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/restore"
)

// TestPlanOneHold: the plan of a mailbox reads the target's mailboxes.db
// under one hold of its shared lock, for all its lookups (the entry of
// its name, its uniqueid, the deleted copies it continues), where it took
// three: a dry run, which only plans, takes one per mailbox. Counted, not
// timed.
func TestPlanOneHold(t *testing.T) {
	var dump bytes.Buffer
	st, err := gen.WriteDump(&dump, gen.Options{Seed: 3, Users: 20, Messages: 120, SmallOnly: true, MeanSize: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	_, target, err := gen.OpenEmpty(filepath.Join(t.TempDir(), "target"))
	if err != nil {
		t.Fatal(err)
	}
	before := target.MailboxesHolds()
	sum, err := restore.Run(context.Background(), target, bytes.NewReader(dump.Bytes()), restore.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if created := sum.Count(restore.ActionCreate); created != int(st.Mailboxes) {
		t.Fatalf("dry run: %d of %d mailboxes to create", created, st.Mailboxes)
	}
	holds := target.MailboxesHolds() - before
	t.Logf("%d mailboxes, %d holds of mailboxes.db's lock", st.Mailboxes, holds)
	if max := st.Mailboxes + planHoldsSlack; holds > max {
		t.Errorf("a dry run of %d mailboxes took mailboxes.db's lock %d times; want at most %d (one per mailbox)", st.Mailboxes, holds, max)
	}
}

// planHoldsSlack is what a dry run may take mailboxes.db's lock for
// besides its mailboxes' plans.
const planHoldsSlack = 8
