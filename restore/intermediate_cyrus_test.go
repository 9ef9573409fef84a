package restore

import (
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// TestRealCyrusImplicitParentOnlyWithChild: a missing parent folder is
// committed only with a child: when the child is refused at the last
// moment (a client created it meanwhile), no empty, unreported parent
// appears.
func TestRealCyrusImplicitParentOnlyWithChild(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	c := lab.IMAP(t, "alice")
	for _, name := range []string{"INBOX.Projects", "INBOX.Projects.Plans"} {
		if err := c.Create(name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Append("INBOX.Projects.Plans", nil, time.Time{}, []byte("Subject: p\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	dumped := labDump(t, lab, "alice")
	if err := lab.IMAP(t, lab.Admin).Create("user.dave"); err != nil {
		t.Fatal(err)
	}
	spool := openSpool(t, lab.Conf)
	defer SetPhaseHook(nil)
	SetPhaseHook(func(phase string) {
		if phase != "read" {
			return
		}
		// A client creates the child between the read and the commit.
		err := spool.UpdateMailboxes(partition.CyrusOwner(), func(tx *partition.MailboxesTx) error {
			return tx.Put(partition.Entry{Name: "user.dave.Projects.Plans", UniqueID: "a1b2c3d4e5f6g7h8i9j0k1l2", Partition: "default",
				Type: "e", UIDValidity: 1, CreatedModseq: 1, FolderModseq: 1, MTime: 1,
				ACL: partition.ParseACL("dave\tlrswipkxtecdan\t")})
		})
		if err != nil {
			t.Error(err)
		}
	})
	sum := labRestore(t, lab, dumped, Options{MapUsers: map[string]string{"alice": "dave"}, Select: sel(t, "user.alice.Projects.Plans")})
	SetPhaseHook(nil)
	refused := 0
	for _, m := range sum.Mailboxes {
		if m.Name == "user.dave.Projects.Plans" && m.Action == ActionRefuse && !m.Applied {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("the child is not refused: %+v %v", sum.Mailboxes, sum.Problems)
	}
	if e, ok, err := spool.LookupAny("user.dave.Projects"); err != nil || (ok && !e.Deleted() && !e.Intermediate()) {
		t.Errorf("user.dave.Projects appeared (%+v, %v) though its child was refused", e, err)
	}
}
