package restore_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/restore"
)

// groupsOf restores a generated dump of 6 users (10 mailboxes each and
// one shared) into an empty partition and returns how many commit groups
// registered mailboxes, and how many mailboxes were restored.
func groupsOf(t *testing.T) (groups, restored int) {
	t.Helper()
	var dump bytes.Buffer
	st, err := gen.WriteDump(&dump, gen.Options{Seed: 5, Users: 6, Messages: 60, SmallOnly: true, MeanSize: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	_, spool, err := gen.OpenEmpty(filepath.Join(t.TempDir(), "target"))
	if err != nil {
		t.Fatal(err)
	}
	restore.SetPhaseHook(func(phase string) {
		if phase == "registering" {
			groups++
		}
	})
	defer restore.SetPhaseHook(nil)
	sum, err := restore.Run(context.Background(), spool, &dump, restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sum.Mailboxes {
		if m.Applied {
			restored++
		}
	}
	if int64(restored) != st.Mailboxes {
		t.Fatalf("%d mailboxes restored, want %d", restored, st.Mailboxes)
	}
	return groups, restored
}

// TestGroupBounds checks the three bounds of a commit group: how many
// mailboxes (maxGroup), the bytes of their parked state (maxGroupBytes),
// and a quarter of the descriptors the process may open, three per box.
func TestGroupBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("restores 61 mailboxes four times")
	}
	if os.Getenv(envGroupFDs) != "" {
		groupFDBound(t)
		return
	}
	groups, n := groupsOf(t)
	if groups != 1 {
		t.Errorf("%d mailboxes in %d groups by default; want one group", n, groups)
	}
	undo := restore.SetGroupBounds(10, 4<<20)
	groups, n = groupsOf(t)
	undo()
	if want := (n + 9) / 10; groups != want {
		t.Errorf("%d mailboxes, at most 10 a group: %d groups; want %d", n, groups, want)
	}
	// A byte is less than any box's state: every group ends at its
	// first box.
	undo = restore.SetGroupBounds(512, 1)
	groups, n = groupsOf(t)
	undo()
	if groups != n {
		t.Errorf("%d mailboxes, groups of at most 1 byte: %d groups; want one each", n, groups)
	}
	// The descriptor bound is checked in a child process, this test
	// alone: this process holds the descriptors the tests before this
	// one left open (cyrusfs keeps each root it walked open, three a
	// target: 186 here once), which a limit of 96 would not hold.
	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupBounds$", "-test.v")
	cmd.Env = append(os.Environ(), envGroupFDs+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestGroupBounds") {
		t.Errorf("the descriptor bound, in a child process: %v\n%s", err, out)
	}
}

// envGroupFDs makes TestGroupBounds check only the descriptor bound (in
// its child process).
const envGroupFDs = "MBTOOL_TEST_GROUP_FDS"

// groupFDBound checks that a group holds at most a quarter of the
// descriptors the process may open, three per box.
func groupFDBound(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	low := rl
	low.Cur = 96 // 96 / 4 / 3: 8 boxes a group
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
	}()
	groups, n := groupsOf(t)
	if want := (n + 7) / 8; groups != want {
		t.Errorf("%d mailboxes, %d descriptors: %d groups; want %d", n, low.Cur, groups, want)
	}
}
