package restore

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReportAfterStop: a run that stops on an error after it committed
// mailboxes (here alice's, in a group of their own: bob's quota root,
// looked up before his are committed, cannot be read, its file being a symlink) still gives Options.Report every mailbox, those
// committed as applied, as restore --server reports what it applied
// before it stopped.
func TestReportAfterStop(t *testing.T) {
	dump, _ := fixtureDump(t, []string{"alice", "bob"})
	target := emptyTarget(t, "")
	// alice's mailboxes make a group of their own, bob's the next.
	saved := maxGroup
	maxGroup = len(fixtureAlice)
	defer func() { maxGroup = saved }()
	p, err := target.QuotaPath("user.bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "quota"), p); err != nil {
		t.Fatal(err)
	}
	var got []MailboxResult
	sum, err := run(t, target, dump, Options{Report: func(_ *Summary, m MailboxResult) { got = append(got, m) }})
	if err == nil {
		t.Fatal("the restore did not stop on the symlink of bob's quota")
	}
	applied := 0
	for _, m := range got {
		if m.Applied {
			applied++
		}
	}
	want := len(fixtureAlice) // not user.bob
	if sum == nil || !sum.Began || len(got) != want+1 || applied != want {
		t.Errorf("stopped on %v: %d mailboxes reported, %d applied; want %d, the %d committed (began %v)",
			err, len(got), applied, want+1, want, sum != nil && sum.Began)
	}
}
