package imapcompare_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/restore"
)

// restoreRun restores dumped into lab's spool, dry or not, and returns
// the summary.
func restoreRun(t *testing.T, lab *cyruslab.Lab, dumped []byte, dry bool) *restore.Summary {
	t.Helper()
	sum, err := restore.Run(context.Background(), openSpool(t, lab), bytes.NewReader(dumped), restore.Options{DryRun: dry})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// plan is a summary's action and reason per mailbox, and its problems.
func plan(sum *restore.Summary) string {
	var out []string
	for _, m := range sum.Mailboxes {
		out = append(out, fmt.Sprintf("%s %s %s", m.Name, m.Action, m.Reason))
	}
	for _, p := range sum.Problems {
		out = append(out, fmt.Sprint(p))
	}
	return strings.Join(out, "\n")
}

// TestRealCyrusConfigs runs the comparison in configurations a Cyrus 3.6
// site runs, one source lab each (the standard content): a dry run
// predicts the offline restore's refusals and warnings exactly; what
// offline restore writes is served as on the source, and so is what
// restore --server writes; where offline restore cannot do the job it
// refuses or warns, saying what to do.
func TestRealCyrusConfigs(t *testing.T) {
	users := []string{"alice", "bob"}
	for _, tc := range []struct {
		name   string
		config func(t *testing.T) string
		// refused: offline restore refuses every mailbox; warned: it
		// warns about conversations for alice and bob.
		refused, warned, archive bool
	}{
		{name: "conversations", config: func(*testing.T) string { return "conversations: 1" }, warned: true},
		{name: "archive", config: func(t *testing.T) string {
			dir := cyruslab.TempDir(t)
			if err := cyruslab.Chown(dir); err != nil {
				t.Fatal(err)
			}
			return "archive_enabled: 1\narchivepartition-default: " + dir
		}, archive: true},
		{name: "metapartition", config: func(t *testing.T) string {
			dir := cyruslab.TempDir(t)
			if err := cyruslab.Chown(dir); err != nil {
				t.Fatal(err)
			}
			return "metapartition-default: " + dir + "\nmetapartition_files: header index cache expunge squat annotations"
		}, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each lab gets its own directories (tc.config makes them).
			src := cyruslab.Start(t, cyruslab.Options{ExtraConfig: tc.config(t)})
			src.Populate(t)
			dumped := offlineDump(t, src)
			want := take(t, src, users...)

			off := cyruslab.Start(t, cyruslab.Options{ExtraConfig: tc.config(t)})
			dry := restoreRun(t, off, dumped, true)
			real := restoreRun(t, off, dumped, false)
			if plan(dry) != plan(real) {
				t.Errorf("the dry run said\n%s\nthe restore did\n%s", plan(dry), plan(real))
			}
			switch {
			case tc.refused:
				if real.Count(restore.ActionRefuse) != len(real.Mailboxes) || len(real.Mailboxes) == 0 {
					t.Errorf("offline restore: %s", plan(real))
				}
			default:
				if real.Count(restore.ActionCreate) != len(real.Mailboxes) {
					t.Errorf("offline restore: %s", plan(real))
				}
				switch {
				case tc.warned && (len(real.Problems) != 2 || !strings.Contains(plan(real), "ctl_conversationsdb -R alice")),
					tc.archive && (len(real.Problems) != 1 || !strings.Contains(plan(real), "cyr_expire -A 7d")),
					!tc.warned && !tc.archive && len(real.Problems) > 0:
					t.Errorf("offline restore's warnings: %v", real.Problems)
				}
				if tc.archive {
					// What the warning says to run archives what Cyrus did.
					off.Tool(t, "cyr_expire", "-A", "7d")
				}
				if tc.warned {
					// What the warning says to run rebuilds what Cyrus has.
					for _, u := range users {
						off.Tool(t, "ctl_conversationsdb", "-R", u)
						got, want := off.Tool(t, "ctl_conversationsdb", "-d", u), src.Tool(t, "ctl_conversationsdb", "-d", u)
						if n, m := strings.Count(got, "\n"), strings.Count(want, "\n"); n != m || n == 0 {
							t.Errorf("conversations of %s after -R: %d lines, source %d", u, n, m)
						}
					}
				}
				for _, d := range imapcompare.Diff(take(t, off, users...), want) {
					if !(tc.warned && countersOnly(d)) {
						t.Errorf("offline: %s", d)
					}
				}
			}

			srv := cyruslab.Start(t, cyruslab.Options{ExtraConfig: tc.config(t), SyncPort: true})
			restoreServer(t, srv, dumped)
			for _, d := range imapcompare.Diff(take(t, srv, users...), want) {
				if !(tc.warned && countersOnly(d)) {
					t.Errorf("--server: %s", d)
				}
			}
		})
	}
}

// countersOnly reports whether d is a difference of the user's modseq
// counters (/private/vendor/cmu/cyrus-imapd/usercounters of the server),
// which with conversations count what was done to the user's mailboxes:
// a restore's work, not the source's, after either restore, as after
// Cyrus's own replication.
func countersOnly(d imapcompare.Difference) bool {
	drop := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, "/private/vendor/cmu/cyrus-imapd/usercounters") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	return strings.HasSuffix(d.Section, " GETMETADATA server") && d.Missing == "" && drop(d.A) == drop(d.B)
}
