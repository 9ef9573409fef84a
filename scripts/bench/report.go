package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/mbtool/mbtool/internal/benchstat"
)

type report struct {
	cfg       config
	started   time.Time
	part      *partitionInfo
	dumpBytes int64
	pairs     []pair
	scaling   []scalingPoint
	listBytes int64  // the dump list read (-list)
	listPairs []pair // list next to verify (-list)
	// agreement is the verdict of -against, written into the compare
	// section: which earlier run this one was checked against, and pair by
	// pair whether the two agree.
	agreement string
}

// Section names in docs/benchmarks.md (see benchstat.Markers).
const (
	sectionCompare = "bench compare"
	sectionScaling = "bench scaling"
)

// docHead starts a report file that does not exist yet; in
// docs/benchmarks.md it is kept (and may be edited) between runs.
const docHead = `# Benchmarks

The sections below are written by ` + "`go run ./scripts/bench`" + ` (see the
comment at the top of scripts/bench/main.go); every figure in them comes from
the run named in the section. Do not edit between the marker comments.

`

// provenance says which command ran where and when.
func (r *report) provenance() string {
	return fmt.Sprintf("Measured by `%s` on %s, %s.", r.cfg.args, benchstat.Machine(), r.started.UTC().Format("2006-01-02 15:04 MST"))
}

func (r *report) rounds() string {
	s := fmt.Sprintf("%d alternating rounds", r.cfg.pairs)
	if r.cfg.pairs == 1 {
		s = "1 round"
	}
	return s
}

// warnings are the report's cautions about its own figures.
func (r *report) warnings() []string {
	var ms []*measurement
	base := map[*measurement]bool{}
	for _, p := range r.pairs {
		ms = append(ms, p.baseline, p.mbtool)
		base[p.baseline] = true
	}
	return spreadWarnings(r.cfg.pairs, ms, func(m *measurement) bool { return base[m] })
}

// text is the plain-text result for the terminal.
func (r *report) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n", r.provenance())
	if r.part != nil {
		fmt.Fprintf(&b, "%d message files, %.2f GB; times median (min–max) of %s\n\n", r.part.messages, float64(r.part.bytes)/1e9, r.rounds())
	}
	for _, p := range r.pairs {
		fmt.Fprintf(&b, "%-28s %-22s vs %-24s %-22s ratio %s\n", p.mbtool.name, p.mbtool.time().Format("%.2f"),
			p.baseline.name, p.baseline.time().Format("%.2f"), p.ratio().Format("%.2f"))
	}
	for _, p := range r.listPairs {
		fmt.Fprintf(&b, "%-28s %-22s vs %-24s %-22s ratio %s, peak RSS %d MiB\n", p.mbtool.name, p.mbtool.time().Format("%.2f"),
			p.baseline.name, p.baseline.time().Format("%.2f"), p.ratio().Format("%.2f"), p.mbtool.maxRSSMiB())
	}
	for _, w := range r.listWarnings() {
		b.WriteString("WARNING: " + w + "\n")
	}
	for _, s := range r.scaling {
		n := 1e6 / float64(s.messages)
		fmt.Fprintf(&b, "scaling %8d msgs µs/msg: dump %s, verify %s, restore %s\n", s.messages,
			s.dump.time().Scale(n).Format("%.1f"), s.verify.time().Scale(n).Format("%.1f"), s.restore.time().Scale(n).Format("%.1f"))
	}
	for _, w := range r.warnings() {
		b.WriteString("WARNING: " + w + "\n")
	}
	return b.String()
}

// bar draws a throughput bar, one block per 25 MB/s, at most 60.
func bar(mb float64) string {
	n := int(mb / 25)
	if n > 60 {
		return strings.Repeat("█", 59) + "▶"
	}
	return strings.Repeat("█", max(n, 1))
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// pairData is what a later run compares itself with (-against).
type pairData struct {
	What, Mbtool, Baseline string
	Ratio                  benchstat.Summary
}

// rounded keeps 3 decimals of a ratio's summary, enough to compare runs.
func rounded(s benchstat.Summary) benchstat.Summary {
	r := func(x float64) float64 { return math.Round(x*1000) / 1000 }
	return benchstat.Summary{N: s.N, Min: r(s.Min), Med: r(s.Med), Max: r(s.Max)}
}

// compareSection is the generated section on the pairs.
func (r *report) compareSection() string {
	var b strings.Builder
	p := r.part
	b.WriteString("## mbtool next to its baselines\n\n")
	b.WriteString(r.provenance() + "\n\n")
	fmt.Fprintf(&b, "The partition: `fixtures/gen` seed 1, written through mbtool's restore: %d message files (%.2f GB) in %d mailboxes of %d users, "+
		"%.2f GB in all under config/ and spool/; its dump file is %.2f GB. "+
		"Each pair ran in %s after one untimed warm-up of the commands that only read; times are in seconds, median (min–max); "+
		"the ratio is the baseline's time over mbtool's in the same round, median (min–max) over the rounds: above 1, mbtool is faster. "+
		"CPU s is the median user + system time of every process of the command: "+
		"a ratio that moves from run to run while the CPU times stay put is waiting (scheduling, stalls), not work.\n\n",
		p.messages, float64(p.bytes)/1e9, p.mailboxes, p.users, float64(p.treeBytes)/1e9, float64(r.dumpBytes)/1e9, r.rounds())
	b.WriteString("| mbtool | seconds | baseline | seconds | ratio | MB/s mbtool | MB/s baseline | bytes read | peak RSS MiB mbtool / baseline | CPU s mbtool / baseline |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	var data []pairData
	for _, x := range r.pairs {
		mt, bt, ratio := x.mbtool.time(), x.baseline.time(), x.ratio()
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | **%s** | %.0f | %.0f | %s | %d / %d | %.2f / %.2f |\n",
			cell(x.mbtool.name), mt.Format("%.2f"), cell(x.baseline.name), bt.Format("%.2f"), ratio.Format("%.2f"),
			mbps(x.bytes, mt.Med), mbps(x.bytes, bt.Med), x.of, x.mbtool.maxRSSMiB(), x.baseline.maxRSSMiB(),
			x.mbtool.cpuTime(), x.baseline.cpuTime())
		data = append(data, pairData{x.what, x.mbtool.name, x.baseline.name, rounded(ratio)})
	}
	for _, w := range r.warnings() {
		b.WriteString("\n**Warning:** " + w + "\n")
	}
	b.WriteString(r.floors())
	b.WriteString(r.agreement)
	b.WriteString("\nMedian throughput over the bytes each pair reads (MB/s, longer is faster):\n\n```text\n")
	seen := map[*measurement]bool{}
	for _, x := range r.pairs {
		for _, m := range []*measurement{x.mbtool, x.baseline} {
			if !seen[m] {
				seen[m] = true
				v := mbps(x.bytes, m.time().Med)
				fmt.Fprintf(&b, "%-28s %6.0f %s\n", m.name, v, bar(v))
			}
		}
	}
	b.WriteString("```\n")
	js, _ := json.Marshal(data)
	fmt.Fprintf(&b, "\n<!-- data: %s -->\n", js)
	return b.String()
}

// floors says what the run's own baselines imply about the least time a
// dump and a verify can take on this machine: the CPU time of the work
// each must do, as its baselines measured it one by one, spread over
// every core with nothing else done. Empty unless the run measured every
// command it needs.
func (r *report) floors() string {
	find := func(name string) *measurement {
		for _, x := range r.pairs {
			for _, m := range []*measurement{x.mbtool, x.baseline} {
				if m.name == name && m.cpuTime() > 0 {
					return m
				}
			}
		}
		return nil
	}
	tar, sha1sum, limit, b3 := find("tar -cf - | cat"), find("sha1sum"), find("sha1limit (all cores)"), find("b3sum")
	dump, verify := find("mbtool dump | cat"), find("mbtool verify")
	if tar == nil || sha1sum == nil || limit == nil || b3 == nil || dump == nil || verify == nil {
		return ""
	}
	cores := runtime.NumCPU()
	n := float64(cores)
	var b strings.Builder
	b.WriteString("\nWhat the baselines' CPU times imply (CPU seconds are medians; a floor assumes every core busy throughout and nothing done but the work named):\n\n")
	vf := (limit.cpuTime() + b3.cpuTime()) / n
	fmt.Fprintf(&b, "- verify must SHA-1 every message (`sha1limit`: %.2f CPU s) and BLAKE3 the whole file for its trailer digest (`b3sum`: %.2f CPU s): "+
		"a floor of %.2f s on %d cores, %.1fx `sha1sum`'s median time. It took %.2f s (%.2f CPU s): %.1fx in the table.\n",
		limit.cpuTime(), b3.cpuTime(), vf, cores, sha1sum.time().Med/vf, verify.time().Med, verify.cpuTime(), ratioOf(verify, sha1sum).Med)
	df := (tar.cpuTime() + limit.cpuTime() + b3.cpuTime()) / n
	fmt.Fprintf(&b, "- dump does the work of `tar -cf - | cat` (%.2f CPU s, reading and writing the bytes as tar does) and also SHA-1s every message file and BLAKE3s its output (about the bytes of the dump file the two hash: %.2f + %.2f CPU s): "+
		"a floor of %.2f s on %d cores, %.2fx `tar -cf - | cat`'s median time. It took %.2f s (%.2f CPU s): %.2fx in the table.\n",
		tar.cpuTime(), limit.cpuTime(), b3.cpuTime(), df, cores, tar.time().Med/df, dump.time().Med, dump.cpuTime(), ratioOf(dump, tar).Med)
	return b.String()
}

// scalingSection is the generated section on the scaling series.
func (r *report) scalingSection() string {
	var b strings.Builder
	b.WriteString("## Scaling with the number of messages\n\n")
	b.WriteString(r.provenance() + "\n\n")
	fmt.Fprintf(&b, "Small messages only (`fixtures/gen` seed 2, SmallOnly), so the largest partition fits the disk. "+
		"After a warm-up dump, dump, verify and restore ran in turn, %d times; time per message in microseconds, median (min–max); "+
		"peak RSS the largest of the runs.\n\n", r.cfg.pairs)
	b.WriteString("| messages | GB | dump µs/msg | dump RSS MiB | verify µs/msg | verify RSS MiB | restore µs/msg | restore RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.scaling {
		n := 1e6 / float64(s.messages)
		fmt.Fprintf(&b, "| %d | %.2f | %s | %d | %s | %d | %s | %d |\n", s.messages, float64(s.bytes)/1e9,
			s.dump.time().Scale(n).Format("%.1f"), s.dump.maxRSSMiB(), s.verify.time().Scale(n).Format("%.1f"), s.verify.maxRSSMiB(),
			s.restore.time().Scale(n).Format("%.1f"), s.restore.maxRSSMiB())
	}
	if len(r.scaling) >= 2 {
		first, last := r.scaling[0], r.scaling[len(r.scaling)-1]
		// Per-message time at the largest size over the smallest: the
		// ratio of medians, and the widest range the runs allow.
		rel := func(a, z *measurement) string { return perUnitRelative(a, z, first.messages, last.messages) }
		fmt.Fprintf(&b, "\nTime per message at %d messages relative to %d: dump %s, verify %s, restore %s.\n",
			last.messages, first.messages, rel(first.dump, last.dump), rel(first.verify, last.verify), rel(first.restore, last.restore))
		prev := r.scaling[len(r.scaling)-2]
		per := func(a, z *measurement) string {
			d := z.maxRSSMiB() - a.maxRSSMiB()
			return fmt.Sprintf("%+d MiB (%.1f bytes per added message)", d, float64(d)*(1<<20)/float64(last.messages-prev.messages))
		}
		fmt.Fprintf(&b, "\nPeak RSS at %d messages relative to %d: dump %s, verify %s, restore %s.\n",
			last.messages, prev.messages, per(prev.dump, last.dump), per(prev.verify, last.verify), per(prev.restore, last.restore))
	}
	return b.String()
}

// write updates the report file: the sections this run measured.
func (r *report) write(path string) error {
	if r.part != nil {
		if err := writeSection(path, sectionCompare, r.compareSection()); err != nil {
			return err
		}
	}
	if len(r.listPairs) > 0 {
		if err := writeSection(path, sectionList, r.listSection()); err != nil {
			return err
		}
	}
	if len(r.scaling) > 0 {
		return writeSection(path, sectionScaling, r.scalingSection())
	}
	return nil
}

// publish prints a section's body and, unless out is empty, writes it
// into the report file out.
func publish(out, name, body string) error {
	fmt.Print("\n" + body)
	if out == "" {
		return nil
	}
	if err := writeSection(out, name, body); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", out)
	return nil
}

// writeSection replaces one section of the report file, which is made
// (with docHead) when it does not exist.
func writeSection(path, name, body string) error {
	doc, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		doc, err = []byte(docHead), nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, benchstat.ReplaceSection(doc, name, body), 0o644)
}

var dataRe = regexp.MustCompile(`<!-- data: (.*) -->`)

// provenanceRe finds a section's provenance line (report.provenance).
var provenanceRe = regexp.MustCompile("(?m)^Measured by .*$")

// agree compares this run's ratios with those of an earlier report: two
// runs agree when each one's median ratio lies within the other's
// min–max.
func (r *report) agree(old []byte) (string, bool) {
	sec, ok := benchstat.Section(old, sectionCompare)
	m := dataRe.FindStringSubmatch(sec)
	if !ok || m == nil {
		return "the earlier report has no data to compare with\n", false
	}
	var before []pairData
	if err := json.Unmarshal([]byte(m[1]), &before); err != nil {
		return fmt.Sprintf("the earlier report's data: %v\n", err), false
	}
	var b, md strings.Builder
	all := true
	for _, x := range r.pairs {
		now := x.ratio()
		found := false
		for _, o := range before {
			if o.Mbtool != x.mbtool.name || o.Baseline != x.baseline.name {
				continue
			}
			found = true
			ok := o.Ratio.Within(now.Med) && now.Within(o.Ratio.Med)
			all = all && ok
			verdict := "agree"
			if !ok {
				verdict = "DISAGREE"
			}
			fmt.Fprintf(&b, "%-28s vs %-24s now %s, before %s: %s\n", x.mbtool.name, x.baseline.name,
				now.Format("%.2f"), o.Ratio.Format("%.2f"), verdict)
			fmt.Fprintf(&md, "| `%s` | `%s` | %s | %s | %s |\n", cell(x.mbtool.name), cell(x.baseline.name),
				now.Format("%.2f"), o.Ratio.Format("%.2f"), strings.ToLower(verdict))
		}
		if !found {
			fmt.Fprintf(&b, "%-28s vs %-24s not in the earlier report\n", x.mbtool.name, x.baseline.name)
			fmt.Fprintf(&md, "| `%s` | `%s` | %s | not measured | disagree |\n", cell(x.mbtool.name), cell(x.baseline.name), now.Format("%.2f"))
			all = false
		}
	}
	// The earlier run, as its own section names it.
	earlier := "an earlier run (its report names none)"
	if p := provenanceRe.FindString(sec); p != "" {
		earlier = "the earlier run of the line \"" + strings.TrimSuffix(p, ".") + "\""
	}
	summary := "every pair agrees: each run's median ratio lies within the other's min–max."
	if !all {
		summary = "not every pair agrees (a pair agrees when each run's median ratio lies within the other's min–max)."
	}
	r.agreement = fmt.Sprintf("\nThis run was checked with `-against` against %s: %s\n\n"+
		"| mbtool | baseline | ratio, this run | ratio, earlier run | verdict |\n|---|---|---|---|---|\n%s",
		earlier, summary, md.String())
	return b.String(), all
}
