package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// scalingPoint is dump, verify and restore of one partition size.
type scalingPoint struct {
	messages, bytes       int64
	dump, verify, restore *measurement
}

// scalePoint times dump, verify and restore of the partition runs times
// each, after a warm-up dump, one after the other in every round.
func scalePoint(bin, work string, tg *targets, p *partitionInfo, runs int) (scalingPoint, error) {
	pt := scalingPoint{messages: p.messages, bytes: p.bytes,
		dump: &measurement{name: "dump"}, verify: &measurement{name: "verify"}, restore: &measurement{name: "restore"}}
	dumpFile := filepath.Join(work, "scale.dlist")
	defer os.Remove(dumpFile)
	g := group{fixed: true, cmds: []command{
		{pt.dump, fixed(fmt.Sprintf("%s dump -C %s --all -q -o %s", q(bin), q(p.conf), q(dumpFile)))},
		{pt.verify, fixed(fmt.Sprintf("%s verify %s > /dev/null", q(bin), q(dumpFile)))},
		{pt.restore, restoreInto(bin, tg, p, dumpFile)},
	}}
	// The warm-up dump also writes the file verify and restore read; the
	// order stays dump, verify, restore in every round (each needs the
	// one before), so these are not alternated.
	if _, _, _, err := timed(work, fmt.Sprintf("%s dump -C %s --all -q -o %s", q(bin), q(p.conf), q(dumpFile))); err != nil {
		return pt, err
	}
	return pt, runGroups(work, []group{g}, runs)
}
