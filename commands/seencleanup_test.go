package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/partition"
)

// plantSeen replaces user's seen db in the sample spool with one holding
// recs (key, value; in key order).
func plantSeen(t *testing.T, conf, user string, recs [][2]string) string {
	t.Helper()
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path, err := s.SeenPath(user)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	i := 0
	err = cyrusdb.WriteTwoskip(f, 1, func() ([]byte, []byte, bool) {
		if i == len(recs) {
			return nil, nil, false
		}
		i++
		return []byte(recs[i-1][0]), []byte(recs[i-1][1]), true
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSeenCleanupCommand(t *testing.T) {
	conf := fixtures.UnpackT(t)
	// alice's INBOX (stale), shared.team (kept), an orphan.
	plantSeen(t, conf, "alice", [][2]string{
		{"a93hfw3kcinqp73puc2chx3z", "1 1795882100 3 1795882100 1"},
		{"uogf5eg8sbfzoqkxm3hd8yd6", "1 0 36 0 1:36"},
		{"zzzz", "1 0 1 0 1"},
	})
	bob := plantSeen(t, conf, "bob", [][2]string{{"hrdxfloalc05p286ww592g56", "1 0 3 0 1:3"}})
	undo := filepath.Join(t.TempDir(), "undo.dlist")
	stale := "stale\talice\tuser.alice\tuogf5eg8sbfzoqkxm3hd8yd6\t1 0 36 0 1:36\n"
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr string   // substring
	}{
		{"no users", []string{"seen-cleanup", "-C", conf}, ExitUsage, nil, "no users selected"},
		{"argument", []string{"seen-cleanup", "-C", conf, "alice"}, ExitUsage, nil, "takes no arguments"},
		{"undo without delete", []string{"seen-cleanup", "-C", conf, "--all", "--undo-file", undo}, ExitUsage, nil, "only for --delete"},
		{"dry run", []string{"seen-cleanup", "-C", conf, "--all"}, ExitOK,
			[]string{stale, "orphan\talice\t-\tzzzz\t1 0 1 0 1\n", "summary: 2 seen dbs, 4 records: 2 stale, 1 orphan; 2 would be removed"}, ""},
		{"dry run, one user", []string{"seen-cleanup", "-C", conf, "-u", "alice"}, ExitOK,
			[]string{stale, "summary: 1 seen dbs, 3 records: 1 stale, 1 orphan; 1 would be removed"}, ""},
		{"delete", []string{"seen-cleanup", "-C", conf, "--user", "alice", "--delete", "--undo-file", undo}, ExitOK,
			[]string{stale, "removed 1 of 1"}, "mbtool restore " + undo},
		{"undo file exists", []string{"seen-cleanup", "-C", conf, "--all", "--delete", "--undo-file", undo}, ExitUsage, nil, "never overwritten"},
		{"after delete", []string{"seen-cleanup", "-C", conf, "-u", "alice"}, ExitOK,
			[]string{"summary: 1 seen dbs, 2 records: 0 stale, 1 orphan"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, errs)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout %q does not contain %q", out, s)
				}
			}
			if !strings.Contains(errs, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", errs, tc.stderr)
			}
		})
	}

	// A damaged seen db: reported, left alone, exit 3.
	b, err := os.ReadFile(bob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-40] ^= 0x20
	if err := os.WriteFile(bob, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "seen-cleanup", "-C", conf, "--all", "--delete", "--undo-file", undo+"2")
	if code != ExitPartial || !strings.Contains(errs, "mbtool: warning: seen db of bob") {
		t.Errorf("damaged seen db: exit %d, stderr %q", code, errs)
	}
}
