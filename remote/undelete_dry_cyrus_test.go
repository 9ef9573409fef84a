package remote

import (
	"crypto/sha1"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/syncrec"
)

// TestRealCyrusServerUndeleteDryRunFiles: a dump lacking message files
// (as an incremental one does): the --server dry run of a merge counts
// exactly what the real run adds, a file the server holds elsewhere
// included, and reports, as the real run does, the record whose file
// neither the dump nor the server has.
func TestRealCyrusServerUndeleteDryRunFiles(t *testing.T) {
	t.Parallel()
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	defer noCrash(t, lab)
	lab.Populate(t)
	sent := view(t, lab.IMAP(t, "alice"), "INBOX.Sent")
	if len(sent.Messages) == 0 {
		t.Fatal("alice has no Sent messages")
	}
	elsewhere := sent.Messages[0].Body // on the server, in alice's Sent, not in the dump

	tb := goodBox() // user.alice: three messages, their files in the dump
	_, gone := message(2)
	delete(tb.files, gone) // neither in the dump nor on the server
	g := guid.GUID(sha1.Sum(elsewhere))
	tb.recs = append(tb.recs, syncrec.Record{UID: 4, Modseq: 6, LastUpdated: 1700000000, InternalDate: 1700000000,
		Size: uint32(len(elsewhere)), GUID: g})
	tb.mb.LastUID, tb.mb.HighestModseq = 4, 6
	dumped := buildDump(t, []testBox{tb}, nil)

	connect := dialer(lab, lab.SyncAddr)
	before := view(t, lab.IMAP(t, "alice"), "INBOX")
	var got [2]MailboxResult
	var problems [2]string
	for i, dry := range []bool{true, false} {
		sum := restoreT(t, dumped, connect, RestoreOptions{Undelete: true, DryRun: dry, Select: sel(t, "user.alice")})
		for _, m := range sum.Mailboxes {
			if m.Name == "user.alice" {
				got[i] = m
			}
		}
		var ps []string
		for _, p := range sum.Problems {
			ps = append(ps, p.Item+": "+p.Err.Error())
		}
		problems[i] = strings.Join(ps, "\n")
	}
	if got[0].Action != ActionMerge || got[0].Added != 3 || got[1].Added != 3 || !got[1].Applied {
		t.Errorf("dry run %+v, real run %+v", got[0], got[1])
	}
	if problems[0] != problems[1] || !strings.Contains(problems[0], "no message file of GUID "+gone.String()) {
		t.Errorf("problems: dry run\n%s\nreal run\n%s", problems[0], problems[1])
	}
	after := view(t, lab.IMAP(t, "alice"), "INBOX")
	if len(after.Messages) != len(before.Messages)+3 {
		t.Errorf("INBOX holds %d messages, %d before the merge; want 3 more", len(after.Messages), len(before.Messages))
	}
}
