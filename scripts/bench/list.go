package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mbtool/mbtool/fixtures/gen"
)

// sectionList is the report's section on mbtool list.
const sectionList = "bench list"

// listBudgetMiB is the peak RSS `mbtool list` must stay under on a
// 100,000-message dump (issue 14).
const listBudgetMiB = 64

// listPairs are mbtool list next to mbtool verify of the same dump, the
// speed list must at least match: the users (every record decoded, no
// message file read), and every message with its header (every file's
// header parsed, spilled and joined).
func listPairs(bin, dumpFile string, bytes int64) ([]group, []pair) {
	m := func(name string) *measurement { return &measurement{name: name} }
	verify, users, msgs := m("mbtool verify"), m("mbtool list"), m("mbtool list --messages")
	g := group{warm: true, cmds: []command{
		{verify, fixed(fmt.Sprintf("%s verify -q %s > /dev/null", q(bin), q(dumpFile)))},
		{users, fixed(fmt.Sprintf("%s list -q %s > /dev/null", q(bin), q(dumpFile)))},
		{msgs, fixed(fmt.Sprintf("%s list -q --messages %s > /dev/null", q(bin), q(dumpFile)))},
	}}
	return []group{g}, []pair{
		{"list", users, verify, bytes, "dump file"},
		{"list --messages", msgs, verify, bytes, "dump file"},
	}
}

// listCompare measures list against verify on a dump written straight by
// fixtures/gen (no partition needed): go run ./scripts/bench -list.
func (r *report) listCompare(bin string) error {
	c := r.cfg
	dumpFile := filepath.Join(c.dir, fmt.Sprintf("list-%d.dlist", c.messages))
	if _, err := os.Stat(dumpFile); err != nil {
		f, err := os.Create(dumpFile + ".tmp")
		if err != nil {
			return err
		}
		if _, err := gen.WriteDump(f, gen.Options{Seed: 1, Messages: c.messages}); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(dumpFile+".tmp", dumpFile); err != nil {
			return err
		}
	}
	fi, err := os.Stat(dumpFile)
	if err != nil {
		return err
	}
	r.listBytes = fi.Size()
	groups, pairs := listPairs(bin, dumpFile, fi.Size())
	if err := runGroups(c.dir, groups, c.pairs); err != nil {
		return err
	}
	r.listPairs = pairs
	return nil
}

// listSection is the generated section on list.
func (r *report) listSection() string {
	var b strings.Builder
	b.WriteString("## mbtool list next to mbtool verify\n\n")
	b.WriteString(r.provenance() + "\n\n")
	fmt.Fprintf(&b, "A dump of %d messages from `fixtures/gen` seed 1 (%.2f GB). `mbtool list` must be at least as fast "+
		"as `mbtool verify` of the same dump (ratio at least 1) and stay under %d MiB of peak RSS at 100,000 messages. "+
		"%s after one untimed warm-up; seconds, median (min–max); the ratio is verify's time over list's in the same round.\n\n",
		r.cfg.messages, float64(r.listBytes)/1e9, listBudgetMiB, r.rounds())
	b.WriteString("| command | seconds | verify seconds | ratio | peak RSS MiB list / verify |\n|---|---|---|---|---|\n")
	for _, p := range r.listPairs {
		fmt.Fprintf(&b, "| `%s` | %s | %s | **%s** | %d / %d |\n", cell(p.mbtool.name), p.mbtool.time().Format("%.2f"),
			p.baseline.time().Format("%.2f"), p.ratio().Format("%.2f"), p.mbtool.maxRSSMiB(), p.baseline.maxRSSMiB())
	}
	for _, w := range r.listWarnings() {
		b.WriteString("\n**Warning:** " + w + "\n")
	}
	return b.String()
}

// listWarnings say where list misses its targets, and the usual spread
// cautions.
func (r *report) listWarnings() []string {
	var out []string
	var ms []*measurement
	for _, p := range r.listPairs {
		if p.ratio().Med < 1 {
			out = append(out, fmt.Sprintf("`%s` is slower than `mbtool verify` (median ratio %.2f)", p.mbtool.name, p.ratio().Med))
		}
		if r.cfg.messages >= 100_000 && p.mbtool.maxRSSMiB() >= listBudgetMiB {
			out = append(out, fmt.Sprintf("`%s` peaked at %d MiB, over the %d MiB budget", p.mbtool.name, p.mbtool.maxRSSMiB(), listBudgetMiB))
		}
		ms = append(ms, p.mbtool)
	}
	if len(r.listPairs) > 0 {
		ms = append(ms, r.listPairs[0].baseline)
	}
	return append(out, spreadWarnings(r.cfg.pairs, ms, func(*measurement) bool { return false })...)
}
