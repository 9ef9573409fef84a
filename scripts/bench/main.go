// Command bench measures mbtool next to the tools that do the same work,
// on a generated Cyrus partition, in one run, and writes the figures into
// docs/benchmarks.md. The published figures come from this command, run
// on a quiet machine (about 10 minutes, 2 GB of disk per 100,000
// messages, needs tar, zstd, sha1sum, b3sum and /usr/bin/time):
//
//	go run ./scripts/bench
//
// Other runs:
//
//	go run ./scripts/bench -messages 2000 -out /tmp/b.md   # a quick look
//	go run ./scripts/bench -messages 0 -scaling            # only the 10k/100k/1M small-message series (about an hour)
//	go run ./scripts/bench -messages 0 -mailboxes          # only the mailbox axis: 200, 2,000, 20,000 mailboxes
//	go run ./scripts/bench -list                           # only mbtool list next to mbtool verify (a generated dump, no partition)
//	go run ./scripts/bench -list -messages 2000 -out ''    # a quick look at the same
//	go run ./scripts/bench -messages 0 -mailboxes -mailbox-max 200000   # and 200,000 (hours, 5 GB; -mailbox-restore-pairs 1: about 45 minutes)
//	go run ./scripts/bench -messages 0 -repo-nightly       # only the repository's nightly scenario: 100,000 messages, 30 nights (hours; real Cyrus)
//	go run ./scripts/bench -messages 0 -repo-nightly -nightly-messages 10000 -nights 2   # a quick look
//	go run ./scripts/bench -messages 0 -repo-nightly -nightly-bytes   # the same, bytes only, untimed (its own section)
//	go run ./scripts/bench -messages 0 -rss            # only peak RSS of every command at 1,000,000 messages (an hour; real Cyrus)
//	go run ./scripts/bench -messages 0 -rss -rss-messages 5000 -out ''   # a quick look at the same
//	go run ./scripts/bench -s3                              # only the repository on object storage (SeaweedFS) next to a directory
//	go run ./scripts/bench -s3 -s3-pin                      # the same, and again with the store and mbtool on a core each
//	go run ./scripts/bench -against docs/benchmarks.md -out /tmp/b.md
//	                                  # a second run: do its figures agree with the published ones?
//
// Each pair of commands (mbtool and its baseline) runs -pairs times after
// one untimed warm-up, alternating: in every round both run back to back,
// baseline first in even rounds and mbtool first in odd ones, with a sync
// (untimed) before each. The report gives min, median and max of each
// time and of the round-by-round ratios, the CPU model and core count,
// and a warning where a baseline's times spread more than 20%. Only the
// sections this run measured are replaced in the report (between their
// marker comments); the rest of the file is kept.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/partition"
)

type config struct {
	dir      string
	out      string
	against  string
	messages int
	pairs    int
	scaling  bool
	s3       bool // the object-store pairs instead of the baselines (s3.go)
	s3Pin    bool // and again with the store and mbtool on CPUs of their own
	list     bool // only list next to verify (list.go)
	// the mailbox axis (mailboxes.go)
	mailboxes  bool
	mailboxMax int
	// restore's rounds on the partitions above 20,000 mailboxes (one
	// round of 200,000 takes some 12 minutes here); 0: pairs
	mailboxRestorePairs int
	scaleMax            int
	// peak RSS of every command (rss.go)
	rss         bool
	rssMessages int
	// the backup repository's nightly scenario (nightly.go)
	repoNightly     bool
	nightlyMessages int
	nights          int
	// nightlyBytes: the scenario without its timed rounds, reported in a
	// section of its own (a loaded machine: bytes and restores only)
	nightlyBytes bool
	args         string // the command line, as the report quotes it
	// where the runs that write a partition write (targets.go)
	targets *targets
}

// minPairs is the fewest rounds whose spread the report trusts.
const minPairs = 5

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "/var/tmp/mbtool-bench", "work directory (needs about 4x the partition size free)")
	flag.StringVar(&c.out, "out", "docs/benchmarks.md", "report to update (empty: print only)")
	flag.StringVar(&c.against, "against", "", "an earlier report: say whether this run's ratios agree with its spread")
	flag.IntVar(&c.messages, "messages", 100_000, "messages in the generated partition")
	flag.IntVar(&c.pairs, "pairs", minPairs, "alternating rounds of each pair (at least 5 for a report)")
	flag.BoolVar(&c.s3, "s3", false, "measure the repository on a SeaweedFS store (internal/s3lab) next to one in a directory, instead of the baseline pairs")
	flag.BoolVar(&c.s3Pin, "s3-pin", false, "with -s3: measure every pair twice, as is and with SeaweedFS pinned to CPU 1 and mbtool to CPU 0 in both rows (taskset)")
	flag.BoolVar(&c.list, "list", false, "only measure mbtool list next to mbtool verify, on a dump of -messages")
	flag.BoolVar(&c.scaling, "scaling", false, "also run the scaling series (small messages, 10k up to -scale-max)")
	flag.IntVar(&c.scaleMax, "scale-max", 1_000_000, "largest partition of the scaling series")
	flag.BoolVar(&c.mailboxes, "mailboxes", false, "also run the mailbox axis (200 mailboxes up to -mailbox-max, a few messages each)")
	flag.IntVar(&c.mailboxMax, "mailbox-max", 20_000, "largest partition of the mailbox axis")
	flag.IntVar(&c.mailboxRestorePairs, "mailbox-restore-pairs", 0, "rounds of the restore pair on the mailbox axis's partitions above 20,000 mailboxes (0: -pairs); the report says when they are fewer")
	flag.BoolVar(&c.repoNightly, "repo-nightly", false, "also run the backup repository's nightly scenario (needs real Cyrus)")
	flag.IntVar(&c.nightlyMessages, "nightly-messages", 100_000, "messages of the nightly scenario's partition")
	flag.IntVar(&c.nights, "nights", 30, "nights of the nightly scenario (at least 2; more than 7 adds prune --keep-daily 7)")
	flag.BoolVar(&c.nightlyBytes, "nightly-bytes", false, "with -repo-nightly: no timed rounds, report bytes and restores only, in a section of their own (for a loaded machine)")
	flag.BoolVar(&c.rss, "rss", false, "also measure every command's peak RSS on the scaling series' partition of -rss-messages (real Cyrus for restore --server)")
	flag.IntVar(&c.rssMessages, "rss-messages", 1_000_000, "messages of the -rss partition")
	flag.Parse()
	c.args = commandLine(os.Args[1:])
	if c.pairs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -pairs must be at least 1")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// commandLine is the command as the report quotes it (without -out and
// -dir, which do not change a figure).
func commandLine(args []string) string {
	var kept []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
		if name == "out" || name == "dir" || name == "against" {
			if !strings.Contains(a, "=") {
				i++
			}
			continue
		}
		kept = append(kept, a)
	}
	return strings.TrimSpace("go run ./scripts/bench " + strings.Join(kept, " "))
}

// msgName is the name of a message file in a mailbox directory.
var msgName = regexp.MustCompile(`^[0-9]+\.$`)

var timeRe = regexp.MustCompile(`(?m)^BENCH ([0-9.]+) ([0-9]+) ([0-9.]+) ([0-9.]+)$`)

// timed runs a shell command under /usr/bin/time and returns its wall time,
// the peak RSS (KiB) of the largest process it waited for, and the CPU time
// (user + system) of all of them.
func timed(dir, script string) (float64, int64, float64, error) {
	cmd := exec.Command("/usr/bin/time", "-f", "BENCH %e %M %U %S", "sh", "-c", script)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start).Seconds()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %v\n%s", script, err, out)
	}
	m := timeRe.FindSubmatch(out)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("%s: no /usr/bin/time output in %q", script, out)
	}
	rss, _ := strconv.ParseInt(string(m[2]), 10, 64)
	user, _ := strconv.ParseFloat(string(m[3]), 64)
	sys, _ := strconv.ParseFloat(string(m[4]), 64)
	return wall, rss, user + sys, nil
}

func sh(dir, script string) error {
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", script, err, out)
	}
	return nil
}

// q quotes s for sh.
func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// partitionInfo is a generated partition ready to be measured.
type partitionInfo struct {
	dir, conf        string
	messages, bytes  int64 // message files and their bytes
	treeBytes        int64 // every file under config/ and spool/
	mailboxes, users int
}

// generate makes (or reuses, when its stamp matches) a partition of o
// under dir.
func generate(ctx context.Context, dir string, o gen.Options) (*partitionInfo, error) {
	p := &partitionInfo{dir: dir}
	stamp := filepath.Join(dir, "generated")
	want := fmt.Sprintf("%+v", o)
	if b, err := os.ReadFile(stamp); err != nil || string(b) != want {
		os.RemoveAll(dir)
		start := time.Now()
		fmt.Fprintf(os.Stderr, "generating %d messages in %s ...\n", o.Messages, dir)
		if _, _, err := gen.Partition(ctx, dir, o); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "generated in %s\n", time.Since(start).Round(time.Second))
		if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
			return nil, err
		}
	}
	p.conf = filepath.Join(dir, "imapd.conf")
	t, err := countTree(dir)
	if err != nil {
		return nil, err
	}
	p.messages, p.bytes, p.treeBytes = t.messages, t.bytes, t.treeBytes
	cfg, err := partition.LoadConfig(p.conf)
	if err != nil {
		return nil, err
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		return nil, err
	}
	boxes, err := spool.Mailboxes()
	if err != nil {
		return nil, err
	}
	users, err := spool.Users()
	if err != nil {
		return nil, err
	}
	p.mailboxes, p.users = len(boxes), len(users)
	return p, nil
}

func run(c config) error {
	ctx := context.Background()
	for _, tool := range []string{"tar", "zstd", "sha1sum", "b3sum", "/usr/bin/time"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed (Debian: apt-get install tar zstd coreutils b3sum time): %v", tool, err)
		}
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	c.targets = newTargets(c.dir)
	defer c.targets.removeAll()
	bin := filepath.Join(c.dir, "mbtool")
	limit := filepath.Join(c.dir, "sha1limit")
	if err := sh(".", "go build -o "+q(bin)+" . && go build -o "+q(limit)+" ./scripts/sha1limit"); err != nil {
		return err
	}
	if c.mailboxes {
		if err := mailboxAxis(ctx, bin, c); err != nil {
			return err
		}
	}
	if c.rss {
		if err := rssRun(ctx, bin, c); err != nil {
			return err
		}
	}
	if c.repoNightly {
		if err := repoNightly(c); err != nil {
			return err
		}
	}
	rep := &report{cfg: c, started: time.Now()}
	if c.list {
		if err := rep.listCompare(bin); err != nil {
			return err
		}
	} else if c.messages > 0 {
		p, err := generate(ctx, filepath.Join(c.dir, fmt.Sprintf("src-%d", c.messages)), gen.Options{Seed: 1, Messages: c.messages})
		if err != nil {
			return err
		}
		if c.s3 {
			body, err := s3Pairs(bin, c, p)
			if err != nil {
				return err
			}
			if err := publish(c.out, sectionS3, body); err != nil {
				return err
			}
		} else {
			rep.part = p
			if err := rep.compare(bin, limit); err != nil {
				return err
			}
		}
	}
	if c.scaling {
		for _, n := range []int{10_000, 100_000, 1_000_000, 10_000_000} {
			if n > c.scaleMax {
				break
			}
			sp, err := generate(ctx, filepath.Join(c.dir, fmt.Sprintf("scale-%d", n)), scaleOptions(n))
			if err != nil {
				return err
			}
			pt, err := scalePoint(bin, c.dir, c.targets, sp, c.pairs)
			if err != nil {
				return err
			}
			rep.scaling = append(rep.scaling, pt)
		}
	}
	if rep.part == nil && len(rep.scaling) == 0 && len(rep.listPairs) == 0 {
		return nil
	}
	fmt.Print(rep.text())
	var disagree error
	if c.against != "" && rep.part != nil {
		old, err := os.ReadFile(c.against)
		if err != nil {
			return err
		}
		msg, ok := rep.agree(old)
		fmt.Print(msg)
		if !ok {
			disagree = fmt.Errorf("this run does not agree with %s", c.against)
		}
	}
	if c.out != "" {
		if err := rep.write(c.out); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", c.out)
	}
	return disagree
}
