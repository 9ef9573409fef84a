package remote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// TestRealCyrusServerLostButHeld: a dump of user.erin.B whose records
// have no files in the dump, while the server holds files of the GUIDs of
// two of them (in user.erin.A, restored before) and of the third none.
// The two the server holds are restored live, linked by sync_server from
// A as APPLY RESERVE found them, with their MODSEQs as dumped; only the
// third is lost: expunged (syncrec.LoseFile) with the MODSEQ above the
// dump's HIGHESTMODSEQ, which the mailbox's HIGHESTMODSEQ becomes, and
// reported once, by the dry run alike. The SYNC_CRC sent is that of the
// records so (no checksum warning), and a rerun finds B identical, saying
// that UID 3 stays expunged. Test failed before the fix: all three
// records expunged and reported ("restored as expunged"), B empty, the
// MODSEQs as dumped.
func TestRealCyrusServerLostButHeld(t *testing.T) {
	t.Parallel()
	lab, _ := labWithUser(t, "erin")
	a := boxOf("user.erin.A", "eeeeeeeeeeeeeeeeeeeeee11", "erin", 100)
	if sum := restoreT(t, buildDump(t, []testBox{a}, nil), dialer(lab, lab.SyncAddr), RestoreOptions{}); len(sum.Problems) > 0 {
		t.Fatalf("restoring A: %v", sum.Problems)
	}
	b := boxOf("user.erin.B", "eeeeeeeeeeeeeeeeeeeeee12", "erin", 100)
	_, other := message(999) // a message the server has nowhere
	b.recs[2].GUID = other
	clear(b.files)
	dumped := buildDump(t, []testBox{b}, nil)
	lostUID3 := func(who string, problems []Problem) {
		t.Helper()
		var lost *syncrec.LostFileError
		if len(problems) != 1 || problems[0].Item != "user.erin.B" || !errors.As(problems[0].Err, &lost) || lost.UID != 3 || lost.GUID != other {
			t.Errorf("%s: problems %v, want UID 3 of user.erin.B lost, alone", who, problems)
		}
	}
	counted := func(who string, sum *RestoreSummary, action Action) {
		t.Helper()
		if len(sum.Mailboxes) != 1 || sum.Mailboxes[0].Action != action || sum.Mailboxes[0].Records != 3 || sum.Mailboxes[0].Messages != 2 {
			t.Errorf("%s: %+v; want B to %s, 3 records, 2 messages", who, sum.Mailboxes, action)
		}
	}
	dry := restoreT(t, dumped, dialer(lab, lab.SyncAddr), RestoreOptions{DryRun: true})
	lostUID3("dry run", dry.Problems)
	counted("dry run", dry, ActionCreate)
	sum := restoreT(t, dumped, dialer(lab, lab.SyncAddr), RestoreOptions{})
	lostUID3("restore", sum.Problems)
	counted("restore", sum, ActionCreate)

	dir := strings.TrimSpace(lab.Tool(t, "mbpath", "user.erin.B"))
	for _, n := range []string{"1.", "2."} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("B/%s: %v", n, err)
		}
	}
	s := openSpool(t, lab.Conf)
	e, ok, err := s.LookupAny("user.erin.B")
	if err != nil || !ok {
		t.Fatalf("user.erin.B: %v %v", ok, err)
	}
	box, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	fmt.Fprintf(&got, "HIGHESTMODSEQ %d EXISTS %d:", box.Index.HighestModseq, box.Index.Exists)
	err = box.Records(func(r partition.Record) error {
		fmt.Fprintf(&got, " %d/%d", r.UID, r.Modseq)
		if r.SystemFlags&partition.InternalExpunged != 0 {
			got.WriteString("/expunged")
		}
		return nil
	})
	box.Close()
	if err != nil {
		t.Fatal(err)
	}
	// boxOf: HIGHESTMODSEQ 5, UIDs 1-3 with MODSEQs 2-4.
	if want := "HIGHESTMODSEQ 6 EXISTS 2: 1/2 2/3 3/6/expunged"; got.String() != want {
		t.Errorf("user.erin.B: %s, want %s", got.String(), want)
	}

	again := restoreT(t, dumped, dialer(lab, lab.SyncAddr), RestoreOptions{})
	var kept *syncrec.LostKeptError
	counted("rerun", again, ActionKeep)
	if len(again.Problems) != 1 || !errors.As(again.Problems[0].Err, &kept) || kept.Records != 1 {
		t.Errorf("rerun: problems %v; want 1 record of B reported lost", again.Problems)
	}
}
