package main

import "github.com/mbtool/mbtool/internal/benchstat"

// measurement is one command's timed runs, in the order they ran.
type measurement struct {
	name   string
	secs   []float64
	rssKiB []int64
}

func (m *measurement) add(secs float64, rssKiB int64) {
	m.secs = append(m.secs, secs)
	m.rssKiB = append(m.rssKiB, rssKiB)
}

func (m *measurement) time() benchstat.Summary { return benchstat.Summarize(m.secs) }

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

func (p pair) ratio() benchstat.Summary {
	return benchstat.Summarize(benchstat.Ratios(p.baseline.secs, p.mbtool.secs))
}

func mbps(bytes int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(bytes) / secs / 1e6
}
