package restore_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/fixtures/gen"
)

// straceRestore restores a generated dump of 2 users (21 mailboxes) and
// messages messages with the mbtool bin into an empty partition under
// strace -f, and returns how many renameat2 and how many utimensat of a
// name (not of a descriptor: futimens) it made.
func straceRestore(t *testing.T, bin string, messages int) (renames, utimesByName int) {
	t.Helper()
	dir := t.TempDir()
	var dump bytes.Buffer
	if _, err := gen.WriteDump(&dump, gen.Options{Seed: 3, Users: 2, Messages: messages, SmallOnly: true, MeanSize: 1_700}); err != nil {
		t.Fatal(err)
	}
	dumpPath := filepath.Join(dir, "dump")
	if err := os.WriteFile(dumpPath, dump.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := gen.EmptyPartition(filepath.Join(dir, "target"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "strace.txt")
	cmd := exec.Command("strace", "-f", "-o", out, "-e", "trace=renameat2,utimensat", bin, "restore", "-C", conf, "-q", dumpPath)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace mbtool restore: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// An unfinished call's line has its name and arguments, its resumed
	// line neither.
	renames = len(regexp.MustCompile(`(?m)\brenameat2\(`).FindAll(b, -1))
	utimesByName = len(regexp.MustCompile(`(?m)\butimensat\(\d+, "`).FindAll(b, -1))
	return renames, utimesByName
}

// TestRenamesPerMessage counts restore's renames and utimensat calls by
// name per message (the difference between 60 and 260 messages in the
// same 21 mailboxes, so that what a mailbox costs drops out). A small
// message file used to be written to the staging directory's msg/ under
// its GUID, then given its mtime by name and renamed into its first
// mailbox: one of each per message (the rest are links). It is now
// written there at once, its mtime set through its descriptor: none.
func TestRenamesPerMessage(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("no strace")
	}
	if testing.Short() {
		t.Skip("builds mbtool")
	}
	bin := fixtures.BuildMbtool(t)
	r1, u1 := straceRestore(t, bin, 60)
	r2, u2 := straceRestore(t, bin, 260)
	renames, utimes := float64(r2-r1)/200, float64(u2-u1)/200
	t.Logf("per message: %.2f renameat2, %.2f utimensat by name (%d, %d at 60 messages; %d, %d at 260)", renames, utimes, r1, u1, r2, u2)
	if renames > 0.05 || utimes > 0.05 {
		t.Errorf("restore makes %.2f renameat2 and %.2f utimensat by name per message; want none", renames, utimes)
	}
}
