package restore

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/mbtool/mbtool/partition"
)

// TestUserFilesJobsInOrder writes users' subscription files through
// userFiles on two workers whose jobs finish out of order (each even job
// waits for the next one to end): each job's after (where writeSeen
// reports its problems) runs in the order the jobs were put, the batch
// holds and names the files in that order (its crash points are one per
// file, whatever finished first), and a user whose file is put again
// while the first job is out gets one file with both runs' names. With a
// failing job, the jobs put after it are not handed back: their files
// are dropped, never named, and those before it are named by the batch.
func TestUserFilesJobsInOrder(t *testing.T) {
	for _, fail := range []int{-1, 9} {
		t.Run(strconv.Itoa(fail), func(t *testing.T) {
			withWorkers(t, 2)
			target := emptyTarget(t, "")
			rs := &restorer{spool: target, owner: partition.Owner{UID: -1, GID: -1}}
			var named []string
			files := partition.NewFileBatch(func(int) error { return nil })
			files.Step = func() { named = append(named, "") }
			w := rs.newUserFiles(files)
			defer w.close()
			const n = 20
			ended := make([]chan struct{}, n+1)
			endOnce := make([]sync.Once, n+1)
			for i := range ended {
				ended[i] = make(chan struct{})
			}
			end := func(i int) { endOnce[i].Do(func() { close(ended[i]) }) }
			var order []int
			var err error
			user := func(i int) string { return fmt.Sprintf("user%02d", i%(n-2)) }
			for i := 0; i < n && err == nil; i++ {
				path, perr := target.SubsPath(user(i))
				if perr != nil {
					t.Fatal(perr)
				}
				err = w.put(path, func(part *partition.NewFiles) error {
					defer end(i)
					if i%2 == 0 {
						<-ended[i+1]
					}
					if i == fail {
						return fmt.Errorf("job %d failed", i)
					}
					return target.AddSubsAt(part, user(i), path, rs.owner, []string{"user." + user(i) + ".r" + strconv.Itoa(i)})
				}, func() { order = append(order, i) })
			}
			if err == nil {
				err = w.flush()
			}
			if fail >= 0 {
				if err == nil || err.Error() != fmt.Sprintf("job %d failed", fail) {
					t.Fatalf("error %v, want job %d's", err, fail)
				}
				// The jobs not begun when it failed are skipped
				// (inOrder): one running may wait for such a one's end.
				for i := fail + 1; i <= n; i++ {
					end(i)
				}
				w.close()
			} else if err != nil {
				t.Fatal(err)
			}
			if err := files.Commit(); err != nil {
				t.Fatal(err)
			}
			last := n - 1
			if fail >= 0 {
				last = fail
			}
			// The batch is committed when job 18 is put (user00's file
			// is pending): 18 files; the last two jobs then change
			// the files named. With job 9 failing (found at that
			// put), the 9 before it.
			wantSteps := 2 + 18
			if fail >= 0 {
				wantSteps = 2 + fail
			}
			if len(named) != wantSteps {
				t.Errorf("%d crash points in the batch's commits, want %d", len(named), wantSteps)
			}
			if want := seq(last + 1); !slices.Equal(order, want) {
				t.Errorf("jobs handed back in order %v, want %v", order, want)
			}
			for i := range n {
				subs, err := target.ReadSubs(user(i))
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				want := fail < 0 || i < fail
				if got := slices.Contains(subs, "user."+user(i)+".r"+strconv.Itoa(i)); got != want {
					t.Errorf("job %d's subscription written: %v, want %v (%v)", i, got, want, subs)
				}
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
