package restore_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/fixtures/gen"
)

// TestPlacedParentsMadeOnce: the parents of the uuid paths that the
// commit's workers rename mailboxes into (placeBoxes) are each made once,
// however many workers place mailboxes under them at once, so that a run
// takes the same steps of package cyrusfs every time: the kill tests
// (TestRealCyrusKillPoints) trace a run and then kill others at its
// steps, and a parent made twice by two workers racing (one of the two
// made and removed again) added steps to one run and not another, so
// that a run ended before the step it was to be killed at. The restore
// runs in a child (the tracing hook is read at its start) with four
// workers.
func TestPlacedParentsMadeOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("restores 400 mailboxes twice")
	}
	var dump bytes.Buffer
	if _, err := gen.WriteDump(&dump, gen.Options{Seed: 11, Users: 40, Messages: 400, SmallOnly: true, MeanSize: 500}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dumpPath := filepath.Join(dir, "dump")
	if err := os.WriteFile(dumpPath, dump.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var counts []map[string]int
	for i := range 2 {
		conf, _, err := gen.OpenEmpty(filepath.Join(dir, "target"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		trace := filepath.Join(dir, "trace"+string(rune('0'+i)))
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MBTOOL_RESTORE_TEST_CHILD="+conf+"\n"+dumpPath,
			cyrusfs.EnvTrace+"="+trace, "GOMAXPROCS=4")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("restore: %v", err)
		}
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		made := map[string]int{}
		kinds := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			kind, rest, _ := strings.Cut(line, " ")
			_, path, _ := strings.Cut(rest, " ")
			kinds[kind]++
			if kind == "mkdir" {
				if made[path]++; made[path] == 2 {
					t.Errorf("run %d: %s made twice", i, path)
				}
			}
		}
		counts = append(counts, kinds)
	}
	for k, n := range counts[0] {
		if counts[1][k] != n {
			t.Errorf("steps of kind %s: %d in one run, %d in the other", k, n, counts[1][k])
		}
	}
}
