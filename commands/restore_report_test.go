package commands

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/mbtool/mbtool/restore/result"
)

// TestRestoreReportProblems checks the exit status the report of either
// restore gives for the problems of a run: a problem filed under a
// mailbox kept as already present (its seen record not read, its
// missing parent not created) or under an applied one makes the run
// partial, as one under no mailbox does; a refused mailbox counts once
// with or without its problem.
func TestRestoreReportProblems(t *testing.T) {
	kept := result.Mailbox{Action: result.Keep, Name: "user.alice.Sent", Source: "user.alice.Sent"}
	created := result.Mailbox{Action: result.Create, Name: "user.alice.A", Source: "user.alice.A", Applied: true}
	refused := result.Mailbox{Action: result.Create, Name: "user.alice.B", Source: "user.alice.B"}
	problem := func(item string) result.Problem {
		return result.Problem{Item: item, Err: errors.New("the user's current record could not be read")}
	}
	for _, tc := range []struct {
		name     string
		problems []result.Problem
		boxes    []result.Mailbox
		want     int // exit status; the count of items not restored below
		items    string
	}{
		{"none", nil, []result.Mailbox{kept, created}, ExitOK, ""},
		{"under a kept mailbox", []result.Problem{problem(kept.Name)}, []result.Mailbox{kept, created}, ExitPartial, "1 mailbox(es)"},
		{"under an applied mailbox", []result.Problem{problem(created.Name)}, []result.Mailbox{kept, created}, ExitPartial, "1 mailbox(es)"},
		{"under no mailbox", []result.Problem{problem("user.alice.Parent")}, []result.Mailbox{kept}, ExitPartial, "1 mailbox(es)"},
		{"refused with its problem", []result.Problem{problem(refused.Name)}, []result.Mailbox{kept, refused}, ExitPartial, "1 mailbox(es)"},
		{"refused and kept", []result.Problem{problem(refused.Name), problem(kept.Name), problem(kept.Name)}, []result.Mailbox{kept, refused}, ExitPartial, "3 mailbox(es)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			e := &env{stdout: &bytes.Buffer{}, stderr: &stderr, out: &Outcome{}}
			rep := newRestoreReport(e, restoreOptions{quiet: true}, nil)
			sum := &result.Summary{Problems: tc.problems}
			for _, m := range tc.boxes {
				rep.mailbox(sum, m)
			}
			err := rep.finish(sum, time.Now(), false)
			code := ExitOK
			var xe *exitError
			if errors.As(err, &xe) {
				code = xe.code
			} else if err != nil {
				t.Fatalf("finish: %v", err)
			}
			if code != tc.want || (err != nil && !bytes.Contains([]byte(err.Error()), []byte(tc.items))) {
				t.Errorf("exit %d (%v), want %d (%s)\n%s", code, err, tc.want, tc.items, stderr.String())
			}
		})
	}
}
