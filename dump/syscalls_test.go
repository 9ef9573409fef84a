package dump_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/fixtures/gen"
)

// straceDump runs mbtool dump --all of a generated partition of users
// users (10 mailboxes each, and one shared) under strace with the options
// given and returns the path of strace's output.
func straceDump(t *testing.T, bin string, users int, opts ...string) string {
	t.Helper()
	dir := t.TempDir()
	conf, _, err := gen.Partition(context.Background(), dir, gen.Options{Seed: 3, Users: users, Messages: 3 * 10 * users, SmallOnly: true, MeanSize: 1_700})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "strace.txt")
	args := append(append([]string{"-f", "-o", out}, opts...), bin, "dump", "-C", conf, "--all", "-q", "-o", os.DevNull)
	if b, err := exec.Command("strace", args...).CombinedOutput(); err != nil {
		t.Fatalf("strace mbtool dump: %v\n%s", err, b)
	}
	return out
}

// buildMbtool builds mbtool for a test that runs it under strace.
func buildMbtool(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("no strace")
	}
	if testing.Short() {
		t.Skip("builds mbtool")
	}
	return fixtures.BuildMbtool(t)
}

// fcntlCalls runs mbtool dump --all of a generated partition of users
// users under strace and returns the fcntl calls it made.
func fcntlCalls(t *testing.T, bin string, users int) int {
	t.Helper()
	out := straceDump(t, bin, users, "-c", "-e", "trace=fcntl")
	n, ok := straceSummary(t, out)["fcntl"]
	if !ok {
		t.Fatalf("no fcntl line in strace's summary")
	}
	return n
}

// straceSummary reads the table strace -c wrote to path: the calls per
// system call name (its "total" row left out, so that the values add up
// to the calls counted).
func straceSummary(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	calls := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// % time, seconds, usecs/call, calls, [errors,] syscall
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		if n, err := strconv.Atoi(fs[3]); err == nil && fs[len(fs)-1] != "total" {
			calls[fs[len(fs)-1]] = n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return calls
}

// TestFcntlPerMailbox counts dump's fcntl calls per mailbox (the
// difference between 11 and 51 mailboxes, so that what a run costs once
// drops out). Cyrus's protocol (docs/cyrus/locks.md §5) needs a shared
// lock on the namespace, the name lock and the index, and one
// mailboxes.db lookup under its lock and unlock: 5. Lock files and the
// index are closed to release them (an OFD lock ends with its file), and
// they, cyrus.header and the index header read for the totals are opened
// as bare descriptors (os.NewFile asks F_GETFL). 13.3 calls per mailbox
// before, 6.2 after; 7.0 with the namespace lock file kept open between an
// owner's mailboxes (an F_UNLCK to keep it), 6.8 with a user's two
// listings (the INBOX's tree and the deleted one) under one hold of
// mailboxes.db.
func TestFcntlPerMailbox(t *testing.T) {
	bin := buildMbtool(t)
	per := perMailbox(t, bin, fcntlCalls, "fcntl", "calls")
	if per > 6.9 {
		t.Errorf("dump makes %.1f fcntl calls per mailbox; want at most 6.9", per)
	}
}

// mboxlistReads runs mbtool dump --all of a generated partition under
// strace and counts the reads of mailboxes.db (strace -y names each
// descriptor's file).
func mboxlistReads(t *testing.T, bin string, users int) int {
	t.Helper()
	out := straceDump(t, bin, users, "-y", "-e", "trace=read,pread64")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "/mailboxes.db>") {
			n++
		}
	}
	return n
}

// TestMailboxesDBReadsPerMailbox counts dump's reads of mailboxes.db per
// mailbox (the difference between 11 and 51 mailboxes). The plan of
// --all walks mailboxes.db once for the users and the totals, and keeps
// no entry; a user's mailboxes are listed at the user's turn with two
// searches down the skip list (the INBOX with what is under it, and the
// deleted tree). Opening a mailbox looks its entry up again under the
// name lock, as Cyrus does, and while mailboxes.db still holds the state
// the list was read from (the same file, header and size) that is the
// listed entry: one read of the header, where a search read five records
// more. A user's seen database and subscriptions are found through the
// user's INBOX, searched once for both. 5.5 reads per mailbox at first,
// 2.1 with the plan's entries, 1.7 with one walk and one search per user,
// 1.6 with the lists made per user in two searches; 0.8-0.9 measured
// when the bound was set at 1.1.
func TestMailboxesDBReadsPerMailbox(t *testing.T) {
	bin := buildMbtool(t)
	per := perMailbox(t, bin, mboxlistReads, "mailboxes.db", "reads")
	if per > 1.1 {
		t.Errorf("dump reads mailboxes.db %.1f times per mailbox; want at most 1.1", per)
	}
}

// indexCalls runs mbtool dump --all of a generated partition under
// strace and counts the reads and fstats of each mailbox's cyrus.index
// and cyrus.header (strace -y names each descriptor's file).
func indexCalls(t *testing.T, bin string, users int) int {
	t.Helper()
	out := straceDump(t, bin, users, "-y", "-e", "trace=read,pread64,fstat")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "/cyrus.index>") || strings.Contains(line, "/cyrus.header>") {
			n++
		}
	}
	return n
}

// TestIndexReadsPerMailbox counts dump's reads and fstats of cyrus.index
// and cyrus.header per mailbox (the difference between 11 and 51
// mailboxes). Under the index lock the header and the records of a small
// mailbox come in one read that stops short at the end of the file, which
// gives the size too; cyrus.header likewise. 9 calls per mailbox before
// (the plan's fstat and read of the index header; an fstat when opening,
// one for the size, a read of the header, one of the records; for
// cyrus.header an fstat, a read and the read that returned nothing), 6
// after; 4 once the plan, with no progress bar to show totals, stopped
// reading index headers at the first of the highest version (its fstat
// and read of every other one gone).
func TestIndexReadsPerMailbox(t *testing.T) {
	bin := buildMbtool(t)
	per := perMailbox(t, bin, indexCalls, "cyrus.index and cyrus.header", "calls")
	if per > 4.5 {
		t.Errorf("dump makes %.1f reads and fstats of cyrus.index and cyrus.header per mailbox; want at most 4.5", per)
	}
}

// traced returns what perMailbox counts with: the calls of strace's
// trace set set (-e trace=set) that mbtool dump --all of a generated
// partition of users users makes, all of them together.
func traced(set string) func(t *testing.T, bin string, users int) int {
	return func(t *testing.T, bin string, users int) int {
		t.Helper()
		n := 0
		for _, c := range straceSummary(t, straceDump(t, bin, users, "-c", "-e", "trace="+set)) {
			n += c
		}
		return n
	}
}

// TestOpensPerMailbox counts dump's opens per mailbox (the difference
// between 11 and 51 mailboxes; 3 message files each on average, and a
// user's seen database and subscriptions shared by 10). Opening a mailbox
// as Cyrus's readers do takes its name lock file, its directory,
// cyrus.index, cyrus.header, annotations.db (absent in the generated
// partition, tried each time: Cyrus creates it at the first annotation)
// and cyrus.annotations (absent too, and nothing in the index says so).
// The plan no longer opens every cyrus.index for its totals when there
// is no progress bar to show them: it stops at the first index of the
// highest version (dump's totals). cyrus.cache is opened only when a
// record has a cache record (partition's openCache); the generated
// records have none. 11.5 opens per mailbox before, 9.5 after.
func TestOpensPerMailbox(t *testing.T) {
	bin := buildMbtool(t)
	per := perMailbox(t, bin, traced("open,openat,openat2"), "opens", "calls")
	if per > 9.7 {
		t.Errorf("dump makes %.1f opens per mailbox; want at most 9.7", per)
	}
}

// TestFstatsPerMailbox counts dump's fstats of descriptors per mailbox
// (the difference between 11 and 51 mailboxes). Every file opened
// beneath the roots (name lock, cyrus.index, cyrus.header, message files)
// is checked to be a regular file; the kept namespace lock file and
// mailboxes.db are checked against their paths at each lock with a stat
// of the path alone, their inode (which does not change while they are
// open) known from the open (lock.ID): 2 fstats per mailbox fewer. 6.9
// per mailbox before the plan stopped reading every index header (one
// fstat each), 5.9 then, 3.9 after.
func TestFstatsPerMailbox(t *testing.T) {
	bin := buildMbtool(t)
	per := perMailbox(t, bin, traced("fstat"), "fstats", "calls")
	if per > 4.2 {
		t.Errorf("dump makes %.1f fstats per mailbox; want at most 4.2", per)
	}
}

// TestStatsPerMailbox counts dump's stats of paths per mailbox (the
// difference between 11 and 51 mailboxes). Per mailbox, Cyrus's rules
// need the check that the namespace lock file kept open is still the
// one its path names, and the one that mailboxes.db is (docs/cyrus/locks.md
// §4.4, §5): 2; the rest is what a user costs (its listing, quota, seen
// and subscription files) shared by its 10 mailboxes. The roots of the
// tree every file is opened beneath (lock directory, partition,
// configdirectory) are checked once per run of an owner's mailboxes
// (partition's nsLockCache), no longer at every lock file, mailbox
// directory and annotations.db opened: 5.7 stats per mailbox before,
// 2.9 after; 2.8 with a user's two listings under one hold of
// mailboxes.db (one check of its path, not two). (Until straceSummary
// left strace's total row out, this test counted every call twice, and
// said 11.4, 5.8 and 5.6, against a bound of 6.)
func TestStatsPerMailbox(t *testing.T) {
	bin := buildMbtool(t)
	per := perMailbox(t, bin, traced("newfstatat,statx,stat,lstat"), "stats of paths", "calls")
	if per > 3 {
		t.Errorf("dump makes %.1f stats of paths per mailbox; want at most 3", per)
	}
}

// perMailbox is what count counts per mailbox of a dump: the difference
// between a partition of 1 user (11 mailboxes) and one of 5 (51), so that
// what a run costs once drops out; it logs both counts.
func perMailbox(t *testing.T, bin string, count func(*testing.T, string, int) int, what, unit string) float64 {
	t.Helper()
	small, large := count(t, bin, 1), count(t, bin, 5)
	per := float64(large-small) / 40
	t.Logf("%s: %d %s for 11 mailboxes, %d for 51: %.2f per mailbox", what, small, unit, large, per)
	return per
}
