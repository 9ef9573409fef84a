package seencleanup_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/seencleanup"
)

// TestLookupsShareHolds: a run looks the mailboxes of many users' seen
// records up together, under one hold of mailboxes.db's shared lock for
// many of them, where it took one hold per record. Counted, not timed.
func TestLookupsShareHolds(t *testing.T) {
	_, spool, err := gen.OpenEmpty(filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := gen.Restore(context.Background(), spool, gen.Options{Seed: 3, Users: 200, Messages: 600, SmallOnly: true, MeanSize: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	before := spool.MailboxesHolds()
	sum, err := seencleanup.Run(context.Background(), spool, seencleanup.Options{All: true})
	if err != nil || len(sum.Problems) > 0 {
		t.Fatalf("seen-cleanup: %v, %v", err, sum.Problems)
	}
	holds := spool.MailboxesHolds() - before
	t.Logf("%d users, %d seen dbs, %d records, %d holds of mailboxes.db", st.Users, sum.Users, sum.Records, holds)
	if sum.Records < sum.Users || sum.Users < 100 {
		t.Fatalf("%d seen dbs, %d records: too few to count holds by", sum.Users, sum.Records)
	}
	// One hold per 64 users' lookups, and the few of the listing of
	// users (a walk of mailboxes.db in chunks).
	if max := int64(sum.Users/64 + 1 + 8); holds > max {
		t.Errorf("%d records of %d users looked up in %d holds of mailboxes.db; want at most %d", sum.Records, sum.Users, holds, max)
	}
}
