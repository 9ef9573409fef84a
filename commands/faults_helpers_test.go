package commands

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
)

// The fault tests run mbtool as a real process: the copy of this test
// binary that TestMain (testscript.Main) puts in $PATH as "mbtool" runs
// commands.Main, exactly what main.go runs, so signals, exit codes and the
// streams are those of the built binary without a second compile.

// mbtoolPath returns the mbtool executable TestMain set up.
func mbtoolPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("mbtool")
	if err != nil {
		t.Fatalf("no mbtool in $PATH (TestMain sets it up): %v", err)
	}
	return p
}

// proc is a running mbtool.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout bytes.Buffer // unless the test took the pipe
	stderr bytes.Buffer
	done   chan struct{}
	code   int
}

// procOptions say how to start mbtool.
type procOptions struct {
	stdin  io.Reader // nil: empty
	stdout io.Writer // nil: collected in proc.stdout
	dir    string
	cred   *syscall.Credential // run as another user
	env    []string            // added to the environment
}

// startMbtool starts mbtool with args. The process is killed if the test
// ends first.
func startMbtool(t testing.TB, o procOptions, args ...string) *proc {
	t.Helper()
	return startExe(t, mbtoolPath(t), o, args...)
}

func startExe(t testing.TB, exe string, o procOptions, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Dir = o.dir
	if o.env != nil {
		p.cmd.Env = append(os.Environ(), o.env...)
	}
	p.cmd.Stdin = o.stdin
	if p.cmd.Stdin == nil {
		p.cmd.Stdin = strings.NewReader("")
	}
	p.cmd.Stdout = o.stdout
	if o.stdout == nil {
		p.cmd.Stdout = &p.stdout
	}
	p.cmd.Stderr = &p.stderr
	if o.cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
	}
	// A signal this process ignores (the test may run in a background job)
	// would be ignored by mbtool too, as Unix wants: catch SIGINT and
	// SIGTERM while starting it, so that mbtool starts with the default
	// action, as from an interactive shell.
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, syscall.SIGINT, syscall.SIGTERM)
	err := p.cmd.Start()
	signal.Stop(caught)
	if err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = exitCode(p.cmd.ProcessState, err)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exitCode is what a shell would show: the exit status, or 128+signal.
func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling mbtool: %v", err)
	}
}

// running reports whether the process is still running.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits for the process to end, at most timeout, and returns its exit
// code and standard error.
func (p *proc) wait(timeout time.Duration) (int, string) {
	p.t.Helper()
	if p.running() {
		select {
		case <-p.done:
		case <-time.After(timeout):
		}
	}
	if p.running() {
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("mbtool %v still running after %v; killed. stderr:\n%s", p.cmd.Args[1:], timeout, p.stderr.String())
	}
	return p.code, p.stderr.String()
}

// runMbtool runs mbtool to the end.
func runMbtool(t testing.TB, o procOptions, args ...string) (int, string) {
	t.Helper()
	return startMbtool(t, o, args...).wait(2 * time.Minute)
}

// procTimeout bounds how long a test waits for mbtool to reach a state (or
// to end) that it reaches in a second on a quiet machine: far longer than
// a loaded one needs (CI's 2 cores with every package testing at once,
// fsync and syncfs behind other tests' writes), so that it only turns a
// hang into a failure, never a slow run.
const procTimeout = 5 * time.Minute

// until polls cond every few milliseconds until it holds. If mbtool ends
// first, or procTimeout passes, the test fails at once, saying what it
// waited for, with mbtool's exit code and standard error.
func (p *proc) until(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(procTimeout)
	for !cond() {
		if !p.running() {
			p.t.Fatalf("mbtool %v ended (exit %d) before %s; stderr:\n%s", p.cmd.Args[1:], p.code, what, p.stderr.String())
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			<-p.done
			p.t.Fatalf("mbtool %v: not %s after %v; killed. stderr:\n%s", p.cmd.Args[1:], what, procTimeout, p.stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// blockedOn reports whether the process is asleep in the kernel function
// whose name contains fn (from /proc/PID/task/*/wchan; Go threads that are
// parked say futex_wait_queue or similar and are ignored).
func blockedOn(pid int, fn string) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
	for _, w := range tasks {
		b, _ := os.ReadFile(w)
		if strings.Contains(string(b), fn) {
			return true
		}
	}
	return false
}

// hasOpen reports whether process pid has a file open whose path ends in
// suffix (a lock file it is waiting for, say).
func hasOpen(pid int, suffix string) bool {
	fds, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasSuffix(l, suffix) {
			return true
		}
	}
	return false
}

// treeSum is a checksum listing of a directory tree: one line per entry,
// "path mode size sha256" (sha256 of content for files, of the target for
// symlinks), sorted. Two equal listings mean the tree was not changed.
func treeSum(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := "-"
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			sum = hex.EncodeToString(h[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			sum = "-> " + l
		}
		size := fi.Size()
		if fi.IsDir() {
			size = 0
		}
		lines = append(lines, fmt.Sprintf("%s %v %d %s", rel, fi.Mode(), size, sum))
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// spoolSum lists a target's configdirectory and partition (not its run/
// directory, where lock files may appear).
func spoolSum(t testing.TB, dir string) string {
	t.Helper()
	return treeSum(t, filepath.Join(dir, "config")) + "\n--\n" + treeSum(t, filepath.Join(dir, "spool"))
}

// diffLines reports the first lines in which two listings differ.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	am := map[string]bool{}
	for _, l := range al {
		am[l] = true
	}
	bm := map[string]bool{}
	for _, l := range bl {
		bm[l] = true
	}
	var out []string
	for _, l := range al {
		if !bm[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !am[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... %d more", len(out)-10))
	}
	return strings.Join(out, "\n")
}

// leftovers lists the files in dir whose names contain one of the parts
// (temporary dump files, staging directories), recursively.
func leftovers(t testing.TB, dir string, parts ...string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		for _, part := range parts {
			if strings.Contains(d.Name(), part) {
				found = append(found, p)
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
		}
		return nil
	})
	return found
}

// mountTmpfs mounts a tmpfs of size bytes on dir (created), unmounted when
// the test ends; it skips the test, saying why, when mounting fails (not
// root, or no CAP_SYS_ADMIN in a container).
func mountTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): needs root with CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
}

// firstLine returns the first line of stderr that starts with prefix
// ("mbtool: error:", "mbtool: warning:"), or "".
func firstLine(stderr, prefix string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// lines returns the lines of stderr that start with prefix.
func linesWith(stderr, prefix string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

var tmpName = regexp.MustCompile(`\.tmp-[0-9]+|\.mbtool-restore\.[0-9]+|seen-undo-[0-9TZ]+`)

// sanitize makes a message deterministic for the reliability table: the
// test's directories become placeholders and random temporary names lose
// their random part.
func sanitize(s string, dirs map[string]string) string {
	keys := make([]string, 0, len(dirs))
	for d := range dirs {
		keys = append(keys, d)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, d := range keys {
		s = strings.ReplaceAll(s, d, dirs[d])
	}
	s = tmpName.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.LastIndexAny(m, ".-")
		return m[:i+1] + "*"
	})
	return s
}

// openSpool opens the Cyrus spool of an imapd.conf.
func openSpool(t testing.TB, conf string) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dumpCounts reads a dump and returns its trailer, or the error that stops
// a reader.
func dumpCounts(r io.Reader) (*dumpfile.Trailer, []string, error) {
	d, err := dumpfile.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	var boxes []string
	for {
		_, name, _, err := d.Next()
		if err == io.EOF {
			return d.Trailer(), boxes, nil
		}
		if err != nil {
			return nil, boxes, err
		}
		if name == "MAILBOX" {
			v, err := d.DL().ReadValue()
			if err != nil {
				return nil, boxes, err
			}
			boxes = append(boxes, v.Get("MBOXNAME").String())
		}
	}
}

// mailboxesOf returns the names in a spool's mailboxes.db.
func mailboxesOf(t testing.TB, conf string) []string {
	t.Helper()
	s := openSpool(t, conf)
	es, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	return names
}

// checkSpool opens every mailbox of a spool as Cyrus would and checks that
// each index record's message file is there with the bytes of its GUID:
// the target is consistent. It returns the number of mailboxes.
func checkSpool(t testing.TB, conf string) int {
	t.Helper()
	s := openSpool(t, conf)
	es, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		m, err := s.OpenMailbox(context.Background(), e)
		if errors.Is(err, partition.ErrNoMailbox) {
			continue // not a real mailbox (a tombstone, a reservation)
		}
		if err != nil {
			t.Errorf("target inconsistent: %v", err)
			continue
		}
		n++
		err = m.Records(func(r partition.Record) error {
			if r.Unlinked() {
				return nil
			}
			f, err := m.OpenMessage(r)
			if errors.Is(err, fs.ErrNotExist) && r.Expunged() {
				return nil // delayed expunge: the file may go first
			}
			if err != nil {
				return fmt.Errorf("UID %d: %w", r.UID, err)
			}
			defer f.Close()
			if _, err := io.Copy(io.Discard, guidReader(f, r)); err != nil {
				return fmt.Errorf("UID %d: %w", r.UID, err)
			}
			return nil
		})
		m.Close()
		if err != nil {
			t.Errorf("target inconsistent: mailbox %s: %v", e.Name, err)
		}
	}
	return n
}

// guidReader checks a message file's bytes against its record.
func guidReader(f io.Reader, r partition.Record) io.Reader {
	return guid.NewReader(f, r.GUID, int64(r.Size))
}

// errSaid returns the error line of stderr, followed by its hint line if
// there is one.
func errSaid(stderr string) string {
	s := firstLine(stderr, "mbtool: error:")
	if h := firstLine(stderr, "mbtool: hint:"); h != "" {
		s += " / " + h
	}
	return s
}

// verifyFindings runs mbtool verify --json on a dump and returns its exit
// code, its standard error and the findings it printed on standard
// output.
func verifyFindings(t *testing.T, dump string) (int, string, []map[string]any) {
	t.Helper()
	p := startMbtool(t, procOptions{}, "verify", "-q", "--json", dump)
	code, stderr := p.wait(2 * time.Minute)
	// --json prints one summary object: the count of findings and the
	// first of them (docs/json.md).
	var found []map[string]any
	if out := p.stdout.String(); out != "" {
		for _, o := range jsonLines(t, out) {
			list, _ := o["first_findings"].([]any)
			for _, f := range list {
				if m, ok := f.(map[string]any); ok {
					found = append(found, m)
				}
			}
			if n, ok := o["findings"].(float64); ok && int(n) != len(list) {
				t.Errorf("verify %s: summary counts %v findings, lists %d", dump, n, len(list))
			}
		}
	}
	if m := regexp.MustCompile(`: (\d+) finding\(s\)`).FindStringSubmatch(stderr); m != nil && m[1] != strconv.Itoa(len(found)) {
		t.Errorf("verify %s says %s finding(s), printed %d", dump, m[1], len(found))
	}
	return code, stderr, found
}

// describeFindings says how many findings of which kinds were printed:
// "2 findings on standard output (damage: 2)".
func describeFindings(found []map[string]any) string {
	if len(found) == 0 {
		return "no finding on standard output"
	}
	kinds := map[string]int{}
	for _, f := range found {
		kinds[fmt.Sprint(f["kind"])]++
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s: %d", k, kinds[k]))
	}
	return fmt.Sprintf("%d finding(s) on standard output, as many as the error counts (%s)", len(found), strings.Join(parts, ", "))
}
