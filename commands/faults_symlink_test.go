package commands

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// plantOutside makes a root-owned directory outside the target holding
// one root-owned file, and returns it with its checksum listing (owners
// included).
func plantOutside(t *testing.T) (string, string) {
	t.Helper()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("root's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return outside, listingOf(t, outside)
}

func listingOf(t *testing.T, dir string) string {
	t.Helper()
	l, err := cyruslab.Listing(dir)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(l, "\n")
}

// symlinkAs makes a symlink at `at` to target, owned by the user cyrus (who
// could have planted it).
func symlinkAs(t *testing.T, target, at string) {
	t.Helper()
	if err := os.Symlink(target, at); err != nil {
		t.Fatal(err)
	}
	if o := partition.CyrusOwner(); o.UID >= 0 {
		if err := os.Lchown(at, o.UID, o.GID); err != nil {
			t.Fatal(err)
		}
	}
}

// warnedAndSaid is the first warning, then the error.
func warnedAndSaid(stderr string) string {
	s := firstLine(stderr, "mbtool: warning:")
	if e := errSaid(stderr); e != "" {
		s += " / " + e
	}
	return s
}

// restore as root into a target whose spool/uuid the user cyrus replaced
// by a symlink to a directory outside: nothing is written there.
func faultRestorePlantedSymlink(t *testing.T) []faultRow {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the attack is on a root-run mbtool")
	}
	dumps := t.TempDir()
	bob := sampleDump(t, dumps, "bob.dlist", "bob")
	dir := t.TempDir()
	conf := emptyTarget(t, dir)
	outside, before := plantOutside(t)
	symlinkAs(t, outside, filepath.Join(dir, "spool", "uuid"))
	dirs := map[string]string{dir: "$SPOOL", dumps: "$OUT", outside: "$OUTSIDE"}
	code, stderr := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", bob)
	said := warnedAndSaid(stderr)
	if code == ExitOK || !strings.Contains(said, "symlink in path, not followed") {
		t.Errorf("restore through a planted symlink: exit %d, stderr:\n%s", code, stderr)
	}
	if after := listingOf(t, outside); after != before {
		t.Errorf("outside changed:\n%s\nwas\n%s", after, before)
	}
	os.Remove(filepath.Join(dir, "spool", "uuid"))
	code2, stderr2 := runMbtool(t, procOptions{}, "restore", "-C", conf, "-q", bob)
	if code2 != ExitOK {
		t.Errorf("rerun without the symlink: exit %d, stderr:\n%s", code2, stderr2)
	}
	return []faultRow{{
		Fault:   "as root, into a target whose spool/uuid the user cyrus replaced by a symlink to a root-owned directory outside",
		Command: "mbtool restore $OUT/bob.dlist",
		Exit:    code, Said: sanitize(said, dirs),
		State: "the directory outside unchanged (checksum listing with owners); once the symlink is removed the rerun exits " +
			strconv.Itoa(code2) + " with " + strconv.Itoa(checkSpool(t, conf)) + " mailbox(es) registered, each whole",
	}}
}

// seen-cleanup --delete as root with seen.db.NEW planted as a symlink to a
// root-owned file by the user cyrus: it is never followed. The seen db is
// changed in place by a twoskip transaction, so nothing is written under
// the .NEW name at all (a checkpoint, which is, removes a leftover there
// first: cyrusfs's tests plant one).
func faultSeenCleanupPlantedSymlink(t *testing.T) []faultRow {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the attack is on a root-run mbtool")
	}
	conf, seen := staleSpool(t)
	seenBefore := fileSum(t, seen)
	outside, before := plantOutside(t)
	symlinkAs(t, filepath.Join(outside, "victim"), seen+".NEW")
	undo := filepath.Join(t.TempDir(), "undo.dlist")
	code, stderr := runMbtool(t, procOptions{}, "seen-cleanup", "-C", conf, "--user", "alice", "--delete", "--undo-file", undo)
	if code != ExitOK {
		t.Errorf("seen-cleanup with a planted seen.db.NEW: exit %d, stderr:\n%s", code, stderr)
	}
	if after := listingOf(t, outside); after != before {
		t.Errorf("outside changed:\n%s\nwas\n%s", after, before)
	}
	fi, err := os.Lstat(seen)
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("seen db: %v %v", fi, err)
	}
	if fileSum(t, seen) == seenBefore {
		t.Error("the seen db is unchanged: the run removed nothing, so it proves nothing")
	}
	return []faultRow{{
		Fault:   "as root, with alice's seen.db.NEW planted by the user cyrus as a symlink to a root-owned file outside",
		Command: "mbtool seen-cleanup --user alice --delete --undo-file $OUT/undo.dlist",
		Exit:    code, Said: errSaid(stderr),
		State: "the file outside unchanged (checksum listing with owners); the symlink not followed; the seen db changed in place, still a regular file",
	}}
}
