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
	dump, verify, restore   float64 // seconds
	dumpRSS, verRSS, resRSS int64   // KiB
}

func scalePoint(bin, work string, p *partitionInfo) (scalingPoint, error) {
	pt := scalingPoint{messages: p.messages, bytes: p.bytes}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	dumpFile := filepath.Join(work, "scale.dlist")
	defer os.Remove(dumpFile)
	var err error
	// once to warm the cache, once measured
	for i := 0; i < 2; i++ {
		if pt.dump, pt.dumpRSS, err = timed(work, fmt.Sprintf("%s dump -C %s --all -q -o %s", q(bin), q(p.conf), q(dumpFile))); err != nil {
			return pt, err
		}
	}
	if pt.verify, pt.verRSS, err = timed(work, fmt.Sprintf("%s verify %s > /dev/null", q(bin), q(dumpFile))); err != nil {
		return pt, err
	}
	target := filepath.Join(work, "scale-target")
	os.RemoveAll(target)
	conf, err := gen.EmptyPartition(target)
	if err != nil {
		return pt, err
	}
	if pt.restore, pt.resRSS, err = timed(work, fmt.Sprintf("%s restore -C %s -q %s && sync", q(bin), q(conf), q(dumpFile))); err != nil {
		return pt, err
	}
	fmt.Fprintf(os.Stderr, "scaling %d messages: dump %.2fs verify %.2fs restore %.2fs\n", pt.messages, pt.dump, pt.verify, pt.restore)
	return pt, nil
}
