package main

// The mailbox axis: partitions of many small mailboxes (10 folders per
// user, a few messages each), where the cost that matters is per mailbox
// and per user, not per byte.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/benchstat"
)

const sectionMailboxes = "bench mailboxes"

// mailboxSizes are the partitions of the axis, in mailboxes (users x 10,
// plus one shared folder); 200,000 only on demand (-mailbox-max).
var mailboxSizes = []int{200, 2_000, 20_000, 200_000}

// mailboxPoint is one partition of the axis and its measurements.
type mailboxPoint struct {
	part                         *partitionInfo
	dump, tarCat, restore, untar *measurement
	against, seen                *measurement
	restoreRounds                int // rounds of the restore pair
}

// mailboxOptions is the generated content of a partition of n mailboxes:
// three small messages per mailbox on average.
func mailboxOptions(n int) gen.Options {
	return gen.Options{Seed: 3, Users: max(1, n/10), Messages: 3 * n, SmallOnly: true, MeanSize: 1_700}
}

// mailboxAxis measures every size up to c.mailboxMax, prints the table
// and updates its section of c.out.
func mailboxAxis(ctx context.Context, bin string, c config) error {
	started := time.Now()
	var pts []mailboxPoint
	for _, n := range mailboxSizes {
		if n > c.mailboxMax {
			break
		}
		p, err := generate(ctx, filepath.Join(c.dir, fmt.Sprintf("mailboxes-%d", n)), mailboxOptions(n))
		if err != nil {
			return err
		}
		pt, err := measureMailboxes(bin, c.dir, c.targets, p, c.pairs, restorePairs(c, n))
		if err != nil {
			return err
		}
		pts = append(pts, pt)
	}
	return publish(c.out, sectionMailboxes, mailboxSection(c, started, pts))
}

// restorePairs is the rounds of the restore pair on the partition of n
// mailboxes.
func restorePairs(c config, n int) int {
	if n > 20_000 && c.mailboxRestorePairs > 0 {
		return c.mailboxRestorePairs
	}
	return c.pairs
}

// measureMailboxes times, on one partition: dump against tar -cf | cat,
// verify --against and seen-cleanup --all (read-only, no baseline: their
// time per mailbox is the figure) in rounds rounds, then restore + sync
// against tar -xf + sync in restoreRounds (alternating).
func measureMailboxes(bin, work string, tg *targets, p *partitionInfo, rounds, restoreRounds int) (mailboxPoint, error) {
	m := func(name string) *measurement { return &measurement{name: name} }
	pt := mailboxPoint{part: p, dump: m("mbtool dump | cat"), tarCat: m("tar -cf - | cat"),
		restore: m("mbtool restore + sync"), untar: m("tar -xf + sync"),
		against: m("mbtool verify --against"), seen: m("mbtool seen-cleanup --all")}
	dirs := fmt.Sprintf("-C %s config spool", q(p.dir))
	dumpFile := filepath.Join(work, "mailboxes.dlist")
	tarFile := filepath.Join(work, "mailboxes.tar")
	defer os.Remove(dumpFile)
	defer os.Remove(tarFile)
	if err := sh(work, fmt.Sprintf("%s dump -C %s --all -q -o %s && tar -cf %s %s", q(bin), q(p.conf), q(dumpFile), q(tarFile), dirs)); err != nil {
		return pt, err
	}
	groups := []group{
		{warm: true, cmds: []command{
			{pt.tarCat, fixed(fmt.Sprintf("tar -cf - %s | cat > /dev/null", dirs))},
			{pt.dump, fixed(fmt.Sprintf("%s dump -C %s --all -q -o - | cat > /dev/null", q(bin), q(p.conf)))},
		}},
		{warm: true, cmds: []command{
			{pt.against, fixed(fmt.Sprintf("%s verify -q -C %s --against %s > /dev/null", q(bin), q(p.conf), q(dumpFile)))},
			{pt.seen, fixed(fmt.Sprintf("%s seen-cleanup -C %s --all > /dev/null", q(bin), q(p.conf)))},
		}},
	}
	if err := runGroups(work, groups, rounds); err != nil {
		return pt, err
	}
	pt.restoreRounds = restoreRounds
	return pt, runGroups(work, []group{{cmds: []command{
		{pt.untar, untarInto(tg, p, tarFile)},
		{pt.restore, restoreInto(bin, tg, p, dumpFile)},
	}}}, restoreRounds)
}

// perMailbox is a time summary in microseconds per mailbox.
func perMailbox(m *measurement, mailboxes int) benchstat.Summary {
	return m.time().Scale(1e6 / float64(mailboxes))
}

// mailboxSection is the generated section of docs/benchmarks.md.
func mailboxSection(c config, started time.Time, pts []mailboxPoint) string {
	var b strings.Builder
	b.WriteString("## Scaling with the number of mailboxes\n\n")
	fmt.Fprintf(&b, "Measured by `%s` on %s, %s.\n\n", c.args, benchstat.Machine(), started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Partitions of many small mailboxes (`fixtures/gen` seed 3: 10 folders per user and one shared folder, "+
		"3 small messages per mailbox on average), written through mbtool's restore. "+
		"Each pair ran in %d alternating rounds (the read-only ones after an untimed warm-up; restore after them); "+
		"times median (min–max); a ratio is the baseline's time over mbtool's in the same round (above 1, mbtool is faster); "+
		"peak RSS the largest of the runs.\n\n", c.pairs)
	b.WriteString("| mailboxes | users | messages | dump s | tar -cf s | ratio | restore s | tar -xf s | ratio |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, pt := range pts {
		p := pt.part
		fmt.Fprintf(&b, "| %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", p.mailboxes, p.users, p.messages,
			pt.dump.time().Format("%.2f"), pt.tarCat.time().Format("%.2f"), ratioOf(pt.dump, pt.tarCat).Format("%.2f"),
			pt.restore.time().Format("%.2f"), pt.untar.time().Format("%.2f"), ratioOf(pt.restore, pt.untar).Format("%.2f"))
	}
	b.WriteString("\nTime per mailbox in microseconds, median (min–max), and peak RSS in MiB:\n\n")
	b.WriteString("| mailboxes | dump µs | RSS | restore µs | RSS | verify --against µs | RSS | seen-cleanup --all µs | RSS |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, pt := range pts {
		n := pt.part.mailboxes
		fmt.Fprintf(&b, "| %d | %s | %d | %s | %d | %s | %d | %s | %d |\n", n,
			perMailbox(pt.dump, n).Format("%.0f"), pt.dump.maxRSSMiB(), perMailbox(pt.restore, n).Format("%.0f"), pt.restore.maxRSSMiB(),
			perMailbox(pt.against, n).Format("%.0f"), pt.against.maxRSSMiB(), perMailbox(pt.seen, n).Format("%.0f"), pt.seen.maxRSSMiB())
	}
	// Time per mailbox at each size relative to the one before: the
	// ratio of medians and the widest range the runs allow. Linear time
	// in mailboxes gives 1.
	relativeLines(&b, pts, perUnitRelative, func(rel func(a, z *measurement) string, a, z mailboxPoint) string {
		return fmt.Sprintf("Time per mailbox at %d mailboxes relative to %d: dump %s, restore %s, verify --against %s, seen-cleanup %s.\n",
			z.part.mailboxes, a.part.mailboxes, rel(a.dump, z.dump), rel(a.restore, z.restore), rel(a.against, z.against), rel(a.seen, z.seen))
	})
	// The same of the CPU times: where a partition outgrows the page
	// cache, its time per mailbox measures the disk too; its CPU time per
	// mailbox, the work, and the kernel's reclaim of the cache that the
	// reads pay (the baselines' CPU per mailbox shows how much).
	relativeLines(&b, pts, perUnitRelativeCPU, func(rel func(a, z *measurement) string, a, z mailboxPoint) string {
		return fmt.Sprintf("CPU time (user + system) per mailbox at %d mailboxes relative to %d: dump %s, restore %s, verify --against %s, seen-cleanup %s; the baselines `tar -cf - | cat` %s, `tar -xf` + `sync` %s.\n",
			z.part.mailboxes, a.part.mailboxes, rel(a.dump, z.dump), rel(a.restore, z.restore), rel(a.against, z.against), rel(a.seen, z.seen),
			rel(a.tarCat, z.tarCat), rel(a.untar, z.untar))
	})
	isTar := func(m *measurement) bool { return strings.HasPrefix(m.name, "tar ") }
	warn := spreadWarnings(c.pairs, nil, isTar)
	for _, pt := range pts {
		ms := []*measurement{pt.tarCat, pt.dump, pt.untar, pt.restore, pt.against, pt.seen}
		if pt.restoreRounds < c.pairs {
			ms = []*measurement{pt.tarCat, pt.dump, pt.against, pt.seen} // restore's spread says nothing
			warn = append(warn, fmt.Sprintf("at %d mailboxes, the restore pair ran in %d round(s) only (-mailbox-restore-pairs): its figures have no spread to judge them by",
				pt.part.mailboxes, pt.restoreRounds))
		}
		for _, w := range spreadWarnings(minPairs, ms, isTar) {
			warn = append(warn, fmt.Sprintf("at %d mailboxes, %s", pt.part.mailboxes, w))
		}
	}
	for _, w := range warn {
		b.WriteString("\n**Warning:** " + w + "\n")
	}
	return b.String()
}

// relativeLines writes, after a blank line, one line per size after the
// first, comparing it with the size before: line formats it, given how a
// measurement per mailbox compares between the two (of, e.g.
// perUnitRelative).
func relativeLines(b *strings.Builder, pts []mailboxPoint, of func(a, z *measurement, na, nz int64) string,
	line func(rel func(a, z *measurement) string, a, z mailboxPoint) string) {
	for i := 1; i < len(pts); i++ {
		a, z := pts[i-1], pts[i]
		rel := func(ma, mz *measurement) string {
			return of(ma, mz, int64(a.part.mailboxes), int64(z.part.mailboxes))
		}
		if i == 1 {
			b.WriteString("\n")
		}
		b.WriteString(line(rel, a, z))
	}
}
