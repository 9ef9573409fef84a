package restore_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore"
)

// TestRegisterRechecksChangedMailboxes: a group's mailboxes are checked in
// mailboxes.db's view before they are placed, and looked up again in the
// transaction that registers them only if the database changed since. A
// name another writer registers in between (a client's CREATE) is
// refused, not overwritten; the rest of the group is registered.
func TestRegisterRechecksChangedMailboxes(t *testing.T) {
	var dump bytes.Buffer
	st, err := gen.WriteDump(&dump, gen.Options{Seed: 7, Users: 3, Messages: 30, SmallOnly: true, MeanSize: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	_, target, err := gen.OpenEmpty(filepath.Join(t.TempDir(), "target"))
	if err != nil {
		t.Fatal(err)
	}
	dry, err := restore.Run(context.Background(), target, bytes.NewReader(dump.Bytes()), restore.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Mailboxes) != int(st.Mailboxes) || st.Mailboxes < 3 {
		t.Fatalf("dry run: %d mailboxes, want %d", len(dry.Mailboxes), st.Mailboxes)
	}
	taken := dry.Mailboxes[len(dry.Mailboxes)/2].Name
	const theirs = "c1ient0created0it000000a"
	defer restore.SetPhaseHook(nil)
	created := false
	restore.SetPhaseHook(func(phase string) {
		if phase != "registering" || created {
			return
		}
		created = true
		err := target.UpdateMailboxes(partition.Owner{UID: -1, GID: -1}, func(tx *partition.MailboxesTx) error {
			return tx.Put(partition.Entry{Name: taken, UniqueID: theirs, Partition: "default", Type: "e",
				UIDValidity: 1, CreatedModseq: 1, FolderModseq: 1, MTime: 1})
		})
		if err != nil {
			t.Error(err)
		}
	})
	sum, err := restore.Run(context.Background(), target, bytes.NewReader(dump.Bytes()), restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("the run did not pass the phase registering")
	}
	for _, m := range sum.Mailboxes {
		switch {
		case m.Name == taken && (m.Action != restore.ActionRefuse || m.Applied || m.Reason != "created in the target meanwhile"):
			t.Errorf("%s, created between the check and the registration: %s applied=%v %q; want refused, created in the target meanwhile",
				m.Name, m.Action, m.Applied, m.Reason)
		case m.Name != taken && !m.Applied:
			t.Errorf("%s: %s applied=%v %q; want applied", m.Name, m.Action, m.Applied, m.Reason)
		}
	}
	if e, ok, err := target.LookupAny(taken); err != nil || !ok || e.UniqueID != theirs {
		t.Errorf("%s in the target: %+v, %v, %v; want the other writer's, uniqueid %s", taken, e, ok, err, theirs)
	}
}
