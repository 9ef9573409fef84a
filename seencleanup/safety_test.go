package seencleanup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRunUserPathElements: a --user with path elements, which would name a
// seen database outside the configuration directory, is refused before
// anything is read or written, and no undo file is made (issue 13 finding
// 5).
func TestRunUserPathElements(t *testing.T) {
	spool := sampleSpool(t)
	user := "../../../victim"
	p, err := spool.SeenPath(user)
	if err != nil {
		t.Fatal(err)
	}
	// The directories the path climbs out of, so that it resolves.
	if err := os.MkdirAll(p[:strings.Index(p, "/../")], 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Clean(p)
	if strings.HasPrefix(victim, spool.Config.ConfigDir+"/") {
		t.Fatalf("%s is inside the configuration directory", victim)
	}
	alice, _ := spool.SeenPath("alice")
	b, err := os.ReadFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	editDB(t, victim, map[string]string{idNowhere: "1 0 0 0 "})
	before, _ := os.ReadFile(victim)
	undo := filepath.Join(t.TempDir(), "undo")
	sum, err := Run(context.Background(), spool, Options{Users: []string{user}, Delete: true, PruneOrphans: true, UndoFile: undo})
	if err == nil || !strings.Contains(err.Error(), "victim") {
		t.Errorf("Run: %v (summary %v), want an error naming the userid", err, sum)
	}
	if after, _ := os.ReadFile(victim); !bytes.Equal(after, before) {
		t.Error("the seen db outside the configuration directory changed")
	}
	if _, err := os.Stat(undo); err == nil {
		t.Error("undo file written")
	}
}

// writeUndo writes an undo file holding alice's records recs (uniqueid,
// value), as Run does.
func writeUndo(t *testing.T, path string, recs ...[2]string) {
	t.Helper()
	u, err := createUndo(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range recs {
		s, err := toSeen("alice", []byte(kv[0]), []byte(kv[1]))
		if err != nil {
			t.Fatal(err)
		}
		if err := u.add(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.finish(); err != nil {
		t.Fatal(err)
	}
	u.f.Close()
}

// TestApplyUndoSwapped swaps another file in under the undo file's name
// between the check of the undo file and its application (issue 13
// finding 6): what is applied is the file that was checked.
func TestApplyUndoSwapped(t *testing.T) {
	spool := sampleSpool(t)
	dir := t.TempDir()
	good, evil := filepath.Join(dir, "undo"), filepath.Join(dir, "evil")
	writeUndo(t, good, [2]string{idAliceInbox, "1 0 36 0 1:36"})
	writeUndo(t, evil, [2]string{idNowhere, "1 9 9 9 1:9"})
	testHookAfterUndoCheck = func() {
		if err := os.Rename(evil, good); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookAfterUndoCheck = nil }()
	if _, err := ApplyUndo(context.Background(), spool, good); err != nil {
		t.Fatal(err)
	}
	got := records(t, spool, "alice")
	if !slices.Contains(got, idAliceInbox+"=1 0 36 0 1:36") || slices.Contains(got, idNowhere+"=1 9 9 9 1:9") {
		t.Errorf("alice's records %q: not those of the checked undo file", got)
	}
}
