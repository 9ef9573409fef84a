package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
)

// pair is an mbtool command and its baseline, with the ratio an issue aims
// at (baseline time / mbtool time; above 1 is faster than the baseline).
type pair struct {
	what      string
	mbtool    *measurement
	baseline  *measurement
	aim       float64
	aimRSSMiB int64
}

type report struct {
	cfg     config
	part    *partitionInfo
	pairs   []pair
	extra   []pair
	scaling []scalingPoint
	started time.Time
}

// compare measures every pair, alternating the commands of each run.
func (r *report) compare(bin string) error {
	r.started = time.Now()
	p := r.part
	work := r.cfg.dir
	dumpFile := filepath.Join(work, "dump.dlist")
	tarFile := filepath.Join(work, "spool.tar")
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	if err := sh(work, fmt.Sprintf("%s dump -C %s --all -q -o %s", q(bin), q(p.conf), q(dumpFile))); err != nil {
		return err
	}
	if err := sh(work, fmt.Sprintf("tar -cf %s -C %s -T %s", q(tarFile), q(p.spool), q(p.files))); err != nil {
		return err
	}
	target := filepath.Join(work, "target")
	freshTarget := func() (string, error) {
		os.RemoveAll(target)
		return gen.EmptyPartition(target)
	}

	type cmd struct {
		m      *measurement
		script func() (string, error)
	}
	fixed := func(s string) func() (string, error) { return func() (string, error) { return s, nil } }
	m := func(name string) *measurement { return &measurement{name: name} }
	tarCat, dump := m("tar -cf - | cat"), m("mbtool dump")
	tarZstd, dumpZ := m("tar -cf - | zstd -1"), m("mbtool dump (zstd)")
	sha1sum, b3sum, verify := m("sha1sum"), m("b3sum"), m("mbtool verify")
	untar, restore := m("tar -xf + sync"), m("mbtool restore")
	cmds := []cmd{
		{tarCat, fixed(fmt.Sprintf("tar -cf - -C %s -T %s | cat > /dev/null", q(p.spool), q(p.files)))},
		{dump, fixed(fmt.Sprintf("%s dump -C %s --all -q -o - > /dev/null", q(bin), q(p.conf)))},
		{tarZstd, fixed(fmt.Sprintf("tar -cf - -C %s -T %s | zstd -1 -q -c > /dev/null", q(p.spool), q(p.files)))},
		{dumpZ, fixed(fmt.Sprintf("%s dump -C %s --all -q --compress zstd -o - > /dev/null", q(bin), q(p.conf)))},
		{sha1sum, fixed(fmt.Sprintf("cd %s && xargs -d '\\n' -a %s sha1sum > /dev/null", q(p.spool), q(p.files)))},
		{b3sum, fixed(fmt.Sprintf("cd %s && xargs -d '\\n' -a %s b3sum > /dev/null", q(p.spool), q(p.files)))},
		{verify, fixed(fmt.Sprintf("%s verify %s > /dev/null", q(bin), q(dumpFile)))},
		{untar, func() (string, error) {
			os.RemoveAll(target)
			return fmt.Sprintf("mkdir -p %s && tar -xf %s -C %s && sync", q(target), q(tarFile), q(target)), nil
		}},
		{restore, func() (string, error) {
			conf, err := freshTarget()
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s restore -C %s -q %s && sync", q(bin), q(conf), q(dumpFile)), nil
		}},
	}
	// Warm the page cache once, then alternate.
	for _, c := range cmds[:7] {
		s, _ := c.script()
		if _, _, err := timed(work, s); err != nil {
			return err
		}
	}
	for run := 0; run < r.cfg.runs; run++ {
		for _, c := range cmds {
			s, err := c.script()
			if err != nil {
				return err
			}
			sec, rss, err := timed(work, s)
			if err != nil {
				return err
			}
			c.m.secs = append(c.m.secs, sec)
			c.m.rssKiB = append(c.m.rssKiB, rss)
			fmt.Fprintf(os.Stderr, "run %d %-22s %7.2fs %6d MiB\n", run+1, c.m.name, sec, rss/1024)
		}
	}
	os.RemoveAll(target)
	os.Remove(tarFile)
	r.pairs = []pair{
		{"dump (re-hashing every file)", dump, tarCat, 1.0, 64},
		{"dump to zstd", dumpZ, tarZstd, 0, 64},
		{"verify", verify, sha1sum, 1.5, 64},
		{"restore", restore, untar, 0.8, 64},
	}
	r.extra = []pair{{"verify", verify, b3sum, 0, 64}}
	return nil
}
