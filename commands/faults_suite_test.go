package commands

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// faultHarness, when set in the environment, makes TestFaultSuiteSkips
// run a small fake suite through runFaultSuite ("skip:DOC" with a fault
// test that skips, "noskip:DOC" without) instead of checking it.
const faultHarness = "MBTOOL_FAULT_HARNESS"

// The suite's own rules, checked on a fake suite run in a child process
// (a failing suite must fail that process, not this test): with
// MBTOOL_REAL_CYRUS=1 a skipped fault test fails the suite; without it
// the table is not compared; when every fault test ran, a table that
// differs from the document fails.
func TestFaultSuiteSkips(t *testing.T) {
	if h := os.Getenv(faultHarness); h != "" {
		mode, doc, _ := strings.Cut(h, ":")
		suite := []faultTest{{"row", func(t *testing.T) []faultRow {
			return []faultRow{{Fault: "a fault", Command: "mbtool x", Exit: 3, Said: "said", State: "checked"}}
		}}}
		if mode == "skip" {
			suite = append(suite, faultTest{"skips", func(t *testing.T) []faultRow {
				t.Skip("cannot mount a small tmpfs to fill")
				return nil
			}})
		}
		runFaultSuite(t, suite, doc)
		return
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.md")
	if err := os.WriteFile(good, renderReliability([]faultRow{{Fault: "a fault", Command: "mbtool x", Exit: 3, Said: "said", State: "checked"}}), 0o644); err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(dir, "edited.md")
	b, _ := os.ReadFile(good)
	if err := os.WriteFile(edited, []byte(strings.Replace(string(b), "| 3 |", "| 1 |", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		harness, real string
		pass          bool
		says          string
	}{
		{"skip:" + edited, "1", false, "1 fault test(s) skipped with MBTOOL_REAL_CYRUS=1"},
		{"skip:" + edited, "", true, "not compared: 1 fault test(s) did not run to the end: skips"},
		{"noskip:" + edited, "", false, "is stale"},
		{"noskip:" + edited, "1", false, "is stale"},
		{"noskip:" + good, "1", true, ""},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFaultSuiteSkips$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), faultHarness+"="+tc.harness, cyruslab.EnvRequire+"="+tc.real)
		out, err := cmd.CombinedOutput()
		if passed := err == nil; passed != tc.pass || !strings.Contains(string(out), tc.says) {
			t.Errorf("%s with %s=%q: passed %v (want %v), want output containing %q:\n%s",
				filepath.Base(tc.harness), cyruslab.EnvRequire, tc.real, passed, tc.pass, tc.says, out)
		}
	}
}
