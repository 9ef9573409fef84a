package restore

import (
	"fmt"
	"reflect"
	"testing"
)

// TestUserRunsCuts checks that gathering several users' runs cuts each
// user's records where one run per user at a time did (where the user
// changes, or where the run would pass max), writes them in the order
// read, with each user's paths, and looks the paths up once per set of
// runs, not once per user.
func TestUserRunsCuts(t *testing.T) {
	target := emptyTarget(t, "")
	rs := &restorer{spool: target}
	type item struct {
		user string
		w    int
	}
	var in []item
	for i := range 150 {
		u := fmt.Sprintf("u%03d", i%140) // some users come again later
		for j := range 1 + i%5 {
			in = append(in, item{u, 1 + (i+j)%7})
		}
	}
	in = append(in, item{"big", 150}, item{"big", 150}, item{"big", 60}) // past max alone
	const max = 200
	// The cuts of one run at a time (writeSeen and writeSubs before).
	var want [][]int
	user, held := "", 0
	for i, it := range in {
		if len(want) == 0 || it.user != user || held+it.w > max {
			want = append(want, nil)
			user, held = it.user, 0
		}
		want[len(want)-1] = append(want[len(want)-1], i)
		held += it.w
	}
	var got [][]int
	lookups := 0
	u := &userRuns[int]{max: max, what: "test", rs: rs, write: func(r userRun[int], paths userDBPaths) error {
		seen, subs, err := target.UserDBPaths(r.user)
		if err != nil || paths.seen != seen || paths.subs != subs {
			t.Errorf("paths of %s: %+v, want %s %s (%v)", r.user, paths, seen, subs, err)
		}
		for _, i := range r.items {
			if in[i].user != r.user {
				t.Errorf("item %d of %s in a run of %s", i, in[i].user, r.user)
			}
		}
		got = append(got, r.items)
		return nil
	}}
	flushes := 0
	for i, it := range in {
		n := len(got)
		if err := u.add(it.user, i, it.w); err != nil {
			t.Fatal(err)
		}
		if u.total > max && len(u.runs) > 1 {
			t.Fatalf("%d held in %d runs, more than %d", u.total, len(u.runs), max)
		}
		if len(got) > n {
			flushes++
		}
	}
	if err := u.flush(len(u.runs)); err != nil {
		t.Fatal(err)
	}
	lookups = flushes + 1
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runs %v\nwant %v", got, want)
	}
	if lookups*3 > len(want) {
		t.Errorf("%d look-ups for %d runs", lookups, len(want))
	}
}

// TestKeptQuotaRecomputed restores a dump again over itself: every
// mailbox is kept, and the quota root they fall under still has its
// usage recomputed (writeQuotas finds kept boxes by their handles).
func TestKeptQuotaRecomputed(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice"})
	target := emptyTarget(t, "")
	if _, err := run(t, target, dump, Options{}); err != nil {
		t.Fatal(err)
	}
	want, err := src.ReadQuota("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	q, err := target.ReadQuota("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	q.Usage = map[string]int64{}
	if err := target.PutQuota(nil, q, testOwner); err != nil {
		t.Fatal(err)
	}
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := sum.Count(ActionKeep); n != len(fixtureAlice) {
		t.Fatalf("%d kept, want %d", n, len(fixtureAlice))
	}
	got, err := target.ReadQuota("user.alice")
	if err != nil || !reflect.DeepEqual(got.Usage, want.Usage) {
		t.Errorf("usage %v (%v), want %v", got.Usage, err, want.Usage)
	}
}
