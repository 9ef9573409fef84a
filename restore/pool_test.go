package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// withWorkers sets commitWorkers for a test.
func withWorkers(t *testing.T, n int) {
	saved := commitWorkers
	commitWorkers = n
	t.Cleanup(func() { commitWorkers = saved })
}

// TestInOrder: every item comes back once, in the order fed, with the
// error its own run of the function returned (the items finish out of
// order), and a failing collect stops the pool with every worker ended.
func TestInOrder(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		t.Run(strconv.Itoa(workers), func(t *testing.T) {
			withWorkers(t, workers)
			var running atomic.Int32
			fn := func(i int) error {
				running.Add(1)
				defer running.Add(-1)
				time.Sleep(time.Duration((i*7919)%5) * 100 * time.Microsecond)
				if i%7 == 3 {
					return fmt.Errorf("item %d failed", i)
				}
				return nil
			}
			var got []int
			p := newInOrder(fn, func(i int, err error) error {
				got = append(got, i)
				if (err != nil) != (i%7 == 3) || err != nil && err.Error() != fmt.Sprintf("item %d failed", i) {
					t.Errorf("item %d came back with error %v", i, err)
				}
				return nil
			})
			const n = 3*poolWindow + 5
			for i := range n {
				if err := p.put(i); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.flush(); err != nil {
				t.Fatal(err)
			}
			p.close()
			if len(got) != n {
				t.Fatalf("%d items came back, want %d", len(got), n)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("item %d came back at place %d", v, i)
				}
			}

			// collect's error stops put or flush, and close waits for
			// the items still running.
			stop := errors.New("stop")
			p = newInOrder(fn, func(i int, err error) error {
				if i == 10 {
					return stop
				}
				return nil
			})
			var err error
			for i := 0; i < n && err == nil; i++ {
				err = p.put(i)
			}
			if err == nil {
				err = p.flush()
			}
			p.close()
			if !errors.Is(err, stop) {
				t.Errorf("collect's error was lost: %v", err)
			}
			if r := running.Load(); r != 0 {
				t.Errorf("%d items still running after close", r)
			}
		})
	}
}

// stagedBoxDirs lists the mailbox directories staged in the target's
// partitions (beneath .mbtool-restore.*/mbox/), in the order staged.
func stagedBoxDirs(t *testing.T, root string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(root, ".mbtool-restore.*", "mbox", "*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(dirs[i]))
		b, _ := strconv.Atoi(filepath.Base(dirs[j]))
		return a < b
	})
	return dirs
}

// refusedOnly checks that the run's problems are for exactly the
// mailboxes want (each naming why), and that every other mailbox of
// names, and none of want, is registered.
func refusedOnly(t *testing.T, sum *Summary, names []string, want map[string]bool, why string) {
	t.Helper()
	got := map[string]bool{}
	for _, p := range sum.Problems {
		if !want[p.Item] || !strings.Contains(p.Err.Error(), why) {
			t.Errorf("problem %s: %v; want a problem %q of %v only", p.Item, p.Err, why, want)
		}
		got[p.Item] = true
	}
	for n := range want {
		if !got[n] {
			t.Errorf("%s: its worker's error was lost (no problem reported)", n)
		}
	}
	for _, m := range sum.Mailboxes {
		if m.Applied == want[m.Name] {
			t.Errorf("%s: applied %v, want %v", m.Name, m.Applied, !want[m.Name])
		}
	}
	if len(sum.Mailboxes) != len(names) {
		t.Errorf("%d mailboxes in the summary, want %d", len(sum.Mailboxes), len(names))
	}
}

// A worker of writeAllMeta that fails (a staged cyrus.index removed
// behind its back) refuses its own mailbox, naming it, and no other; a
// lost error would leave that mailbox registered without its index.
func TestWorkerErrorWriteMeta(t *testing.T) {
	withWorkers(t, 2)
	dump, _ := fixtureDump(t, []string{"alice", "bob"})
	target := emptyTarget(t, "")
	root := target.Config.Partitions["default"]
	removed := ""
	phaseHook = func(p string) {
		if p != "read" {
			return
		}
		dirs := stagedBoxDirs(t, root)
		if len(dirs) < 4 {
			t.Errorf("%d mailboxes staged", len(dirs))
			return
		}
		removed = filepath.Join(dirs[len(dirs)/2], "cyrus.index")
		if err := os.Remove(removed); err != nil {
			t.Error(err)
		}
	}
	defer func() { phaseHook = nil }()
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if removed == "" {
		t.Fatal("no staged cyrus.index removed")
	}
	if len(sum.Problems) != 1 {
		t.Fatalf("problems %v, want one", sum.Problems)
	}
	names := append(append([]string{}, fixtureAlice...), "user.bob")
	refusedOnly(t, sum, names, map[string]bool{sum.Problems[0].Item: true}, "cyrus.index")
}

// A worker of placeBoxes that fails (a file planted where the parent
// directory of some mailboxes' final directories must be made) refuses
// those mailboxes, each naming its own error, and no other.
func TestWorkerErrorPlace(t *testing.T) {
	withWorkers(t, 2)
	dump, src := fixtureDump(t, []string{"alice", "bob"})
	target := emptyTarget(t, "")
	names := append(append([]string{}, fixtureAlice...), "user.bob")
	parent := func(name string) string {
		e, err := src.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		e.Partition = "default"
		dir, _, err := target.Dirs(e)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Dir(dir)
	}
	planted := parent("user.alice.Sent")
	want := map[string]bool{}
	for _, n := range names {
		if parent(n) == planted {
			want[n] = true
		}
	}
	if len(want) == len(names) {
		t.Fatal("every mailbox is under the planted directory")
	}
	if err := os.MkdirAll(filepath.Dir(planted), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planted, []byte("planted"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	refusedOnly(t, sum, names, want, filepath.Base(planted))
}

// TestInOrderDrop: after a collect's error, close gives drop each item
// run but not handed back, once: every item fed is either handed back
// or dropped.
func TestInOrderDrop(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		t.Run(strconv.Itoa(workers), func(t *testing.T) {
			withWorkers(t, workers)
			seen := map[int]int{}
			p := newInOrder(func(int) error { return nil }, func(i int, _ error) error {
				seen[i]++
				if i == 5 {
					return errors.New("stop")
				}
				return nil
			})
			p.drop = func(i int) { seen[i]++ }
			fed := 0
			for i := range poolWindow + 10 {
				if err := p.put(i); err != nil {
					break
				}
				fed++
			}
			if fed == poolWindow+10 {
				t.Fatal("no error at put")
			}
			p.close()
			for i := range fed {
				if seen[i] != 1 {
					t.Errorf("item %d handed back or dropped %d times", i, seen[i])
				}
			}
		})
	}
}

// TestInOrderStopsAfterError: once collect has returned an error, the
// workers skip the items they had not begun: only those already running
// finish (they may change what exists), the rest are dropped unrun.
func TestInOrderStopsAfterError(t *testing.T) {
	withWorkers(t, 2)
	gate := make(chan struct{})
	var mu sync.Mutex
	ran := map[int]bool{}
	p := newInOrder(func(i int) error {
		mu.Lock()
		ran[i] = true
		mu.Unlock()
		if i == 0 {
			return errors.New("item 0 fails")
		}
		<-gate // items 1 and 2 hold both workers until item 0 is handed back
		return nil
	}, func(i int, err error) error { return err })
	dropped := 0
	p.drop = func(int) { dropped++ }
	for i := range 10 {
		if err := p.put(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.flush(); err == nil {
		t.Fatal("no error from item 0")
	}
	close(gate)
	p.close()
	for i := 3; i < 10; i++ {
		if ran[i] {
			t.Errorf("item %d ran after item 0 failed", i)
		}
	}
	if dropped != 9 {
		t.Errorf("%d items dropped, want 9 (1 to 9)", dropped)
	}
}
