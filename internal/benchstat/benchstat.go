// Package benchstat holds what mbtool's benchmarks share: the summary of
// a sample of timings (minimum, median, maximum, spread), the machine they
// ran on, and the generated sections of a Markdown report, so that the
// benchmark script (scripts/bench) and the opt-in protocol benchmark
// (remote.TestServerThroughput) report figures the same way and rewrite
// only their own part of a document.
package benchstat

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
)

// MaxSpread is the spread (max-min over the median) of a baseline's times
// above which a report warns that the machine was not quiet enough for
// its ratios to mean much.
const MaxSpread = 0.20

// Summary is the minimum, median and maximum of a sample of N values.
type Summary struct {
	N             int
	Min, Med, Max float64
}

// Summarize summarizes v (the zero Summary when v is empty).
func Summarize(v []float64) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{N: len(s), Min: s[0], Med: med, Max: s[len(s)-1]}
}

// Spread is (max-min)/median: 0.2 means the values varied by 20% of
// their median.
func (s Summary) Spread() float64 {
	if s.Med == 0 {
		return 0
	}
	return (s.Max - s.Min) / s.Med
}

// Noisy reports whether the spread exceeds MaxSpread.
func (s Summary) Noisy() bool { return s.Spread() > MaxSpread }

// Within reports whether x lies in [Min, Max].
func (s Summary) Within(x float64) bool { return x >= s.Min && x <= s.Max }

// Format prints "median (min–max)", each with verb ("%.2f").
func (s Summary) Format(verb string) string {
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.Med, s.Min, s.Max)
}

// Scale returns the summary with every value multiplied by k (seconds to
// microseconds per message, say).
func (s Summary) Scale(k float64) Summary {
	return Summary{N: s.N, Min: s.Min * k, Med: s.Med * k, Max: s.Max * k}
}

// Ratios returns num[i]/den[i] for the runs both have (a baseline's time
// over mbtool's, run by run).
func Ratios(num, den []float64) []float64 {
	n := min(len(num), len(den))
	r := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if den[i] > 0 {
			r = append(r, num[i]/den[i])
		}
	}
	return r
}

// Machine describes the host: CPU model, cores Go sees, OS, Go version.
func Machine() string {
	return fmt.Sprintf("%s, %d cores (%s, %s)", CPUModel(), runtime.NumCPU(), runtime.GOOS, runtime.Version())
}

// CPUModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// Markers returns the comment lines that enclose a generated section.
func Markers(name string) (begin, end string) {
	return "<!-- begin generated: " + name + " -->\n", "<!-- end generated: " + name + " -->\n"
}

// ReplaceSection returns doc with the section name (between its markers)
// replaced by body; a section not in doc is appended. Everything outside
// the markers is kept as it was, so prose around a generated table can be
// edited by hand.
func ReplaceSection(doc []byte, name, body string) []byte {
	begin, end := Markers(name)
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	i := bytes.Index(doc, []byte(begin))
	j := bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		var b bytes.Buffer
		b.Write(doc)
		if len(doc) > 0 && !bytes.HasSuffix(doc, []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteString(begin + body + end)
		return b.Bytes()
	}
	var b bytes.Buffer
	b.Write(doc[:i+len(begin)])
	b.WriteString(body)
	b.Write(doc[j:])
	return b.Bytes()
}

// Section returns the body of section name in doc, and whether it is
// there.
func Section(doc []byte, name string) (string, bool) {
	begin, end := Markers(name)
	i := bytes.Index(doc, []byte(begin))
	j := bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		return "", false
	}
	return string(doc[i+len(begin) : j]), true
}

// UpdateFile replaces section name of the file at path (created when
// missing) with body.
func UpdateFile(path, name, body string) error {
	doc, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, ReplaceSection(doc, name, body), 0o644)
}

// LiveHeap returns the bytes of heap still reachable after a collection:
// what a test measures of a run's memory at a point of it, free of the
// garbage that peak RSS also counts.
func LiveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
