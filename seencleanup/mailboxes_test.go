package seencleanup

import (
	"fmt"
	"testing"

	"github.com/mbtool/mbtool/partition"
)

// The cache of the listing gives lookupMailbox's answers (without the
// ACL) and holds at most two generations of uniqueids, however many are
// looked up.
func TestMailboxCacheBounded(t *testing.T) {
	spool := sampleSpool(t)
	c := newMailboxCache(spool)
	check := func(id, name string, kind partition.Liveness) {
		t.Helper()
		ms, err := c.lookupAll([]string{id})
		var m mailbox
		if err == nil {
			m = ms[0]
		}
		if err != nil || m.entry.Name != name || m.kind != kind || m.entry.ACL != nil {
			t.Errorf("lookup(%s) = %q kind %d ACL %v, %v; want %q kind %d, no ACL", id, m.entry.Name, m.kind, m.entry.ACL, err, name, kind)
		}
	}
	for i := range 3 * cacheGeneration {
		if i%1000 == 0 {
			check(idOldStuff, "DELETED.user.alice.Old Stuff.6B0AFE40", partition.Local)
			check(idGone, "user.alice.Gone", partition.Tombstone)
			check(idMid, "user.alice.Mid", partition.Elsewhere)
		}
		check(fmt.Sprintf("c%023d", i), "", partition.Tombstone)
		if n := len(c.cur) + len(c.old); n > 2*cacheGeneration {
			t.Fatalf("%d uniqueids cached, want at most %d", n, 2*cacheGeneration)
		}
	}
	first := fmt.Sprintf("c%023d", 0)
	if _, ok := c.cur[first]; ok {
		t.Errorf("the first uniqueid looked up is still cached")
	} else if _, ok := c.old[first]; ok {
		t.Errorf("the first uniqueid looked up is still cached")
	}
}
