package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// targets hands every run that writes a partition (tar -xf, restore) a
// directory of its own and removes them all only when the benchmark
// ends (removeAll), so that no timed run follows the removal of an
// earlier round's tree.
//
// That matters on ext4 without a journal (this project's benchmark
// machine): its inode allocator passes over every free inode that was
// freed recently, looking each one up in the buffer cache
// (fs/ext4/ialloc.c, recently_deleted and find_inode_bit; only without
// a journal), so after an `rm -rf` of tens of thousands of files,
// creating files costs several times more for minutes. There, `tar -xf`
// of the 20,001-mailbox partition into a fresh directory took 15.3 s,
// 14.3 s of it system time, when a tree as large had been removed,
// synced and left for 61 s, and 3.3 s a round later with nothing
// removed in between; `perf` put over half of such a run in that check.
// Each pair alternated its runs, so whichever came first after a
// removal paid most: the restore pair's ratios at 20,001 mailboxes
// spread from 0.09 to 0.69 within one run.
type targets struct {
	dir  string
	n    int
	kept []string
	// warned is the number of times the disk was too full to keep every
	// target, so kept ones were removed before a timed run.
	warned int
	// leftovers is how many targets of an earlier run newTargets removed.
	leftovers int
}

// settle is how long after removing kept targets the next timed run
// waits, for the file system to stop passing over the freed inodes:
// longer than the five minutes and more ext4 may count an inode as
// recently freed. freeSpace is free (both variables for the tests).
var (
	settle    = defaultSettle
	freeSpace = free
)

const defaultSettle = 6 * time.Minute

// newTargets returns the targets of a run in dir. Targets an earlier,
// interrupted run left there (target-N) are removed first, all at once,
// and the run then waits settle before its first timed run: removed later,
// one by one as their names came round again, they slowed the runs timed
// right after.
func newTargets(dir string) *targets {
	t := &targets{dir: dir}
	left, _ := filepath.Glob(filepath.Join(dir, "target-*"))
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "bench: removing %d target(s) an earlier run left in %s, then waiting %s before the first run\n", len(left), dir, settle)
		for _, p := range left {
			os.RemoveAll(p)
		}
		t.leftovers = len(left)
		unix.Sync()
		time.Sleep(settle)
	}
	return t
}

// next returns a fresh path (not yet made) for a run that writes about
// bytes. If the file system would keep less than twice that free, it
// first removes the kept targets, syncs and waits settle, saying so.
func (t *targets) next(bytes int64) string {
	if f, ok := freeSpace(t.dir); ok && len(t.kept) > 0 && f < 2*bytes+1<<30 {
		t.warned++
		fmt.Fprintf(os.Stderr, "bench: too little space left to keep %d targets; removing them and waiting %s before the next run\n", len(t.kept), settle)
		t.removeAll()
		unix.Sync()
		time.Sleep(settle)
	}
	t.n++
	p := filepath.Join(t.dir, fmt.Sprintf("target-%d", t.n))
	t.kept = append(t.kept, p)
	return p
}

// removeAll removes every target handed out since the last call.
func (t *targets) removeAll() {
	for _, p := range t.kept {
		os.RemoveAll(p)
	}
	t.kept = nil
}

// free is the space, in bytes, left to an unprivileged writer in the
// file system of dir, if it can be known.
func free(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}

// targetBytes is about what a copy of p takes on disk: its files, and a
// block for each message file and the four or so files and directories
// of each mailbox.
func targetBytes(p *partitionInfo) int64 {
	return p.treeBytes + 4096*(p.messages+4*int64(p.mailboxes))
}
