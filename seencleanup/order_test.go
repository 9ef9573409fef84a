package seencleanup

import (
	"context"
	"errors"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/partition"
)

// TestProblemsInUserOrder: the problems of a run come in the order of the
// users they are about, whatever the users a run lists together (their
// seen databases found and their records looked up in batches): alice's
// record kept for an unreadable index comes before bob's damaged seen db,
// as when each user was gone through in turn.
func TestProblemsInUserOrder(t *testing.T) {
	spool := sampleSpool(t)
	alice, _ := spool.SeenPath("alice")
	bob, _ := spool.SeenPath("bob")
	editDB(t, alice, map[string]string{idEntw: "1 0 3 0 1:3"}) // kept: index unreadable (a problem)
	editDB(t, bob, map[string]string{idBobInbox: "1 0 3 0 1:3"})
	damageDB(t, bob)
	sum, err := Run(context.Background(), spool, Options{Users: []string{"alice", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) != 2 || !errors.Is(sum.Problems[0], partition.ErrChecksum) || !errors.Is(sum.Problems[1], cyrusdb.ErrCorrupt) {
		t.Errorf("problems %v; want alice's unreadable index, then bob's damaged seen db", sum.Problems)
	}
}
