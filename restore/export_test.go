package restore

import (
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// SetPhaseHook sets the hook a run calls at each phase, for tests of the
// external package.
func SetPhaseHook(f func(string)) { phaseHook = f }

// QuotaLookups looks up the quota root of each of names in spool as the
// commit does (quotaPlan.nearest), and returns the roots found and the
// most names the plan remembered at once.
func QuotaLookups(spool *partition.Spool, names []string) (roots []string, most int, err error) {
	q := &quotaPlan{rs: &restorer{spool: spool}, dump: map[string]*syncrec.Quota{}, isRoot: map[string]bool{}, touched: map[string]bool{}}
	for _, n := range names {
		r, err := q.nearest(n)
		if err != nil {
			return roots, most, err
		}
		roots = append(roots, r)
		most = max(most, len(q.isRoot))
	}
	return roots, most, nil
}

// SetUserBatches sets how many users' seen dbs and subscription files,
// and how many quota roots and their mailboxes, restore writes after one
// look-up, and returns what puts the defaults back.
func SetUserBatches(users, roots, entries int) (undo func()) {
	u, r, e := maxUserRuns, maxRootsHeld, maxEntriesHeld
	maxUserRuns, maxRootsHeld, maxEntriesHeld = users, roots, entries
	return func() { maxUserRuns, maxRootsHeld, maxEntriesHeld = u, r, e }
}

// SetGroupBounds sets the most mailboxes and parked bytes of a commit
// group, and returns what puts the defaults back.
func SetGroupBounds(boxes, bytes int) (undo func()) {
	b, n := maxGroup, maxGroupBytes
	maxGroup, maxGroupBytes = boxes, bytes
	return func() { maxGroup, maxGroupBytes = b, n }
}
