package main

import (
	"fmt"

	"github.com/mbtool/mbtool/internal/benchstat"
)

// measurement is one command's timed runs, in the order they ran.
type measurement struct {
	name   string
	secs   []float64
	rssKiB []int64
	cpu    []float64 // user + system seconds, where measured
	store  []float64 // the object store's user + system seconds during each run, where measured
}

func (m *measurement) add(secs float64, rssKiB int64) {
	m.secs = append(m.secs, secs)
	m.rssKiB = append(m.rssKiB, rssKiB)
}

func (m *measurement) time() benchstat.Summary { return benchstat.Summarize(m.secs) }

// cpuTime is the median CPU time (user + system) of the runs; 0 when not
// measured.
func (m *measurement) cpuTime() float64 {
	if len(m.cpu) == 0 {
		return 0
	}
	return benchstat.Summarize(m.cpu).Med
}

// storeCPUTime is the median CPU time the object store spent during the
// runs; 0 when not measured.
func (m *measurement) storeCPUTime() float64 {
	if len(m.store) == 0 {
		return 0
	}
	return benchstat.Summarize(m.store).Med
}

func (m *measurement) maxRSSMiB() int64 {
	var r int64
	for _, v := range m.rssKiB {
		r = max(r, v)
	}
	return r / 1024
}

// pair is an mbtool command next to a baseline that does the same work,
// timed alternately: run i of one and run i of the other ran in the same
// round, in an order that flips every round. Its ratio is the baseline's
// time over mbtool's, round by round (above 1: mbtool is faster).
type pair struct {
	what     string
	mbtool   *measurement
	baseline *measurement
	bytes    int64  // the bytes both read, for throughputs
	of       string // what those bytes are
}

func (p pair) ratio() benchstat.Summary { return ratioOf(p.mbtool, p.baseline) }

// ratioOf is the baseline's time over mbtool's, round by round.
func ratioOf(mbtool, baseline *measurement) benchstat.Summary {
	return benchstat.Summarize(benchstat.Ratios(baseline.secs, mbtool.secs))
}

// perUnitRelative compares the time per unit (message, mailbox) of two
// sizes: z's time per unit over a's, as the ratio of the medians and the
// widest range the runs allow. 1.00x is linear in the units.
func perUnitRelative(a, z *measurement, na, nz int64) string {
	return perUnitRelativeOf(a.time(), z.time(), na, nz)
}

// perUnitRelativeCPU is perUnitRelative of the runs' CPU times (user +
// system): what grows with the work done, not with the waiting (a tree
// larger than the page cache read from disk).
func perUnitRelativeCPU(a, z *measurement, na, nz int64) string {
	if len(a.cpu) == 0 || len(z.cpu) == 0 {
		return "not measured"
	}
	ca, cz := benchstat.Summarize(a.cpu), benchstat.Summarize(z.cpu)
	if ca.Min <= 0 || cz.Min <= 0 {
		return "not measurable (a run took less CPU than the timer counts, 0.01 s)"
	}
	return perUnitRelativeOf(ca, cz, na, nz)
}

func perUnitRelativeOf(ta, tz benchstat.Summary, na, nz int64) string {
	fa, fz := 1/float64(na), 1/float64(nz)
	return fmt.Sprintf("%.2fx (%.2f–%.2f)", tz.Med*fz/(ta.Med*fa), tz.Min*fz/(ta.Max*fa), tz.Max*fz/(ta.Min*fa))
}

// spreadWarnings are the report's cautions about its own figures: too few
// rounds, and every measurement (each once) whose times spread more than
// benchstat.MaxSpread of their median. baseline says which are baselines.
func spreadWarnings(rounds int, ms []*measurement, baseline func(*measurement) bool) []string {
	var w []string
	if rounds < minPairs {
		w = append(w, fmt.Sprintf("only %d round(s): a spread needs at least %d; do not publish these figures.", rounds, minPairs))
	}
	seen := map[*measurement]bool{}
	for _, m := range ms {
		if seen[m] {
			continue
		}
		seen[m] = true
		if s := m.time(); s.Noisy() {
			role := "mbtool command"
			if baseline(m) {
				role = "baseline"
			}
			w = append(w, fmt.Sprintf("the %s `%s` spread %.0f%% of its median (more than %.0f%%): the machine was not quiet; its ratios say little, rerun.",
				role, m.name, s.Spread()*100, benchstat.MaxSpread*100))
		}
	}
	return w
}

func mbps(bytes int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(bytes) / secs / 1e6
}
