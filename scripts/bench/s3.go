package main

// The object-store pairs (-s3): the backup repository on a SeaweedFS
// store on loopback (internal/s3lab) next to the same repository in a
// directory, on the generated partition. Issue 17's bar: dump and restore
// through S3 at no less than 0.7x of the directory, peak RSS under 64 MiB
// (128 MiB with parallel uploads).

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/benchstat"
	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/s3store"
)

const sectionS3 = "bench s3"

// s3Pairs measures, in alternating rounds: dump --all into a fresh
// repository in a directory and under a fresh s3:// prefix (with one part
// in flight and with the default four), and restore of every user from
// each into a fresh partition, then sync.
func s3Pairs(bin string, c config, p *partitionInfo) (string, error) {
	started := time.Now()
	work := c.dir
	labDir := filepath.Join(work, "s3lab")
	os.RemoveAll(labDir)
	if err := os.MkdirAll(labDir, 0o700); err != nil {
		return "", err
	}
	defer os.RemoveAll(labDir)
	store, err := s3lab.LaunchMini(labDir, s3lab.Options{Bucket: "bench"})
	if err != nil {
		return "", err
	}
	defer store.Stop()
	storeCPU = func() float64 { return procCPU(store.Pid()) }
	defer func() { storeCPU = nil }()
	for _, kv := range store.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	cfg, err := partition.LoadConfig(p.conf)
	if err != nil {
		return "", err
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		return "", err
	}
	users, err := spool.Users()
	if err != nil {
		return "", err
	}
	dirRepo := filepath.Join(work, "repo-dir")
	defer os.RemoveAll(dirRepo)
	client, err := s3store.New(context.Background(), s3store.Options{})
	if err != nil {
		return "", err
	}
	// Each dump writes a new repository under "dump/"; what the one
	// before wrote there is deleted first (the store reclaims the space
	// when it next compacts its volumes: the work directory needs room
	// for several copies of the repository).
	fresh := func(kind string) string {
		err := client.List(context.Background(), store.Bucket, kind+"/", func(e s3store.Entry) error {
			return client.Delete(context.Background(), store.Bucket, e.Key)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: emptying the repository:", err)
		}
		return store.URL(kind)
	}
	dumpDir := func() (string, error) {
		os.RemoveAll(dirRepo)
		return fmt.Sprintf("%s dump -C %s --all -q --repo %s", q(bin), q(p.conf), q(dirRepo)), nil
	}
	dumpS3 := func(parallel int) func() (string, error) {
		return func() (string, error) {
			return fmt.Sprintf("%s dump -C %s --all -q --s3-parallel %d --repo %s", q(bin), q(p.conf), parallel, q(fresh("dump"))), nil
		}
	}
	// The repositories restored from, made once.
	s3Repo := store.URL("restore-from")
	if err := sh(work, fmt.Sprintf("%s dump -C %s --all -q --repo %s && %s dump -C %s --all -q --repo %s",
		q(bin), q(p.conf), q(dirRepo), q(bin), q(p.conf), q(s3Repo))); err != nil {
		return "", err
	}
	// Every restore writes a fresh target (targets.go).
	restoreFrom := func(repo string) func() (string, error) {
		return func() (string, error) {
			conf, err := gen.EmptyPartition(c.targets.next(targetBytes(p)))
			if err != nil {
				return "", err
			}
			var b strings.Builder
			for _, u := range users {
				fmt.Fprintf(&b, "%s restore -C %s -q --repo %s --user %s && ", q(bin), q(conf), q(repo), q(u))
			}
			return b.String() + "sync", nil
		}
	}
	modes := []pinning{{}}
	if c.s3Pin {
		if runtime.NumCPU() < 2 {
			return "", fmt.Errorf("-s3-pin needs at least 2 CPUs, this machine has %d", runtime.NumCPU())
		}
		if _, err := exec.LookPath("taskset"); err != nil {
			return "", fmt.Errorf("-s3-pin needs taskset (Debian: util-linux): %v", err)
		}
		modes = append(modes, pinning{mbtool: "0", store: "1"})
	}
	var b strings.Builder
	b.WriteString("## The repository on object storage\n\n")
	fmt.Fprintf(&b, "Measured by `%s` on %s, %s.\n\n", c.args, benchstat.Machine(), started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "The partition of the pairs above (%d message files, %.2f GB, %d users). The store is SeaweedFS `weed mini` "+
		"on loopback (internal/s3lab), with credentials; each dump writes a new repository (a fresh directory, a fresh prefix). "+
		"Each pair ran in %d alternating rounds; times in seconds, median (min–max); the ratio is the directory's time over the "+
		"object store's in the same round (the bar is 0.7); peak RSS the largest of the runs. CPU is the median of user + system "+
		"seconds per run: mbtool's (and the sync's), and in the s3:// rows also the store's, read from /proc before and after each run.\n\n", p.messages, float64(p.bytes)/1e9, p.users, c.pairs)
	for _, pin := range modes {
		// Everything ran on every core (the store competing with mbtool
		// in the s3:// rows only), else the store on one core and
		// mbtool on another in both rows.
		all := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
		storeCPUs := cmp.Or(pin.store, all)
		if c.s3Pin {
			if err := sh(work, fmt.Sprintf("taskset -a -p -c %s %d >/dev/null", storeCPUs, store.Pid())); err != nil {
				return "", err
			}
		}
		wrap := func(f func() (string, error)) func() (string, error) {
			if pin.mbtool == "" {
				return f
			}
			return func() (string, error) {
				s, err := f()
				return fmt.Sprintf("taskset -c %s sh -c %s", pin.mbtool, q(s)), err
			}
		}
		m := func(name string) *measurement { return &measurement{name: name + pin.suffix()} }
		dDir, dS3, dS3one := m("dump --repo DIR"), m("dump --repo s3://"), m("dump --repo s3:// --s3-parallel 1")
		rDir, rS3 := m("restore --repo DIR + sync"), m("restore --repo s3:// + sync")
		// The restores first: the directory repository they read is
		// remade by each dumpDir (the last one leaves it whole for the
		// next mode's restores).
		restoreGroup := group{cmds: []command{{rDir, wrap(restoreFrom(dirRepo))}, {rS3, wrap(restoreFrom(s3Repo))}}}
		if err := runGroups(work, []group{restoreGroup}, c.pairs); err != nil {
			return "", err
		}
		dumpGroups := []group{
			{cmds: []command{{dDir, wrap(dumpDir)}, {dS3, wrap(dumpS3(4))}}},
			{cmds: []command{{dDir, wrap(dumpDir)}, {dS3one, wrap(dumpS3(1))}}},
		}
		if err := runGroups(work, dumpGroups, c.pairs); err != nil {
			return "", err
		}
		pairs := []pair{
			{"dump --repo", dS3, dDir, p.treeBytes, "files under config/ and spool/"},
			{"dump --repo, one part in flight", dS3one, dDir, p.treeBytes, "files under config/ and spool/"},
			{"restore --repo", rS3, rDir, p.treeBytes, "files under config/ and spool/"},
		}
		if pin.mbtool == "" {
			fmt.Fprintf(&b, "### Unpinned: store and mbtool share all %d cores\n\n", runtime.NumCPU())
			b.WriteString("Every process may run on every core. In the s3:// rows SeaweedFS competes with mbtool for them; in the " +
				"directory rows nothing does. On a machine with few cores this charges the store's own work to mbtool: read it " +
				"as a lower bound of what a site whose store runs on other machines sees.\n\n")
		} else {
			fmt.Fprintf(&b, "### Pinned: SeaweedFS on CPU %s, mbtool on CPU %s, in both rows\n\n", pin.store, pin.mbtool)
			b.WriteString("`weed mini` (every thread) is pinned to one core and every timed command (mbtool, and the sync after " +
				"a restore) to another, in the directory rows as in the s3:// rows: mbtool has one core either way, and the store " +
				"has one of its own, as on a site where the store runs on other machines (but for loopback's latency, which is " +
				"lower than a network's).\n\n")
		}
		b.WriteString("| command | s3:// seconds | DIR seconds | ratio | peak RSS MiB s3:// / DIR | CPU s s3:// mbtool + store / DIR |\n|---|---|---|---|---|---|\n")
		for _, x := range pairs {
			fmt.Fprintf(&b, "| `%s` | %s | %s | **%s** | %d / %d | %.2f + %.2f / %.2f |\n", x.what, x.mbtool.time().Format("%.2f"), x.baseline.time().Format("%.2f"),
				x.ratio().Format("%.2f"), x.mbtool.maxRSSMiB(), x.baseline.maxRSSMiB(), x.mbtool.cpuTime(), x.mbtool.storeCPUTime(), x.baseline.cpuTime())
		}
		isDir := func(m *measurement) bool { return strings.Contains(m.name, "DIR") }
		for _, w := range spreadWarnings(c.pairs, []*measurement{dDir, dS3, dS3one, rDir, rS3}, isDir) {
			b.WriteString("\n**Warning:** " + w + "\n")
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// pinning says on which CPUs (taskset lists) mbtool and the store run;
// empty: anywhere.
type pinning struct{ mbtool, store string }

func (p pinning) suffix() string {
	if p.mbtool == "" {
		return ""
	}
	return " (pinned)"
}

// procCPU returns the user + system CPU seconds process pid has used
// (all its threads), from /proc/PID/stat; 0 when it cannot be read.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and
	// may hold spaces: state is the first, utime the 12th, stime the 13th.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100
