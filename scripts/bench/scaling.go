package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mbtool/mbtool/fixtures/gen"
)

// scalingPoint is dump, verify and restore of one partition size.
type scalingPoint struct {
	messages, bytes         int64
	dump, verify, restore   float64 // seconds, medians
	dumpRSS, verRSS, resRSS int64   // KiB, the largest of the runs
}

// scalePoint measures dump, verify and restore of the partition runs
// times each, after a warm-up dump, and keeps the medians: on a virtual
// machine's disk one run of a restore can take twice as long as the next.
func scalePoint(bin, work string, p *partitionInfo, runs int) (scalingPoint, error) {
	pt := scalingPoint{messages: p.messages, bytes: p.bytes}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	dumpFile := filepath.Join(work, "scale.dlist")
	defer os.Remove(dumpFile)
	target := filepath.Join(work, "scale-target")
	defer os.RemoveAll(target)
	dump := &measurement{name: "dump"}
	verify := &measurement{name: "verify"}
	restore := &measurement{name: "restore"}
	run := func(m *measurement, script string) error {
		secs, rss, err := timed(work, script)
		if err != nil {
			return err
		}
		m.secs = append(m.secs, secs)
		m.rssKiB = append(m.rssKiB, rss)
		return nil
	}
	dumpCmd := fmt.Sprintf("%s dump -C %s --all -q -o %s", q(bin), q(p.conf), q(dumpFile))
	if _, _, err := timed(work, dumpCmd); err != nil { // warm the page cache
		return pt, err
	}
	for i := 0; i < runs; i++ {
		if err := run(dump, dumpCmd); err != nil {
			return pt, err
		}
		if err := run(verify, fmt.Sprintf("%s verify %s > /dev/null", q(bin), q(dumpFile))); err != nil {
			return pt, err
		}
		os.RemoveAll(target)
		conf, err := gen.EmptyPartition(target)
		if err != nil {
			return pt, err
		}
		if err := sh(work, "sync"); err != nil {
			return pt, err
		}
		if err := run(restore, fmt.Sprintf("%s restore -C %s -q %s && sync", q(bin), q(conf), q(dumpFile))); err != nil {
			return pt, err
		}
	}
	pt.dump, pt.dumpRSS = dump.median(), dump.maxRSS()
	pt.verify, pt.verRSS = verify.median(), verify.maxRSS()
	pt.restore, pt.resRSS = restore.median(), restore.maxRSS()
	fmt.Fprintf(os.Stderr, "scaling %d messages: dump %.2fs verify %.2fs restore %.2fs (medians of %v, %v, %v)\n",
		pt.messages, pt.dump, pt.verify, pt.restore, dump.secs, verify.secs, restore.secs)
	return pt, nil
}
