package restore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/result"
)

// TestRealCyrusImplicitParentOnlyWithChild: a missing parent folder is
// committed only with a child: when the child is refused at the last
// moment (a client created it meanwhile), no empty, unreported parent
// appears.
func TestRealCyrusImplicitParentOnlyWithChild(t *testing.T) {
	sum, spool := restoreWhileCreated(t, "user.dave.Projects.Plans", "a1b2c3d4e5f6g7h8i9j0k1l2")
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

// TestRealCyrusImplicitParentRefusedRefusesChild: a missing parent folder
// that cannot be committed (its name taken in the target between the
// read and the commit) refuses the mailbox it was made for, in the words
// of restore --server, which does not send a child whose parent it could
// not create (remote.ParentError): the child is not registered, it is
// refused (exit 3) naming the parent, and the parent's problem names the
// child. The offline restore used to commit the child first and leave it
// there without the parent it was planned under (test failed before:
// user.dave.Projects.Plans applied).
func TestRealCyrusImplicitParentRefusedRefusesChild(t *testing.T) {
	sum, spool := restoreWhileCreated(t, "user.dave.Projects", "a1b2c3d4e5f6g7h8i9j0k1l3")
	want := (&result.ParentError{Parent: "user.dave.Projects", Err: errors.New("created in the target meanwhile")}).Error()
	var child *MailboxResult
	for i, m := range sum.Mailboxes {
		if m.Name == "user.dave.Projects.Plans" {
			child = &sum.Mailboxes[i]
		}
	}
	if child == nil || child.Action != ActionRefuse || child.Applied || child.Reason != want {
		t.Fatalf("want user.dave.Projects.Plans refused, %q: %+v\nproblems: %v", want, sum.Mailboxes, sum.Problems)
	}
	var parentProblem bool
	for _, p := range sum.Problems {
		if p.Item == "user.dave.Projects" && strings.Contains(p.Err.Error(), "the missing parent of user.dave.Projects.Plans was not created") {
			parentProblem = true
		}
	}
	if !parentProblem {
		t.Errorf("no problem under user.dave.Projects naming its child: %v", sum.Problems)
	}
	if e, ok, err := spool.LookupAny("user.dave.Projects.Plans"); err != nil || ok {
		t.Errorf("user.dave.Projects.Plans is registered (%+v, %v) though it was refused", e, err)
	}
	if e, ok, err := spool.LookupAny("user.dave.Projects"); err != nil || !ok || e.UniqueID != "a1b2c3d4e5f6g7h8i9j0k1l3" {
		t.Errorf("user.dave.Projects is not the client's: %+v, %v, %v", e, ok, err)
	}
}

// restoreWhileCreated gives alice the folders Projects and Projects.Plans
// (one message in Plans), dumps her, and restores Projects.Plans to the
// new user dave, whose Projects is missing (a parent the restore makes),
// while a client creates the mailbox name in dave's account with
// uniqueid between the read and the commit. It returns the summary and
// the target spool.
func restoreWhileCreated(t *testing.T, name, uniqueid string) (*Summary, *partition.Spool) {
	t.Helper()
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
		err := spool.UpdateMailboxes(partition.CyrusOwner(), func(tx *partition.MailboxesTx) error {
			return tx.Put(partition.Entry{Name: name, UniqueID: uniqueid, Partition: "default",
				Type: "e", UIDValidity: 1, CreatedModseq: 1, FolderModseq: 1, MTime: 1,
				ACL: partition.ParseACL("dave\tlrswipkxtecdan\t")})
		})
		if err != nil {
			t.Error(err)
		}
	})
	return labRestore(t, lab, dumped, Options{MapUsers: map[string]string{"alice": "dave"}, Select: sel(t, "user.alice.Projects.Plans")}), spool
}
