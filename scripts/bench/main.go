// Command bench measures mbtool next to the tools an operator would
// otherwise use, on a generated Cyrus partition, in one run:
//
//	go run ./scripts/bench            # 100,000 messages, about 1 GB
//	go run ./scripts/bench -small     # 5,000 messages, for a quick look
//	go run ./scripts/bench -scaling   # also 10k/100k/1M small messages
//
// It builds mbtool, generates the partition (fixtures/gen, written through
// mbtool's restore code), then alternates each mbtool command with its
// baseline several times on a warm page cache: dump against
// "tar -cf - | cat", dump to zstd against "tar -cf - | zstd -1", verify
// against sha1sum and b3sum over the message files, restore against
// "tar -xf" plus sync. It records wall time (median) and peak RSS
// (/usr/bin/time) of every command, prints a table of throughputs and
// ratios, and writes docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/partition"
)

type config struct {
	dir      string
	out      string
	messages int
	runs     int
	small    bool
	scaling  bool
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "/var/tmp/mbtool-bench", "work directory (needs about 4x the partition size free)")
	flag.StringVar(&c.out, "out", "docs/benchmarks.md", "report to write")
	flag.IntVar(&c.messages, "messages", 100_000, "messages in the generated partition")
	flag.IntVar(&c.runs, "runs", 3, "runs of each command (the median is reported)")
	flag.BoolVar(&c.small, "small", false, "5,000 messages, 2 runs: a quick check (CI)")
	flag.BoolVar(&c.scaling, "scaling", false, "also run the scaling series (10k, 100k, 1M small messages)")
	flag.Parse()
	if c.small {
		c.messages, c.runs = 5_000, 2
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// measurement is one command's runs.
type measurement struct {
	name   string
	secs   []float64
	rssKiB []int64
}

func (m *measurement) median() float64 { return median(m.secs) }

func (m *measurement) maxRSS() int64 {
	var r int64
	for _, v := range m.rssKiB {
		r = max(r, v)
	}
	return r
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var timeRe = regexp.MustCompile(`(?m)^BENCH ([0-9.]+) ([0-9]+)$`)

// timed runs a shell command under /usr/bin/time and returns its wall time
// and the peak RSS of the largest process it waited for.
func timed(dir, script string) (float64, int64, error) {
	cmd := exec.Command("/usr/bin/time", "-f", "BENCH %e %M", "sh", "-c", script)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start).Seconds()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %v\n%s", script, err, out)
	}
	m := timeRe.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("%s: no /usr/bin/time output in %q", script, out)
	}
	rss, _ := strconv.ParseInt(string(m[2]), 10, 64)
	return wall, rss, nil
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

// partitionInfo is a generated partition ready to be measured.
type partitionInfo struct {
	dir, conf, spool string
	files            string // file listing the message files, relative to spool
	messages, bytes  int64
	mailboxes, users int
}

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
	p.spool = filepath.Join(dir, "spool")
	var list strings.Builder
	msgName := regexp.MustCompile(`^[0-9]+\.$`)
	err := filepath.WalkDir(p.spool, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !msgName.MatchString(d.Name()) {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.spool, path)
		list.WriteString(rel + "\n")
		p.messages++
		p.bytes += info.Size()
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.files = filepath.Join(dir, "files.txt")
	if err := os.WriteFile(p.files, []byte(list.String()), 0o644); err != nil {
		return nil, err
	}
	// What the partition holds, as mbtool's reader sees it.
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
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(c.dir, "mbtool")
	if err := sh(".", "go build -o "+bin+" ."); err != nil {
		return err
	}
	p, err := generate(ctx, filepath.Join(c.dir, fmt.Sprintf("src-%d", c.messages)), gen.Options{Seed: 1, Messages: c.messages})
	if err != nil {
		return err
	}
	rep := &report{cfg: c, part: p}
	if err := rep.compare(bin); err != nil {
		return err
	}
	if c.scaling {
		for _, n := range []int{10_000, 100_000, 1_000_000} {
			sp, err := generate(ctx, filepath.Join(c.dir, fmt.Sprintf("scale-%d", n)),
				gen.Options{Seed: 2, Messages: n, SmallOnly: true, MeanSize: 2_000})
			if err != nil {
				return err
			}
			pt, err := scalePoint(bin, c.dir, sp, c.runs)
			if err != nil {
				return err
			}
			rep.scaling = append(rep.scaling, pt)
		}
	}
	fmt.Print(rep.table())
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(rep.markdown()), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", c.out)
	}
	_ = runtime.NumCPU
	return nil
}
