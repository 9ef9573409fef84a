package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/fixtures"
)

// verifyFixture dumps the bundled spool's alice and bob with mbtool dump
// and returns imapd.conf and the paths of a plain and a zstd dump.
func verifyFixture(t *testing.T) (conf, plain, zst string) {
	t.Helper()
	conf = fixtures.UnpackT(t)
	dir := t.TempDir()
	plain, zst = filepath.Join(dir, "d.dlist"), filepath.Join(dir, "d.dlist.zst")
	for _, out := range []string{plain, zst} {
		if code, _, errs := run(t, "dump", "-C", conf, "-q", "-u", "alice", "-u", "bob", "-o", out); code != ExitOK {
			t.Fatalf("dump: exit %d: %s", code, errs)
		}
	}
	return conf, plain, zst
}

// jsonLines decodes every line of out as a JSON object.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON object: %q: %v", line, err)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestVerifyCommand(t *testing.T) {
	conf, plain, zst := verifyFixture(t)
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), "damaged.dlist")
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01 // inside a message
	if err := os.WriteFile(damaged, c, 0o644); err != nil {
		t.Fatal(err)
	}
	notDump := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notDump, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"ok", []string{"verify", plain}, ExitOK, ": OK: 8 mailboxes, 58 messages", ""},
		{"ok zstd", []string{"verify", "-q", zst}, ExitOK, ": OK: 8 mailboxes", ""},
		{"against", []string{"verify", "-C", conf, "--against", plain}, ExitOK, "compared 8 live mailboxes, hashed 57 message files", ""},
		{"global -C", []string{"-C", conf, "verify", "--against", zst}, ExitOK, ": OK:", ""},
		{"damaged", []string{"verify", damaged}, ExitFailure, ": literal: file literal of", "mbtool: error: " + damaged + ": 2 finding(s): damage"},
		{"damaged against", []string{"verify", "-C", conf, "--against", damaged}, ExitFailure, "DAMAGED", "damage"},
		{"missing file", []string{"verify", filepath.Join(t.TempDir(), "nope")}, ExitUsage, "", "no such file"},
		{"not a dump", []string{"verify", notDump}, ExitUsage, "", "not an mbtool dump"},
		{"no argument", []string{"verify"}, ExitUsage, "", "no dump to verify"},
		{"two arguments", []string{"verify", plain, zst}, ExitUsage, "", "one dump"},
		{"both", []string{"verify", "--against", plain, zst}, ExitUsage, "", "not both"},
		{"flag after file", []string{"verify", plain, "--json"}, ExitOK, `"status":"ok"`, ""},
		{"dash file after --", []string{"verify", "--", "-nosuch"}, ExitUsage, "", "open -nosuch: no such file"},
		{"bad config", []string{"verify", "-C", "/nonexistent/imapd.conf", "--against", plain}, ExitUsage, "", "imapd.conf"},
		{"help", []string{"verify", "--help"}, ExitOK, "EXIT STATUS", ""},
	}
	for _, tt := range tests {
		code, out, errs := run(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errs, tt.stderr) {
			t.Errorf("%s: mbtool %q: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)",
				tt.name, tt.args, code, tt.code, out, tt.stdout, errs, tt.stderr)
		}
	}
}

func TestVerifyJSON(t *testing.T) {
	_, plain, _ := verifyFixture(t)
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	// Through standard input; a bit flipped in the digest of the trailer
	// and one in the middle of a message.
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	// Another hex digit (a flipped bit could make it no hex digit at all,
	// a parse error rather than a digest mismatch).
	if c[len(c)-10] == '0' {
		c[len(c)-10] = '1'
	} else {
		c[len(c)-10] = '0'
	}
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"mbtool", "verify", "--json", "-"}, bytes.NewReader(c), &out, &errb)
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d; stderr %s", code, ExitFailure, errb.String())
	}
	objs := jsonLines(t, out.String())
	if len(objs) != 1 {
		t.Fatalf("%d objects, want one summary with 2 findings:\n%s", len(objs), out.String())
	}
	s := objs[0]
	found, _ := s["first_findings"].([]any)
	if len(found) != 2 {
		t.Fatalf("first_findings %v, want 2", s["first_findings"])
	}
	kinds := map[string]bool{}
	var lit map[string]any
	for _, x := range found {
		f := x.(map[string]any)
		if f["detail"] == "" {
			t.Errorf("finding %v", f)
		}
		if _, ok := f["offset"].(float64); !ok {
			t.Errorf("finding %v has no offset", f)
		}
		kinds[f["kind"].(string)] = true
		if f["kind"] == "literal" {
			lit = f
		}
	}
	if !kinds["literal"] || !kinds["digest"] {
		t.Errorf("kinds %v, want literal and digest", kinds)
	}
	if g, _ := lit["guid"].(string); len(g) != 40 || lit["mailbox"] == "" {
		t.Errorf("literal finding %v lacks its GUID or mailbox", lit)
	}
	if s["command"] != "verify" || s["ok"] != false || s["exit"] != 1.0 || s["status"] != "failed" || s["complete"] != true || s["findings"] != 2.0 ||
		s["mailboxes"] != 8.0 || s["messages"] != 58.0 || s["records"] != 60.0 {
		t.Errorf("summary %v", s)
	}
	if tr, ok := s["trailer"].(map[string]any); !ok || len(tr["blake3"].(string)) != 64 {
		t.Errorf("summary trailer %v", s["trailer"])
	}

	// A good dump: the summary alone.
	out.Reset()
	code = Run(context.Background(), []string{"mbtool", "verify", "--json", "-"}, bytes.NewReader(b), &out, &errb)
	objs = jsonLines(t, out.String())
	if code != ExitOK || len(objs) != 1 || objs[0]["ok"] != true {
		t.Errorf("good dump: exit %d, %v", code, objs)
	}
}
