package commands

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/internal/s3lab"
)

// aliceView is what alice and the admin see of alice's mailboxes, with
// mbexamine's view of them. The lab's shared folders, which alice also
// sees, are left out: a user's dump does not carry them.
func aliceView(t *testing.T, lab *cyruslab.Lab) map[string]string {
	t.Helper()
	s, err := imapcompare.Take(lab, imapcompare.Options{Users: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]string{}
	for k, text := range s {
		if strings.HasPrefix(k, "alice shared") || !(strings.HasPrefix(k, "alice ") || strings.Contains(k, "user.alice")) {
			continue
		}
		var keep []string
		for _, line := range strings.Split(text, "\n") {
			if !strings.Contains(line, "shared") {
				keep = append(keep, line)
			}
		}
		v[k] = strings.Join(keep, "\n")
	}
	if v["alice INBOX FETCH"] == "" {
		t.Fatalf("no view of alice's INBOX: %d sections", len(v))
	}
	return v
}

func sameView(t *testing.T, who string, got, want map[string]string) {
	t.Helper()
	for _, d := range imapcompare.Diff(want, got) {
		t.Errorf("%s: %s", who, d)
	}
}

// TestRealCyrusS3 is the repository's nightly scenario against a real
// object store (SeaweedFS, with credentials) and real Cyrus, run as an
// operator runs it: two nights into --repo s3://, list, verify
// --read-data, point-in-time restores of each night, retention, export to
// an s3:// object, verify and restore of that object, and a dump written
// straight to S3. Every restore gives the IMAP view the source had.
func TestRealCyrusS3(t *testing.T) {
	m := s3lab.StartMini(t, s3lab.Options{})
	m.Setenv(t)
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	repoURL := m.URL("fleet/repo")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"mbtool"}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	must := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := run(args...)
		if code != ExitOK {
			t.Fatalf("mbtool %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout
	}
	restoreAt := func(from ...string) map[string]string {
		t.Helper()
		dst := cyruslab.Start(t, cyruslab.Options{})
		must(append([]string{"restore", "-C", dst.Conf, "-q"}, from...)...)
		return aliceView(t, dst)
	}

	want1 := aliceView(t, src)
	must("dump", "-C", src.Conf, "--user", "alice", "--user", "bob", "--repo", repoURL, "-q")
	time.Sleep(1100 * time.Millisecond)
	at1 := time.Now().Format(time.RFC3339)
	time.Sleep(1100 * time.Millisecond)

	// The day: new mail and a flag.
	c := src.IMAP(t, "alice")
	for i := range 3 {
		msg := fmt.Sprintf("From: x@example.org\r\nSubject: day 2 message %d\r\n\r\nnew %d\r\n", i, i)
		if _, err := c.Append("INBOX", nil, time.Time{}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatal(err)
	}
	want2 := aliceView(t, src)
	must("dump", "-C", src.Conf, "--user", "alice", "--user", "bob", "--repo", repoURL, "-q")
	snapshots := func() int {
		return len(strings.Split(strings.TrimSpace(must("list", "--repo", repoURL)), "\n")) - 1 // a header, then one line each
	}
	if n := snapshots(); n != 2 {
		t.Fatalf("list --repo: %d snapshots after two nights", n)
	}
	must("verify", "--repo", repoURL, "--read-data", "-q")

	sameView(t, "night 1 from s3://", restoreAt("--repo", repoURL, "--user", "alice", "--at", at1), want1)
	sameView(t, "night 2 from s3://", restoreAt("--repo", repoURL, "--user", "alice"), want2)

	// Retention: keep the last night only; it still restores the same.
	must("prune", "--repo", repoURL, "--keep-last", "1", "-q")
	if n := snapshots(); n != 1 {
		t.Fatalf("list --repo after prune --keep-last 1: %d snapshots", n)
	}
	must("verify", "--repo", repoURL, "--read-data", "-q")
	if code, _, stderr := run("restore", "-C", src.Conf, "--repo", repoURL, "--user", "alice", "--at", at1, "--dry-run"); code == ExitOK {
		t.Errorf("restore --at night 1 after it was pruned: exit 0\n%s", stderr)
	}

	// Standalone dumps as objects: exported from the repository, and
	// written by dump itself.
	exported := m.URL("dumps/alice-export.dlist.zst")
	must("export", "--repo", repoURL, "--user", "alice", "-o", exported, "-q")
	must("verify", exported, "-q")
	sameView(t, "export to s3:// restored", restoreAt(exported), want2)
	direct := m.URL("dumps/alice.dlist")
	must("dump", "-C", src.Conf, "--user", "alice", "-o", direct, "-q")
	must("verify", direct, "-q")
	sameView(t, "dump -o s3:// restored", restoreAt(direct), want2)

	must("unlock", "--repo", repoURL)
	if code, _, stderr := run("verify", m.URL("dumps/nosuch.dlist")); code != ExitUsage || !strings.Contains(stderr, "nosuch") {
		t.Errorf("verify of a missing object: exit %d\n%s", code, stderr)
	}
}
