package main

// Peak memory of every command at a million messages (issue 16: every
// command under 64 MiB with 1,000,000 messages in the repository; issue
// 18: restore --server of the 1M-message dump too). It runs each command
// once on the scaling series' partition of small messages and reports
// /usr/bin/time's maximum resident set size of each mbtool process. Peak
// RSS does not depend on the machine's load, so this run may share the
// machine; it reports no times.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/benchstat"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

const sectionRSS = "bench rss"

// rssBudgetMiB is the issues' bound on every command's peak RSS.
const rssBudgetMiB = 64

// rssRow is one mbtool process measured.
type rssRow struct {
	command string // as the report shows it
	kib     int64
	what    string // the data it worked on
}

// rssRun measures every command's peak RSS at c.rssMessages messages and
// writes its section of c.out.
func rssRun(ctx context.Context, bin string, c config) error {
	started := time.Now()
	p, err := generate(ctx, filepath.Join(c.dir, fmt.Sprintf("scale-%d", c.rssMessages)), scaleOptions(c.rssMessages))
	if err != nil {
		return err
	}
	work := filepath.Join(c.dir, "rss")
	os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	m := &rssMeter{bin: bin, work: work, c: c, started: started, p: p}
	all := fmt.Sprintf("%d messages, %d mailboxes, %d users", p.messages, p.mailboxes, p.users)
	dumpFile := filepath.Join(work, "all.dlist")
	repoDir := filepath.Join(work, "repo")
	conf := q(p.conf)

	steps := []struct {
		command, what string
		script        func() (string, error) // {T} before each mbtool measured
	}{
		{"dump --all -o FILE", all, fixed("{T} dump -C " + conf + " --all -q -o " + q(dumpFile))},
		{"verify FILE", all, fixed("{T} verify " + q(dumpFile) + " >/dev/null")},
		{"list FILE", all, fixed("{T} list " + q(dumpFile) + " >/dev/null")},
		{"dump --repo DIR --all (night 1)", all, fixed("{T} dump -C " + conf + " --all -q --repo " + q(repoDir))},
	}
	for _, s := range steps {
		if err := m.run(s.command, s.what, s.script); err != nil {
			return err
		}
	}
	// Night 2 after a small change: 1% more messages, appended to the
	// users' existing mailboxes (restore --undelete of a generated dump
	// with another seed), so night 2 stores changed boxes as deltas. The
	// partition is changed: its stamp goes, and the next run generates it
	// again.
	os.Remove(filepath.Join(p.dir, "generated"))
	change := filepath.Join(work, "change.dlist")
	f, err := os.Create(change)
	if err != nil {
		return err
	}
	o := scaleOptions(max(int(p.messages)/100, 100))
	o.Seed = 3
	_, err = gen.WriteDump(f, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := sh(work, fmt.Sprintf("%s restore -C %s -q --undelete %s", q(bin), conf, q(change))); err != nil {
		return err
	}
	os.Remove(change)
	after, err := countTree(p.dir)
	if err != nil {
		return err
	}
	all2 := fmt.Sprintf("%d messages (%d new), %d mailboxes, %d users", after.messages, after.messages-p.messages, p.mailboxes, p.users)
	big, err := biggestUser(p.conf)
	if err != nil {
		return err
	}
	// Every restore writes a fresh target (targets.go): one removed just
	// before would slow the file system, not mbtool.
	empty := func() (string, error) {
		return gen.EmptyPartition(c.targets.next(targetBytes(p)))
	}
	into := func(script string) func() (string, error) {
		return func() (string, error) {
			tconf, err := empty()
			if err != nil {
				return "", err
			}
			return strings.ReplaceAll(script, "{C}", q(tconf)), nil
		}
	}
	repoAll := fmt.Sprintf("the repository: 2 snapshots of %s", all2)
	steps = []struct {
		command, what string
		script        func() (string, error)
	}{
		{"dump --repo DIR --all (night 2)", all2, fixed("{T} dump -C " + conf + " --all -q --repo " + q(repoDir))},
		{"list --repo DIR", repoAll, fixed("{T} list --repo " + q(repoDir) + " >/dev/null")},
		{"list --repo DIR --user USER", repoAll + "; user " + big.name, fixed("{T} list --repo " + q(repoDir) + " --user " + big.name + " >/dev/null")},
		{"verify --repo DIR", repoAll, fixed("{T} verify --repo " + q(repoDir) + " >/dev/null")},
		{"verify --repo DIR --read-data", repoAll, fixed("{T} verify --repo " + q(repoDir) + " --read-data >/dev/null")},
		{"restore --repo DIR --user USER (into an empty partition)", fmt.Sprintf("user %s: %d messages", big.name, big.messages),
			into("{T} restore -C {C} -q --repo " + q(repoDir) + " --user " + big.name + " && sync")},
		{"export --repo DIR -o - | restore - (every user, into an empty partition)", all2,
			into("{T} export --repo " + q(repoDir) + " -q -o - | {T} restore -C {C} -q - && sync")},
		{"prune --keep-last 1", repoAll, fixed("{T} prune --repo " + q(repoDir) + " --keep-last 1 -q")},
		{"restore FILE (into an empty partition)", all, into("{T} restore -C {C} -q " + q(dumpFile) + " && sync")},
	}
	for _, s := range steps {
		if err := m.run(s.command, s.what, s.script); err != nil {
			return err
		}
	}
	os.RemoveAll(repoDir)
	if err := m.restoreServer(dumpFile, all); err != nil {
		return err
	}

	m.done = true
	return publish(c.out, sectionRSS, m.section())
}

// scaleOptions is the scaling series' partition of n small messages.
func scaleOptions(n int) gen.Options {
	return gen.Options{Seed: 2, Messages: n, SmallOnly: true, MeanSize: 2_000}
}

type rssMeter struct {
	bin, work string
	rows      []rssRow
	// for the section, written after every row (a long run stopped
	// midway still leaves its figures) and once more at the end (done)
	c       config
	started time.Time
	p       *partitionInfo
	done    bool
}

// run runs the script script() gives, each {T} replaced by mbtool under
// /usr/bin/time, and records one row per mbtool process.
func (m *rssMeter) run(command, what string, script func() (string, error)) error {
	s, err := script()
	if err != nil {
		return err
	}
	n := strings.Count(s, "{T}")
	var files []string
	for i := 0; i < n; i++ {
		f := filepath.Join(m.work, fmt.Sprintf("rss-%d", i))
		os.Remove(f)
		files = append(files, f)
		s = strings.Replace(s, "{T}", "/usr/bin/time -f %M -o "+q(f)+" "+q(m.bin), 1)
	}
	fmt.Fprintf(os.Stderr, "rss: %s ...\n", command)
	cmd := exec.Command("bash", "-c", "set -o pipefail; "+s)
	cmd.Dir = m.work
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", s, err, out)
	}
	names := []string{command}
	if n > 1 {
		// A pipeline: one row per process, named by its mbtool command.
		names = nil
		for _, part := range strings.Split(command, " | ") {
			names = append(names, strings.TrimSpace(part))
		}
	}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			return fmt.Errorf("%s: no /usr/bin/time output", command)
		}
		kib, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: /usr/bin/time: %q", command, b)
		}
		name := command
		if i < len(names) {
			name = names[i]
		}
		m.rows = append(m.rows, rssRow{command: name, kib: kib, what: what})
		fmt.Fprintf(os.Stderr, "rss: %-60s %6.1f MiB\n", name, float64(kib)/1024)
	}
	if m.c.out != "" {
		return writeSection(m.c.out, sectionRSS, m.section())
	}
	return nil
}

// restoreServer replays the dump into a running Cyrus (a cyruslab with
// sync_server) with restore --server, and stops that Cyrus.
func (m *rssMeter) restoreServer(dumpFile, what string) error {
	if err := cyruslab.Available(); err != nil {
		fmt.Fprintf(os.Stderr, "rss: restore --server not measured: %v\n", err)
		return nil
	}
	dir := filepath.Join(m.work, "cyrus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lab, err := cyruslab.Create(dir, cyruslab.Options{SyncPort: true})
	if err != nil {
		return err
	}
	if err := lab.Launch(false); err != nil {
		return err
	}
	defer lab.Shutdown()
	os.Setenv("MBTOOL_PASSWORD", lab.Password)
	return m.run("restore --server HOST FILE (into a running Cyrus)", what,
		fixed(fmt.Sprintf("{T} restore -q --server %s --auth-user %s %s", lab.SyncAddr, lab.Admin, q(dumpFile))))
}

func (m *rssMeter) section() string {
	c, started, p := m.c, m.started, m.p
	var b strings.Builder
	title := fmt.Sprintf("%d messages", c.rssMessages)
	if c.rssMessages == 1_000_000 {
		title = "a million messages"
	}
	fmt.Fprintf(&b, "## Peak memory at %s\n\n", title)
	fmt.Fprintf(&b, "Measured by `%s` on %s, %s. ", c.args, benchstat.Machine(), started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "The partition of the scaling series (`fixtures/gen` seed 2, small messages only): %d message files (%.2f GB) in %d mailboxes of %d users. "+
		"Each command ran once; the figure is `/usr/bin/time`'s maximum resident set size of the mbtool process. "+
		"Night 2 follows 1%% more messages appended to the users' mailboxes (`restore --undelete` of a generated dump, seed 3). "+
		"The machine was shared with other work while this ran: peak RSS does not depend on that, times would, so none are reported. "+
		"The budget (issues 16 and 18) is %d MiB for every command.\n\n",
		p.messages, float64(p.bytes)/1e9, p.mailboxes, p.users, rssBudgetMiB)
	if !m.done {
		b.WriteString("**Incomplete:** the run was still going when this was written; below are the commands it had measured.\n\n")
	}
	b.WriteString("| command | peak RSS MiB | within 64 MiB | on |\n|---|---|---|---|\n")
	var over []string
	for _, r := range m.rows {
		mib := float64(r.kib) / 1024
		ok := "yes"
		if mib > rssBudgetMiB {
			ok = "**no**"
			over = append(over, fmt.Sprintf("`%s` (%.0f MiB)", r.command, mib))
		}
		fmt.Fprintf(&b, "| `%s` | %.0f | %s | %s |\n", cell(r.command), mib, ok, r.what)
	}
	if len(over) > 0 {
		fmt.Fprintf(&b, "\n**Over the budget:** %s.\n", strings.Join(over, ", "))
	}
	return b.String()
}

// treeCount is what a partition directory holds.
type treeCount struct {
	messages, bytes, treeBytes int64
}

// countTree counts the message files (and their bytes) under dir/spool
// and every file's bytes under dir/config and dir/spool.
func countTree(dir string) (treeCount, error) {
	var t treeCount
	for _, sub := range []string{"config", "spool"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			t.treeBytes += info.Size()
			if sub == "spool" && msgName.MatchString(d.Name()) {
				t.messages++
				t.bytes += info.Size()
			}
			return nil
		})
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

type userCount struct {
	name     string
	messages int
}

// biggestUser is the user whose mailboxes hold the most records.
func biggestUser(conf string) (userCount, error) {
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		return userCount{}, err
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		return userCount{}, err
	}
	users, err := spool.Users()
	if err != nil {
		return userCount{}, err
	}
	var counts []userCount
	for _, u := range users {
		boxes, err := spool.MailboxesUnder("user." + u)
		if err != nil {
			return userCount{}, err
		}
		n := 0
		for _, e := range boxes {
			data, _, err := spool.Dirs(e)
			if err != nil {
				return userCount{}, err
			}
			ds, err := os.ReadDir(data)
			if err != nil {
				return userCount{}, err
			}
			for _, d := range ds {
				if msgName.MatchString(d.Name()) {
					n++
				}
			}
		}
		counts = append(counts, userCount{u, n})
	}
	if len(counts) == 0 {
		return userCount{}, fmt.Errorf("%s: no users", conf)
	}
	sort.SliceStable(counts, func(i, j int) bool { return counts[i].messages > counts[j].messages })
	return counts[0], nil
}
