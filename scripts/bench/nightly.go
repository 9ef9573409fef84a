package main

// The backup repository's nightly scenario (issue 16's Must show): night
// 1, then days of 1% new, 0.5% expunged and 2% flagged messages on a live
// Cyrus, each followed by a night; night 2 timed against night 1 of the
// same partition in alternating rounds. It needs real Cyrus, and runs
// repo/repodump's BenchmarkNights, whose lines it reports.

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/mbtool/mbtool/internal/benchstat"
)

const (
	sectionNightly      = "bench repo-nightly"
	sectionNightlyBytes = "bench repo-nightly-bytes"
)

// benchLine is a line BenchmarkNights logs (t.Logf: "    bench_test.go:N: ...").
var benchLine = regexp.MustCompile(`(?m)^\s+bench_test\.go:\d+: (.*)$`)

// metricRe is the benchmark's result line of metrics.
var metricRe = regexp.MustCompile(`(?m)^BenchmarkNights\S*\s+\d+\s+(.*)$`)

// repoNightly runs the scenario with c.nightlyMessages messages and
// c.nights nights, prints its lines and updates its section of c.out.
func repoNightly(c config) error {
	started := time.Now()
	rounds := c.pairs
	if c.nightlyBytes {
		rounds = 0
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkNights$", "-benchtime", "1x", "-timeout", "12h", "-v",
		"./repo/repodump")
	cmd.Env = append(os.Environ(), "MBTOOL_REAL_CYRUS=1",
		fmt.Sprintf("MBTOOL_BENCH_MESSAGES=%d", c.nightlyMessages),
		fmt.Sprintf("MBTOOL_BENCH_NIGHTS=%d", c.nights),
		fmt.Sprintf("MBTOOL_BENCH_ROUNDS=%d", rounds))
	fmt.Fprintf(os.Stderr, "running the nightly scenario: %d messages, %d nights (BenchmarkNights) ...\n", c.nightlyMessages, c.nights)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("BenchmarkNights: %v\n%s", err, out)
	}
	var b strings.Builder
	section := sectionNightly
	if c.nightlyBytes {
		section = sectionNightlyBytes
		fmt.Fprintf(&b, "## The backup repository over %d nights: bytes\n\n", c.nights)
		fmt.Fprintf(&b, "Measured by `%s` on %s, %s: repo/repodump's BenchmarkNights, without its timed rounds, on a live Cyrus with a generated partition of %d messages, %d nights (night 1, then each day 1%% new, 0.5%% expunged and 2%% flagged messages through IMAP, the expunged purged by `cyr_expire -X 0`, and a night). "+
			"Every night writes out as that night's standalone dump; with more than 7 nights, `prune --keep-daily 7` follows, and every kept night, restored from the pruned repository into a fresh Cyrus, shows over IMAP what Cyrus served that night. "+
			"This run measures bytes, not time: the times in the lines below were taken on a machine shared with other work and are not results.\n\n",
			c.args, benchstat.Machine(), started.UTC().Format("2006-01-02 15:04 MST"), c.nightlyMessages, c.nights)
	} else {
		fmt.Fprintf(&b, "## The backup repository, night after night\n\n")
		fmt.Fprintf(&b, "Measured by `%s` on %s, %s: repo/repodump's BenchmarkNights on a live Cyrus with a generated partition of %d messages, %d nights (night 1, then each day 1%% new, 0.5%% expunged and 2%% flagged messages through IMAP, the expunged purged by `cyr_expire -X 0`, and a night). Night 2's time is measured against night 1 of the same partition in %d alternating rounds (night 1 into an empty repository, night 2 into a copy of the repository after the first night, a sync before each).\n\n",
			c.args, benchstat.Machine(), started.UTC().Format("2006-01-02 15:04 MST"), c.nightlyMessages, c.nights, c.pairs)
	}
	if m := metricRe.FindSubmatch(out); m != nil {
		fmt.Fprintf(&b, "Metrics: `%s`\n\n", strings.Join(strings.Fields(string(m[1])), " "))
	}
	b.WriteString("```\n")
	for _, m := range benchLine.FindAllSubmatch(out, -1) {
		b.WriteString(string(m[1]) + "\n")
	}
	b.WriteString("```\n")
	return publish(c.out, section, b.String())
}
