package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/lock"
)

// staleSpool unpacks the sample spool and gives alice a seen db with one
// stale record (her own INBOX), one for shared.team (kept) and an orphan.
// It returns the imapd.conf and the seen db's path.
func staleSpool(t *testing.T) (string, string) {
	t.Helper()
	conf := fixtures.UnpackT(t)
	seen := plantSeen(t, conf, "alice", [][2]string{
		{"a93hfw3kcinqp73puc2chx3z", "1 1795882100 3 1795882100 1"},
		{"uogf5eg8sbfzoqkxm3hd8yd6", "1 0 36 0 1:36"},
		{"zzzz", "1 0 1 0 1"},
	})
	return conf, seen
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The file system of the undo file is full: nothing is removed, no undo
// file is left, exit 1.
func faultSeenCleanupDiskFull(t *testing.T) []faultRow {
	conf, seen := staleSpool(t)
	before := fileSum(t, seen)
	full := filepath.Join(t.TempDir(), "full")
	mountTmpfs(t, full, 64<<10)
	// Fill it up.
	f, err := os.Create(filepath.Join(full, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	f.Close()
	undo := filepath.Join(full, "undo.dlist")
	code, stderr := runMbtool(t, procOptions{}, "seen-cleanup", "-C", conf, "--user", "alice", "--delete", "--undo-file", undo)
	said := errSaid(stderr)
	if code != ExitFailure || !strings.Contains(said, "no space left on device") {
		t.Errorf("undo file on a full disk: exit %d, stderr:\n%s", code, stderr)
	}
	if fileSum(t, seen) != before {
		t.Error("seen db changed")
	}
	if _, err := os.Stat(undo); !os.IsNotExist(err) {
		t.Errorf("undo file left: %v", err)
	}
	return []faultRow{{
		Fault:   "the undo file's file system is full",
		Command: "mbtool seen-cleanup --user alice --delete --undo-file $OUT/undo.dlist",
		Exit:    code, Said: sanitize(said, map[string]string{full: "$OUT", filepath.Dir(conf): "$SPOOL"}),
		State: "seen db unchanged, no undo file left",
	}}
}

// SIGINT or SIGTERM while seen-cleanup --delete waits for a seen db that
// Cyrus holds locked: exit 130 at once, the seen db unchanged, no undo
// file left.
func faultSeenCleanupSignal(t *testing.T) []faultRow {
	conf, seen := staleSpool(t)
	before := fileSum(t, seen)
	var rows []faultRow
	for _, sg := range dumpSignals {
		held, err := lock.OpenLocked(seen, os.O_RDWR, true)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		undo := filepath.Join(out, "undo.dlist")
		p := startMbtool(t, procOptions{}, "seen-cleanup", "-C", conf, "--user", "alice", "--delete", "--undo-file", undo)
		p.until("opening the seen db", func() bool { return hasOpen(p.cmd.Process.Pid, filepath.Base(seen)) })
		time.Sleep(20 * time.Millisecond) // now waiting for the lock
		p.signal(sg.sig)
		code, stderr := p.wait(procTimeout)
		held.Close()
		if code != ExitInterrupted || strings.TrimSpace(stderr) != "mbtool: interrupted" {
			t.Errorf("%s: exit %d, stderr:\n%s", sg.name, code, stderr)
		}
		if fileSum(t, seen) != before {
			t.Errorf("%s: seen db changed", sg.name)
		}
		if left := leftovers(t, out, "undo"); len(left) > 0 {
			t.Errorf("%s: left %v", sg.name, left)
		}
		rows = append(rows, faultRow{
			Fault:   sg.name + " while seen-cleanup --delete waits for a seen db that Cyrus holds locked",
			Command: "mbtool seen-cleanup --user alice --delete --undo-file $OUT/undo.dlist",
			Exit:    code, Said: strings.TrimSpace(stderr),
			State: "seen db unchanged, no undo file left",
		})
	}
	return rows
}

// Two seen-cleanup --delete runs on the same user at once (both waiting
// for the seen db Cyrus holds): both succeed, the stale record is removed
// once, the others kept.
func faultSeenCleanupConcurrent(t *testing.T) []faultRow {
	conf, seen := staleSpool(t)
	held, err := lock.OpenLocked(seen, os.O_RDWR, true)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var ps []*proc
	for _, name := range []string{"undo1.dlist", "undo2.dlist"} {
		ps = append(ps, startMbtool(t, procOptions{}, "seen-cleanup", "-C", conf, "--user", "alice", "--delete", "--undo-file", filepath.Join(out, name)))
	}
	for _, p := range ps {
		p.until("opening the seen db", func() bool { return hasOpen(p.cmd.Process.Pid, filepath.Base(seen)) })
	}
	held.Close()
	var codes []int
	for _, p := range ps {
		code, stderr := p.wait(time.Minute)
		codes = append(codes, code)
		if code != ExitOK {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	}
	// Left: the shared.team record and the orphan; the stale one is gone.
	code, stdout, _ := run(t, "seen-cleanup", "-C", conf, "--user", "alice", "--prune-orphans")
	if code != ExitOK || !strings.Contains(stdout, "1 seen dbs, 2 records: 0 stale, 1 orphan") {
		t.Errorf("afterwards: exit %d\n%s", code, stdout)
	}
	return []faultRow{{
		Fault:   "two seen-cleanup --delete runs on the same user at once",
		Command: "mbtool seen-cleanup --user alice --delete (twice)",
		Exit:    max(codes[0], codes[1]),
		State:   "both waited for the lock; the stale record removed once, the others kept",
	}}
}
