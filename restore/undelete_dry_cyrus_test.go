package restore

import (
	"os"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// TestRealCyrusUndeleteDryRunRefuses: a merge target whose index is
// marked deleted is refused by the dry run as by the real run (both ask
// msgsel.NewMerge), not counted as "N to add".
func TestRealCyrusUndeleteDryRunRefuses(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	dumped := labDump(t, lab, "alice")
	lab.Purge(t, "alice", "INBOX", "4:9")

	spool := openSpool(t, lab.Conf)
	e, ok, err := spool.LookupAny("user.alice")
	if err != nil || !ok {
		t.Fatalf("user.alice: %v %v", ok, err)
	}
	ipath, err := spool.MetaPath(e, partition.FileIndex)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(ipath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	h, err := partition.IndexHeaderAt(f, ipath)
	if err != nil {
		t.Fatal(err)
	}
	h.Options, h.HighestModseq = h.RawOptions|partition.OptMailboxDeleted, h.RawHighestModseq
	if _, err := f.WriteAt(partition.AppendIndexHeader(nil, h), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, dry := range []bool{true, false} {
		sum := labRestore(t, lab, dumped, Options{Undelete: true, Select: sel(t, "user.alice"), DryRun: dry})
		var res MailboxResult
		for _, m := range sum.Mailboxes {
			if m.Name == "user.alice" {
				res = m
			}
		}
		if res.Action != ActionRefuse || !strings.Contains(res.Reason, "marked deleted") || res.Added != 0 || res.Applied {
			t.Errorf("dry run %v: %+v, problems %v", dry, res, sum.Problems)
		}
	}
}
