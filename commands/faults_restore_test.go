package commands

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/zeebo/blake3"
)

// sampleDump dumps users of the bundled sample spool into dir/name with
// mbtool itself and returns its path.
func sampleDump(t *testing.T, dir, name string, users ...string) string {
	t.Helper()
	conf := fixtures.UnpackT(t)
	out := filepath.Join(dir, name)
	args := []string{"dump", "-C", conf, "-q", "-o", out}
	for _, u := range users {
		args = append(args, "--user", u)
	}
	if code, stderr := runMbtool(t, procOptions{}, args...); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	normalizeDump(t, out)
	return out
}

// fixedHeader replaces a dump's header line so that offsets in messages
// do not depend on the host name, the time or the mbtool version.
const fixedHeader = "MBTOOL HEADER %(FORMAT 1 CREATED 1795877546 HOST mail.example.org MBTOOL devel)\r\n"

// normalizeDump gives the dump at path the fixed header and the trailer
// digest that goes with it.
func normalizeDump(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	eol := bytes.Index(data, []byte("\r\n"))
	tr := bytes.LastIndex(data, []byte("MBTOOL TRAILER %("))
	dg := bytes.LastIndex(data, []byte(" BLAKE3 "))
	if !bytes.HasPrefix(data, []byte("MBTOOL HEADER %(FORMAT 1 ")) || eol < 0 || tr < eol || dg < tr {
		t.Fatalf("%s: not a plain format 1 dump", path)
	}
	body := append([]byte(fixedHeader), data[eol+2:tr]...)
	sum := blake3.Sum256(body)
	out := append(append(body, data[tr:dg]...), fmt.Sprintf(" BLAKE3 %x)\r\n", sum)...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dumpCounts(bytes.NewReader(out)); err != nil {
		t.Fatalf("normalized dump: %v", err)
	}
}

// emptyTarget makes an empty Cyrus configuration and partition in dir.
func emptyTarget(t *testing.T, dir string) string {
	t.Helper()
	conf, err := gen.EmptyPartition(dir)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// checkTargetAfter checks what every failed or interrupted restore must
// leave: the listing unchanged (when before is not empty), no staging
// directory, every registered mailbox whole. It returns the state text.
func checkTargetAfter(t *testing.T, what, dir, conf, before string) string {
	t.Helper()
	state := ""
	if before != "" {
		if after := spoolSum(t, dir); after != before {
			t.Errorf("%s: target changed:\n%s", what, diffLines(before, after))
		}
		state = "target byte for byte as before (checksum listing of config/ and spool/)"
	}
	if left := leftovers(t, dir, ".mbtool-restore."); len(left) > 0 {
		t.Errorf("%s: staging left: %v", what, left)
	}
	n := checkSpool(t, conf)
	if state != "" {
		state += ", "
	}
	return state + "no staging directory left, " + strconv.Itoa(n) + " mailbox(es) registered, each whole"
}

// The target partition's file system fills up while restore stages the
// dump: a clear error, exit 1, the target as it was.
func faultRestoreDiskFull(t *testing.T) []faultRow {
	dumps := t.TempDir()
	bob := sampleDump(t, dumps, "bob.dlist", "bob")
	alice := sampleDump(t, dumps, "alice.dlist", "alice")
	dir := filepath.Join(t.TempDir(), "target")
	mountTmpfs(t, dir, 1<<20)
	conf := emptyTarget(t, dir)
	if code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", bob); code != ExitOK {
		t.Fatalf("restoring bob: exit %d\n%s", code, stderr)
	}
	before := spoolSum(t, dir)
	code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", alice)
	said := errSaid(stderr)
	if code != ExitFailure || !strings.Contains(said, "no space left on device") {
		t.Errorf("restore onto a full disk: exit %d, stderr:\n%s", code, stderr)
	}
	state := checkTargetAfter(t, "restore onto a full disk", dir, conf, before)
	rows := []faultRow{{
		Fault:   "target file system full (1 MiB tmpfs holding bob's mailbox) while restoring alice's 2.3 MB dump",
		Command: "mbtool restore $OUT/alice.dlist",
		Exit:    code, Said: sanitize(said, map[string]string{dir: "$SPOOL", dumps: "$OUT"}),
		State: state,
	}}
	return append(rows, restoreConfigFull(t, dumps, bob, alice)...)
}

// The configdirectory (mailboxes.db, quota, seen dbs) is full when restore
// registers the mailboxes it staged: exit 1, nothing half-registered, and
// a run once there is space completes.
func restoreConfigFull(t *testing.T, dumps, bob, alice string) []faultRow {
	dir := filepath.Join(t.TempDir(), "target")
	config := filepath.Join(dir, "config")
	mountTmpfs(t, config, 256<<10)
	conf := emptyTarget(t, dir)
	if code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", bob); code != ExitOK {
		t.Fatalf("restoring bob: exit %d\n%s", code, stderr)
	}
	filler := filepath.Join(config, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	f.Close()
	beforeConfig := treeSum(t, config)
	code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", alice)
	said := errSaid(stderr)
	if code != ExitFailure || !strings.Contains(said, "no space left on device") {
		t.Errorf("restore with a full configdirectory: exit %d, stderr:\n%s", code, stderr)
	}
	configState := "configdirectory as before"
	if after := treeSum(t, config); after != beforeConfig {
		configState = "configdirectory: " + describeChanges(beforeConfig, after)
		if strings.Contains(configState, "mailboxes.db") {
			t.Errorf("mailboxes.db changed:\n%s", diffLines(beforeConfig, after))
		}
	}
	state := checkTargetAfter(t, "full configdirectory", dir, conf, "")
	state += ", " + strconv.Itoa(len(unregistered(t, conf))) + " unregistered mailbox directories (invisible to Cyrus, replaced by the next run)"
	if got := mailboxesOf(t, conf); !slices.Equal(got, []string{"user.bob"}) {
		t.Errorf("after a full configdirectory: mailboxes %v", got)
	}
	rows := []faultRow{{
		Fault:   "target configdirectory full when restore registers alice's mailboxes (staged, checked, renamed into place)",
		Command: "mbtool restore $OUT/alice.dlist",
		Exit:    code, Said: sanitize(said, map[string]string{dir: "$SPOOL", dumps: "$OUT"}),
		State: configState + "; " + state,
	}}
	os.Remove(filler)
	code, stderr = runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", alice)
	if code != ExitOK {
		t.Errorf("restore once there is space: exit %d, stderr:\n%s", code, stderr)
	}
	return append(rows, faultRow{
		Fault:   "the same restore once there is space again",
		Command: "mbtool restore $OUT/alice.dlist",
		Exit:    code, Said: firstLine(stderr, "mbtool: "),
		State: checkTargetAfter(t, "after space", dir, conf, "") + ", " +
			strconv.Itoa(len(unregistered(t, conf))) + " unregistered mailbox directories",
	})
}

// unregistered lists the mailbox directories (those holding a
// cyrus.header) in a target's partition that no mailboxes.db entry names,
// staging directories aside.
func unregistered(t *testing.T, conf string) []string {
	t.Helper()
	s := openSpool(t, conf)
	es, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, e := range es {
		if d, _, err := s.Dirs(e); err == nil {
			known[filepath.Clean(d)] = true
		}
	}
	var out []string
	for _, root := range s.Config.Partitions {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".mbtool-restore.") {
				return filepath.SkipDir
			}
			if d.Name() == "cyrus.header" && !known[filepath.Dir(p)] {
				out = append(out, filepath.Dir(p))
			}
			return nil
		})
	}
	return out
}

// Damaged dumps (cut short, as a full disk or a broken transfer leaves
// them; a flipped bit in a message): restore refuses them whole and verify
// reports them.
func faultRestoreDamagedDump(t *testing.T) []faultRow {
	dumps := t.TempDir()
	alice := sampleDump(t, dumps, "alice.dlist", "alice")
	data, err := os.ReadFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dumps, "cut.dlist")
	os.WriteFile(cut, data[:len(data)/2], 0o600)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x20
	flip := filepath.Join(dumps, "flipped.dlist")
	os.WriteFile(flip, flipped, 0o600)

	dir := t.TempDir()
	conf := emptyTarget(t, dir)
	before := spoolSum(t, dir)
	dirs := map[string]string{dir: "$SPOOL", dumps: "$OUT"}
	var rows []faultRow
	for _, tc := range []struct{ fault, file string }{
		{"a dump cut off in the middle (disk full or broken transfer when it was copied)", cut},
		{"a dump with one bit flipped inside a message", flip},
	} {
		code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", tc.file)
		said := errSaid(stderr)
		if code != ExitFailure || said == "" {
			t.Errorf("restore %s: exit %d, stderr:\n%s", tc.file, code, stderr)
		}
		rows = append(rows, faultRow{
			Fault: tc.fault, Command: "mbtool restore $OUT/" + filepath.Base(tc.file),
			Exit: code, Said: sanitize(said, dirs),
			State: checkTargetAfter(t, "restore "+tc.file, dir, conf, before),
		})
		code, stderr, found := verifyFindings(t, tc.file)
		said = errSaid(stderr)
		if code != ExitFailure || len(found) == 0 {
			t.Errorf("verify %s: exit %d, %d finding(s) on stdout, stderr:\n%s", tc.file, code, len(found), stderr)
		}
		rows = append(rows, faultRow{
			Fault: tc.fault, Command: "mbtool verify $OUT/" + filepath.Base(tc.file),
			Exit: code, Said: sanitize(said, dirs),
			State: describeFindings(found),
		})
	}
	return rows
}

// A dump written by a newer mbtool (format 2): refused before anything is
// read, saying which format it found.
func faultRestoreNewerFormat(t *testing.T) []faultRow {
	dumps := t.TempDir()
	bob := sampleDump(t, dumps, "bob.dlist", "bob")
	data, err := os.ReadFile(bob)
	if err != nil {
		t.Fatal(err)
	}
	newer := bytes.Replace(data, []byte("MBTOOL HEADER %(FORMAT 1 "), []byte("MBTOOL HEADER %(FORMAT 2 "), 1)
	if bytes.Equal(newer, data) {
		t.Fatal("no FORMAT 1 in the header")
	}
	f2 := filepath.Join(dumps, "format2.dlist")
	os.WriteFile(f2, newer, 0o600)
	dir := t.TempDir()
	conf := emptyTarget(t, dir)
	before := spoolSum(t, dir)
	dirs := map[string]string{dir: "$SPOOL", dumps: "$OUT"}

	code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", f2)
	said := errSaid(stderr)
	if code == ExitOK || code == ExitInterrupted || !strings.Contains(said, "format 2") {
		t.Errorf("restore of a format 2 dump: exit %d, stderr:\n%s", code, stderr)
	}
	rows := []faultRow{{
		Fault:   "a dump of a newer format (header FORMAT 2)",
		Command: "mbtool restore $OUT/format2.dlist",
		Exit:    code, Said: sanitize(said, dirs),
		State: checkTargetAfter(t, "restore format 2", dir, conf, before),
	}}
	code, stderr, found := verifyFindings(t, f2)
	said = errSaid(stderr)
	if code != ExitUsage || !strings.Contains(said, "format 2") || len(found) != 0 {
		t.Errorf("verify of a format 2 dump: exit %d, %d finding(s), stderr:\n%s", code, len(found), stderr)
	}
	rows = append(rows, faultRow{
		Fault:   "a dump of a newer format (header FORMAT 2)",
		Command: "mbtool verify $OUT/format2.dlist",
		Exit:    code, Said: sanitize(said, dirs),
		State: "nothing checked: " + describeFindings(found),
	})
	return rows
}

// feedHalf starts restore or verify reading the dump from a pipe, writes
// the first half, and returns the process and a function that starts
// writing the rest, slowly, and closes the pipe at the end. The channel
// that function returns says, once the writing stopped, whether all of
// the rest was written (false: mbtool closed the pipe first).
func feedHalf(t *testing.T, data []byte, args ...string) (*proc, func() <-chan bool) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startMbtool(t, procOptions{stdin: r}, args...)
	r.Close()
	t.Cleanup(func() { w.Close() })
	if _, err := w.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	// The rest goes slowly (8 KiB every 10 ms, more than a second for
	// the sample dumps), so that mbtool, once signalled, cannot finish
	// reading before it notices, however loaded the machine.
	rest := func() <-chan bool {
		all := make(chan bool, 1)
		go func() {
			defer w.Close()
			for b := data[len(data)/2:]; len(b) > 0; {
				n := min(len(b), 8<<10)
				if _, err := w.Write(b[:n]); err != nil {
					all <- false // EPIPE once mbtool is gone
					return
				}
				b = b[n:]
				time.Sleep(10 * time.Millisecond)
			}
			all <- true
		}()
		return all
	}
	return p, rest
}

// SIGINT or SIGTERM while restore reads the dump (phase one: staging):
// exit 130, the target as it was, the staging directory removed.
func faultRestoreSignalReading(t *testing.T) []faultRow {
	dumps := t.TempDir()
	bob := sampleDump(t, dumps, "bob.dlist", "bob")
	alice := sampleDump(t, dumps, "alice.dlist", "alice")
	data, err := os.ReadFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := emptyTarget(t, dir)
	if code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", bob); code != ExitOK {
		t.Fatalf("restoring bob: exit %d\n%s", code, stderr)
	}
	before := spoolSum(t, dir)
	var rows []faultRow
	for _, sg := range dumpSignals {
		p, rest := feedHalf(t, data, "restore", "-C", conf, "-q", "-")
		p.until("staging", func() bool { return len(leftovers(t, filepath.Join(dir, "spool"), ".mbtool-restore.")) > 0 })
		p.signal(sg.sig)
		rest()
		code, stderr := p.wait(procTimeout)
		if code != ExitInterrupted || strings.TrimSpace(stderr) != "mbtool: interrupted" {
			t.Errorf("%s: exit %d, stderr:\n%s", sg.name, code, stderr)
		}
		rows = append(rows, faultRow{
			Fault:   sg.name + " while restore reads and stages the dump (half of it sent through a pipe)",
			Command: "mbtool restore - < alice.dlist",
			Exit:    code, Said: strings.TrimSpace(stderr),
			State: checkTargetAfter(t, sg.name, dir, conf, before),
		})
	}
	rows = append(rows, stalledPipe(t, data, "restore", "restore -C "+conf+" -q -", "", func() string {
		return checkTargetAfter(t, "stalled pipe", dir, conf, before)
	})...)
	rows[len(rows)-1].Command = "mbtool restore -"
	return rows
}

// SIGTERM while restore installs mailboxes (phase two), waiting for a
// user's namespace lock that Cyrus holds: exit 130; the mailboxes already
// registered are whole, the others absent; a second run completes.
func faultRestoreSignalCommitting(t *testing.T) []faultRow {
	dumps := t.TempDir()
	both := sampleDump(t, dumps, "users.dlist", "bob", "alice")
	dir := t.TempDir()
	conf := emptyTarget(t, dir)
	s := openSpool(t, conf)
	l, err := s.LockNamespace(context.Background(), "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	p := startMbtool(t, procOptions{}, "restore", "-C", conf, "-q", both)
	p.until("waiting for alice's namespace lock", func() bool { return hasOpen(p.cmd.Process.Pid, "*U*alice.lock") })
	p.signal(syscall.SIGTERM)
	code, stderr := p.wait(procTimeout)
	l.Release()
	// What was committed before the stop is said, even with -q, as
	// restore --server says what it applied.
	said := tookRE.ReplaceAllString(strings.TrimSpace(stderr), " in …")
	if code != ExitInterrupted || !strings.HasPrefix(said, "mbtool: restored 1 mailboxes, ") ||
		!strings.HasSuffix(said, "\nmbtool: interrupted") {
		t.Errorf("SIGTERM: exit %d, stderr:\n%s", code, stderr)
	}
	state := checkTargetAfter(t, "SIGTERM in phase two", dir, conf, "")
	if got := mailboxesOf(t, conf); !slices.Equal(got, []string{"user.bob"}) {
		t.Errorf("after SIGTERM in phase two: mailboxes %v, want user.bob only", got)
	}
	rows := []faultRow{{
		Fault:   "SIGTERM while restore installs mailboxes (bob's done, waiting for alice's namespace lock held by Cyrus)",
		Command: "mbtool restore $OUT/users.dlist",
		Exit:    code, Said: said,
		State: state + " (bob's)",
	}}
	code, stderr = runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", both)
	if code != ExitOK {
		t.Errorf("second run: exit %d, stderr:\n%s", code, stderr)
	}
	rows = append(rows, faultRow{
		Fault:   "the same restore run again after that SIGTERM",
		Command: "mbtool restore $OUT/users.dlist",
		Exit:    code, Said: firstLine(stderr, "mbtool: "),
		State: checkTargetAfter(t, "second run", dir, conf, ""),
	})
	return rows
}

// Two restores of the same dump into the same target at once, both
// reaching phase two together (Cyrus holds the first user's namespace
// lock until both wait for it): one installs, the other finds each
// mailbox already there; nothing is corrupted.
func faultRestoreConcurrent(t *testing.T) []faultRow {
	dumps := t.TempDir()
	both := sampleDump(t, dumps, "users.dlist", "bob", "alice")
	dir := t.TempDir()
	conf := emptyTarget(t, dir)
	s := openSpool(t, conf)
	l, err := s.LockNamespace(context.Background(), "bob", true)
	if err != nil {
		t.Fatal(err)
	}
	p1 := startMbtool(t, procOptions{}, "restore", "-C", conf, both)
	p2 := startMbtool(t, procOptions{}, "restore", "-C", conf, both)
	for _, p := range []*proc{p1, p2} {
		p.until("waiting for bob's namespace lock", func() bool { return hasOpen(p.cmd.Process.Pid, "*U*bob.lock") })
	}
	l.Release()
	c1, e1 := p1.wait(procTimeout)
	c2, e2 := p2.wait(procTimeout)
	state := checkTargetAfter(t, "two restores", dir, conf, "")
	if n := len(mailboxesOf(t, conf)); n != 8 {
		t.Errorf("two restores: %d mailboxes, want 8", n)
	}
	// How the eight mailboxes split between the two runs is up to the
	// scheduler (each user's group is locked on its own); what is fixed:
	// each is created by one run and refused, with a warning, by the other.
	var created, refused int
	counts := regexp.MustCompile(`\((\d+) created, \d+ replaced, \d+ merged, (\d+) refused`)
	for _, e := range []string{e1, e2} {
		if m := counts.FindStringSubmatch(e); m != nil {
			c, _ := strconv.Atoi(m[1])
			r, _ := strconv.Atoi(m[2])
			created += c
			refused += r
		}
	}
	warn := firstLine(e1, "mbtool: warning:")
	if warn == "" {
		warn = firstLine(e2, "mbtool: warning:")
	}
	warn = regexp.MustCompile(`^mbtool: warning: [^:]+:`).ReplaceAllString(warn, "mbtool: warning: MAILBOX:")
	if created != 8 || refused != 8 || max(c1, c2) != ExitPartial || min(c1, c2) != ExitOK && min(c1, c2) != ExitPartial ||
		warn != "mbtool: warning: MAILBOX: created in the target meanwhile" {
		t.Errorf("two restores: exit %d and %d, %d created, %d refused\n%s\n%s", c1, c2, created, refused, e1, e2)
	}
	return []faultRow{{
		Fault:   "two restores of the same dump into the same target at once (both waiting for the same namespace lock)",
		Command: "mbtool restore $OUT/users.dlist (twice)",
		Exit:    max(c1, c2), Said: warn,
		State: "each of the 8 mailboxes created by one run and refused by the other (how they split varies); " + state,
	}}
}

// describeChanges says in words how a treeSum listing changed: "new empty
// annotations.db", "changed mailboxes.db", "removed x".
func describeChanges(before, after string) string {
	parse := func(s string) map[string][]string {
		m := map[string][]string{}
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) >= 4 {
				m[f[0]] = f[1:]
			}
		}
		return m
	}
	b, a := parse(before), parse(after)
	var out []string
	for name, f := range a {
		old, ok := b[name]
		switch {
		case !ok && f[1] == "0":
			out = append(out, "new empty "+name)
		case !ok:
			out = append(out, "new "+name)
		case !slices.Equal(old, f):
			out = append(out, "changed "+name)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			out = append(out, "removed "+name)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
