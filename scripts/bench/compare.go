package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mbtool/mbtool/fixtures/gen"
)

// command is one timed command: prepare (untimed, may be nil) runs first
// and returns the shell script to time.
type command struct {
	m       *measurement
	prepare func() (string, error)
}

func fixed(s string) func() (string, error) { return func() (string, error) { return s, nil } }

// group is commands that are timed in the same rounds: the baselines and
// the mbtool command they are compared with (last).
type group struct {
	cmds  []command
	warm  bool // read-only commands: run each once, untimed, first
	fixed bool // the order may not flip (each command needs the one before)
}

// storeCPU, when set, returns the CPU seconds (user + system) an object
// store running beside the timed commands has used so far: runGroups
// records what each run cost it (the s3:// rows, where the store shares
// the machine with mbtool).
var storeCPU func() float64

// runGroups times every group rounds times. In round i every command of
// a group runs once, in the group's order when i is even and in reverse
// when i is odd, so that no command always comes first. A sync before
// each timed command keeps one command's writeback out of the next one's
// time. The read-only groups are warmed (each command run once, untimed)
// before the first round, and the first of them again after a group that
// writes: the first read of a partition after a restore and its
// sync was several times slower than the next one (docs/benchmarks.md),
// and that cost belongs to neither side of a pair.
func runGroups(work string, groups []group, rounds int) error {
	warm := func(g group) error {
		for _, c := range g.cmds {
			s, err := c.prepare()
			if err != nil {
				return err
			}
			if _, _, _, err := timed(work, s); err != nil {
				return err
			}
		}
		return nil
	}
	for _, g := range groups {
		if g.warm {
			if err := warm(g); err != nil {
				return err
			}
		}
	}
	wrote := false // whether a group that writes ran since the last warm-up
	for i := 0; i < rounds; i++ {
		for _, g := range groups {
			if g.warm && wrote {
				if err := sh(work, "sync"); err != nil {
					return err
				}
				if err := warm(g); err != nil {
					return err
				}
				wrote = false
			}
			if !g.warm {
				wrote = true
			}
			for k := range g.cmds {
				c := g.cmds[k]
				if i%2 == 1 && !g.fixed {
					c = g.cmds[len(g.cmds)-1-k]
				}
				s, err := c.prepare()
				if err != nil {
					return err
				}
				if err := sh(work, "sync"); err != nil {
					return err
				}
				var store0 float64
				if storeCPU != nil {
					store0 = storeCPU()
				}
				sec, rss, cpu, err := timed(work, s)
				if err != nil {
					return err
				}
				c.m.add(sec, rss)
				c.m.cpu = append(c.m.cpu, cpu)
				if storeCPU != nil {
					c.m.store = append(c.m.store, storeCPU()-store0)
					fmt.Fprintf(os.Stderr, "round %d %-24s %7.2fs %6d MiB %7.2fs CPU %7.2fs store CPU\n", i+1, c.m.name, sec, rss/1024, cpu, c.m.store[len(c.m.store)-1])
					continue
				}
				fmt.Fprintf(os.Stderr, "round %d %-24s %7.2fs %6d MiB %7.2fs CPU\n", i+1, c.m.name, sec, rss/1024, cpu)
			}
		}
	}
	return nil
}

// untarInto is "tar -xf" of tarFile (a copy of p) into a fresh
// directory, then sync.
func untarInto(tg *targets, p *partitionInfo, tarFile string) func() (string, error) {
	return func() (string, error) {
		target := tg.next(targetBytes(p))
		return fmt.Sprintf("mkdir -p %s && tar -xf %s -C %s && sync", q(target), q(tarFile), q(target)), nil
	}
}

// restoreInto is mbtool restore of dumpFile (of p) into a fresh empty
// partition, then sync.
func restoreInto(bin string, tg *targets, p *partitionInfo, dumpFile string) func() (string, error) {
	return func() (string, error) {
		target := tg.next(targetBytes(p))
		conf, err := gen.EmptyPartition(target)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s restore -C %s -q %s && sync", q(bin), q(conf), q(dumpFile)), nil
	}
}

// compare measures every pair on the generated partition.
func (r *report) compare(bin, limit string) error {
	p := r.part
	work := r.cfg.dir
	dumpFile := filepath.Join(work, "dump.dlist")
	tarFile := filepath.Join(work, "partition.tar")
	// The directories dump reads, and restore and tar -xf write: the
	// configuration directory and the partition.
	dirs := fmt.Sprintf("-C %s config spool", q(p.dir))
	if err := sh(work, fmt.Sprintf("%s dump -C %s --all -q -o %s", q(bin), q(p.conf), q(dumpFile))); err != nil {
		return err
	}
	if err := sh(work, fmt.Sprintf("tar -cf %s %s", q(tarFile), dirs)); err != nil {
		return err
	}
	defer os.Remove(tarFile)
	fi, err := os.Stat(dumpFile)
	if err != nil {
		return err
	}
	r.dumpBytes = fi.Size()

	m := func(name string) *measurement { return &measurement{name: name} }
	tarCat, dump := m("tar -cf - | cat"), m("mbtool dump | cat")
	// mbtool compresses with klauspost/compress's SpeedDefault, which its
	// documentation calls roughly zstd's level 3, with an 8 MiB window
	// (dumpfile.NewWriter); zstd -3 alone would use a 2 MiB window on
	// this input, and find less to match (larger output, different work).
	// Both outputs go through cat, as in the dump pair: on a loaded
	// machine mbtool dump writing straight to /dev/null took 1.5 to 3
	// times the wall time of dump | cat, at the same CPU time.
	tarZstd, dumpZ := m("tar -cf - | zstd -3, 8 MiB window"), m("mbtool dump --compress zstd")
	sha1sum, b3sum, sha1lim, verify := m("sha1sum"), m("b3sum"), m("sha1limit (all cores)"), m("mbtool verify")
	untar, restore := m("tar -xf + sync"), m("mbtool restore + sync")
	groups := []group{
		{warm: true, cmds: []command{
			{tarCat, fixed(fmt.Sprintf("tar -cf - %s | cat > /dev/null", dirs))},
			{dump, fixed(fmt.Sprintf("%s dump -C %s --all -q -o - | cat > /dev/null", q(bin), q(p.conf)))},
		}},
		{warm: true, cmds: []command{
			{tarZstd, fixed(fmt.Sprintf("tar -cf - %s | zstd -3 --zstd=wlog=23 -q -c | cat > /dev/null", dirs))},
			{dumpZ, fixed(fmt.Sprintf("%s dump -C %s --all -q --compress zstd -o - | cat > /dev/null", q(bin), q(p.conf)))},
		}},
		{warm: true, cmds: []command{
			{sha1sum, fixed("sha1sum " + q(dumpFile) + " > /dev/null")},
			{b3sum, fixed("b3sum " + q(dumpFile) + " > /dev/null")},
			{sha1lim, fixed(q(limit) + " " + q(dumpFile) + " > /dev/null")},
			{verify, fixed(fmt.Sprintf("%s verify %s > /dev/null", q(bin), q(dumpFile)))},
		}},
		{cmds: []command{
			{untar, untarInto(r.cfg.targets, p, tarFile)},
			{restore, restoreInto(bin, r.cfg.targets, p, dumpFile)},
		}},
	}
	lgroups, lpairs := listPairs(bin, dumpFile, r.dumpBytes)
	if err := runGroups(work, append(groups, lgroups...), r.cfg.pairs); err != nil {
		return err
	}
	r.listBytes, r.listPairs = r.dumpBytes, lpairs
	tree := "files under config/ and spool/"
	r.pairs = []pair{
		{"dump", dump, tarCat, p.treeBytes, tree},
		{"dump, zstd", dumpZ, tarZstd, p.treeBytes, tree},
		{"verify", verify, sha1sum, r.dumpBytes, "dump file"},
		{"verify", verify, b3sum, r.dumpBytes, "dump file"},
		{"verify", verify, sha1lim, r.dumpBytes, "dump file"},
		{"restore", restore, untar, p.treeBytes, tree},
	}
	return nil
}
