package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func fakeReport(pairs int, base, mb []float64) *report {
	b := &measurement{name: "tar -cf - | cat", secs: base, rssKiB: []int64{2048}}
	m := &measurement{name: "mbtool dump | cat", secs: mb, rssKiB: []int64{30 << 10}}
	return &report{
		cfg:     config{pairs: pairs, args: "go run ./scripts/bench"},
		started: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		part:    &partitionInfo{messages: 100, bytes: 1e6, treeBytes: 2e6, mailboxes: 3, users: 1},
		pairs:   []pair{{"dump", m, b, 2e6, "files"}},
	}
}

// The report's warnings: too few rounds, a baseline spreading more than
// 20%; and none on five quiet rounds.
func TestWarnings(t *testing.T) {
	quiet := fakeReport(5, []float64{1, 1.05, 1.1, 1.0, 1.02}, []float64{2, 2.1, 2, 2, 2.05})
	if w := quiet.warnings(); len(w) != 0 {
		t.Errorf("quiet run: %v", w)
	}
	noisy := fakeReport(5, []float64{1, 1.3, 1.1, 1.0, 1.02}, []float64{2, 2.1, 2, 2, 2.05})
	if w := noisy.warnings(); len(w) != 1 || !strings.Contains(w[0], "baseline `tar -cf - | cat` spread 29%") {
		t.Errorf("noisy baseline: %v", w)
	}
	few := fakeReport(3, []float64{1, 1, 1}, []float64{2, 2, 2})
	if w := few.warnings(); len(w) != 1 || !strings.Contains(w[0], "only 3 round(s)") {
		t.Errorf("3 rounds: %v", w)
	}
	md := noisy.compareSection()
	for _, want := range []string{"**Warning:** the baseline", "| **0.50 (0.50–0.62)** |", "2026-12-01 00:00 UTC", " cores ("} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// A second run agrees with the first when each median lies within the
// other's range.
func TestAgree(t *testing.T) {
	first := fakeReport(5, []float64{1, 1.05, 1.1, 1.0, 1.02}, []float64{2, 2.1, 2, 2, 2.05})
	doc := []byte(docHead + "<!-- begin generated: bench compare -->\n" + first.compareSection() + "<!-- end generated: bench compare -->\n")
	same := fakeReport(5, []float64{1.02, 1.04, 1.0, 1.0, 1.03}, []float64{2.05, 2.0, 2, 2.1, 2.0})
	if msg, ok := same.agree(doc); !ok {
		t.Errorf("close runs disagree:\n%s", msg)
	}
	// The verdict is part of the section the second run writes, naming
	// the first run by its provenance line.
	md := same.compareSection()
	for _, want := range []string{"checked with `-against` against the earlier run of the line \"Measured by `", "every pair agrees", "| agree |"} {
		if !strings.Contains(md, want) {
			t.Errorf("agreeing run's section lacks %q:\n%s", want, md)
		}
	}
	faster := fakeReport(5, []float64{1, 1.05, 1.1, 1.0, 1.02}, []float64{1, 1.1, 1, 1, 1.05})
	if msg, ok := faster.agree(doc); ok || !strings.Contains(msg, "DISAGREE") {
		t.Errorf("twice as fast agrees:\n%s", msg)
	}
	if md := faster.compareSection(); !strings.Contains(md, "not every pair agrees") || !strings.Contains(md, "| disagree |") {
		t.Errorf("disagreeing run's section does not say so:\n%s", md)
	}
	// A run without -against writes no verdict.
	if strings.Contains(first.compareSection(), "-against") {
		t.Errorf("a run not checked says it was")
	}
}

// The floors come from the run's own CPU times: with every command
// measured, verify's is SHA-1 and BLAKE3 over the cores, dump's adds tar's.
func TestFloors(t *testing.T) {
	m := func(name string, secs, cpu float64) *measurement {
		return &measurement{name: name, secs: []float64{secs, secs, secs, secs, secs}, rssKiB: []int64{1024}, cpu: []float64{cpu, cpu, cpu, cpu, cpu}}
	}
	tar, dump := m("tar -cf - | cat", 1.5, 2), m("mbtool dump | cat", 3, 4)
	verify := m("mbtool verify", 1.6, 2.6)
	r := &report{pairs: []pair{{mbtool: dump, baseline: tar}, {mbtool: verify, baseline: m("sha1sum", 3, 3)},
		{mbtool: verify, baseline: m("b3sum", 0.2, 0.4)}, {mbtool: verify, baseline: m("sha1limit (all cores)", 0.6, 1.2)}}}
	n := float64(runtime.NumCPU())
	got := r.floors()
	for _, want := range []string{
		fmt.Sprintf("a floor of %.2f s on %d cores, %.1fx `sha1sum`", 1.6/n, int(n), 3/(1.6/n)),
		"It took 1.60 s (2.60 CPU s): 1.9x in the table",
		fmt.Sprintf("a floor of %.2f s on %d cores, %.2fx `tar -cf - | cat`", 3.6/n, int(n), 1.5/(3.6/n)),
		"It took 3.00 s (4.00 CPU s): 0.50x in the table",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("floors lack %q:\n%s", want, got)
		}
	}
	r.pairs = r.pairs[:1]
	if got := r.floors(); got != "" {
		t.Errorf("floors without the verify baselines: %q", got)
	}
}

// write replaces only its own sections: prose edited by hand stays.
func TestWriteKeepsProse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.md")
	r := fakeReport(5, []float64{1, 1, 1, 1, 1}, []float64{2, 2, 2, 2, 2})
	if err := r.write(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "# Benchmarks\n", "# Benchmarks\n\nA hand-written line.\n", 1)), 0o644)
	r.pairs[0].mbtool.secs = []float64{4, 4, 4, 4, 4}
	if err := r.write(path); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if s := string(b); !strings.Contains(s, "A hand-written line.") || !strings.Contains(s, "**0.25 (0.25–0.25)**") || strings.Count(s, "## mbtool next to") != 1 {
		t.Errorf("after two writes:\n%s", s)
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"-dir", "/x", "-pairs", "7", "-out=/tmp/b.md", "-against", "docs/benchmarks.md", "-scaling"})
	if want := "go run ./scripts/bench -pairs 7 -scaling"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// smallRun runs the script with args (plus -pairs 1 and a work directory
// and report of the test's own) and returns the report it wrote. It skips
// the test with -short or without one of tools.
func smallRun(t *testing.T, tools []string, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	wd, _ := os.Getwd()
	dir := t.TempDir()
	out := filepath.Join(dir, "b.md")
	args = append([]string{"run", "./scripts/bench"}, append(args, "-pairs", "1", "-dir", filepath.Join(dir, "work"), "-out", out)...)
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(wd, "..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The whole script on a tiny partition: it runs every pair and writes a
// report (the figures of one round mean nothing; this checks the
// plumbing). Skipped with -short or without the baselines' tools.
func TestSmallRun(t *testing.T) {
	s := smallRun(t, []string{"tar", "zstd", "sha1sum", "b3sum", "/usr/bin/time"}, "-messages", "300")
	for _, want := range []string{"`tar -cf - \\| cat`", "`sha1limit (all cores)`", "`b3sum`", "`tar -xf + sync`", "only 1 round(s)", "<!-- data: ",
		// The zstd pair at mbtool's level and window, and the CPU times.
		"`tar -cf - \\| zstd -3, 8 MiB window`", "| CPU s mbtool / baseline |"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}

// The mailbox axis on its smallest partition (200 mailboxes), one round:
// the -mailboxes run that the 200,000-mailbox partition uses on demand
// (-mailbox-max 200000) works end to end and writes its section. Skipped
// with -short or without the baselines' tools.
func TestSmallMailboxRun(t *testing.T) {
	s := smallRun(t, []string{"tar", "/usr/bin/time"}, "-messages", "0", "-mailboxes", "-mailbox-max", "200")
	for _, want := range []string{"<!-- begin generated: bench mailboxes -->", "| 201 | 20 | 600 |", "verify --against µs", "seen-cleanup --all µs", "only 1 round(s)"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "| 2001 |") {
		t.Errorf("report has a partition above -mailbox-max 200:\n%s", s)
	}
}

// The mailbox axis warns, naming the size, where a command spread.
func TestMailboxWarnings(t *testing.T) {
	m := func(name string, secs ...float64) *measurement {
		return &measurement{name: name, secs: secs, rssKiB: []int64{1024}}
	}
	quiet := []float64{1, 1, 1, 1, 1}
	pt := mailboxPoint{part: &partitionInfo{mailboxes: 2000, users: 200, messages: 6000},
		dump: m("mbtool dump | cat", quiet...), tarCat: m("tar -cf - | cat", 1, 1.5, 1, 1, 1),
		restore: m("mbtool restore + sync", quiet...), untar: m("tar -xf + sync", quiet...),
		against: m("mbtool verify --against", quiet...), seen: m("mbtool seen-cleanup --all", quiet...),
		restoreRounds: 5}
	s := mailboxSection(config{pairs: 5, args: "go run ./scripts/bench -mailboxes"}, time.Now(), []mailboxPoint{pt})
	if strings.Count(s, "**Warning:**") != 1 || !strings.Contains(s, "at 2000 mailboxes, the baseline `tar -cf - | cat` spread 50%") {
		t.Errorf("mailbox section:\n%s", s)
	}
	// A restore pair of one round (-mailbox-restore-pairs 1) is said to
	// be one, and not judged by a spread it does not have.
	big := pt
	big.part = &partitionInfo{mailboxes: 200001, users: 20000, messages: 600000}
	big.tarCat = m("tar -cf - | cat", quiet...)
	big.restore, big.untar, big.restoreRounds = m("mbtool restore + sync", 700), m("tar -xf + sync", 300), 1
	s = mailboxSection(config{pairs: 5, args: "go run ./scripts/bench -mailboxes"}, time.Now(), []mailboxPoint{pt, big})
	if !strings.Contains(s, "at 200001 mailboxes, the restore pair ran in 1 round(s) only") || strings.Count(s, "**Warning:**") != 2 {
		t.Errorf("mailbox section with one restore round at 200001:\n%s", s)
	}
}

// The mailbox axis compares CPU time per mailbox too, size against size:
// work that grows faster than the mailboxes shows there even when the
// larger partition's wall times are the disk's.
func TestMailboxCPUPerMailbox(t *testing.T) {
	m := func(name string, cpu float64) *measurement {
		return &measurement{name: name, secs: []float64{1, 1, 1, 1, 1}, rssKiB: []int64{1024},
			cpu: []float64{cpu, cpu, cpu, cpu, cpu}}
	}
	point := func(n int, scale float64) mailboxPoint {
		return mailboxPoint{part: &partitionInfo{mailboxes: n, users: n / 10, messages: int64(3 * n)},
			dump: m("mbtool dump | cat", scale), tarCat: m("tar -cf - | cat", 1),
			restore: m("mbtool restore + sync", scale*scale), untar: m("tar -xf + sync", 1),
			against: m("mbtool verify --against", scale), seen: m("mbtool seen-cleanup --all", scale),
			restoreRounds: 5}
	}
	s := mailboxSection(config{pairs: 5, args: "go run ./scripts/bench -mailboxes"}, time.Now(), []mailboxPoint{point(2000, 1), point(20000, 10)})
	want := "CPU time (user + system) per mailbox at 20000 mailboxes relative to 2000: dump 1.00x (1.00–1.00), restore 10.00x (10.00–10.00), verify --against 1.00x"
	if !strings.Contains(s, want) || !strings.Contains(s, "the baselines `tar -cf - | cat` 0.10x (0.10–0.10)") {
		t.Errorf("mailbox section lacks %q or the baselines':\n%s", want, s)
	}
	// A run below the timer's resolution gives no ratio, not +Inf.
	small := point(200, 1)
	small.seen = m("mbtool seen-cleanup --all", 0)
	s = mailboxSection(config{pairs: 5, args: "go run ./scripts/bench -mailboxes"}, time.Now(), []mailboxPoint{small, point(2000, 10)})
	if strings.Contains(s, "Inf") || !strings.Contains(s, "seen-cleanup not measurable") {
		t.Errorf("mailbox section with a run of 0 CPU seconds:\n%s", s)
	}
}
