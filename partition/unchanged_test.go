package partition

import (
	"os"
	"syscall"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/lock"
)

// TestMailboxesTxUnchanged: a transaction of mailboxes.db tells whether
// it starts from the committed state a view showed (restore then does
// not look its group's mailboxes up again): yes while nobody wrote the
// file, and after a crashed writer's transaction is undone by recovery;
// no after a commit in place (the same inode), a checkpoint (another
// inode), and for a view of a file a writer left unclean, or none.
func TestMailboxesTxUnchanged(t *testing.T) {
	s, _ := openFixture(t)
	owner := Owner{UID: -1, GID: -1}
	state := func() MailboxesState {
		t.Helper()
		var st MailboxesState
		if err := s.ReadMailboxes(func(v *MailboxesView) error { st = v.State(); return nil }); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// unchanged reports tx.Unchanged(st) for each of sts, in a
	// transaction that changes nothing, or puts e.
	unchanged := func(put *Entry, sts ...MailboxesState) []bool {
		t.Helper()
		var got []bool
		err := s.UpdateMailboxes(owner, func(tx *MailboxesTx) error {
			for _, st := range sts {
				got = append(got, tx.Unchanged(st))
			}
			if put != nil {
				return tx.Put(*put)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	st1 := state()
	if st1.file == nil {
		t.Fatal("a view of the clean sample mailboxes.db names no state")
	}
	if got := unchanged(nil, st1, MailboxesState{}); !got[0] || got[1] {
		t.Fatalf("nothing written: Unchanged %v, want [true false]", got)
	}

	// A commit in place.
	e := fixtureEntry(t, s)
	e.Name, e.UniqueID = e.Name+".unchanged", "u1nchanged0000000000000a"
	ino := inode(t, s.Config.MboxlistPath)
	unchanged(&e)
	if inode(t, s.Config.MboxlistPath) != ino {
		t.Fatal("the commit replaced mailboxes.db: the in-place path is not tested")
	}
	st2 := state()
	if got := unchanged(nil, st1, st2); got[0] || !got[1] {
		t.Fatalf("after a commit in place: Unchanged %v, want [false true]", got)
	}

	// A checkpoint: another file, of the next generation.
	path := s.Config.MboxlistPath
	f, err := lock.OpenLocked(path, os.O_RDWR, true)
	if err != nil {
		t.Fatal(err)
	}
	err = writeCheckpoint(s.tree(), path, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if inode(t, path) == ino {
		t.Fatal("the checkpoint did not replace mailboxes.db")
	}
	st3 := state()
	if got := unchanged(nil, st2, st3); got[0] || !got[1] {
		t.Fatalf("after a checkpoint: Unchanged %v, want [false true]", got)
	}

	// A writer killed in its transaction: the file is DIRTY, and longer
	// than current_size (what it appended reached the file).
	f, err = lock.OpenLocked(path, os.O_RDWR, true)
	if err != nil {
		t.Fatal(err)
	}
	txn, err := cyrusdb.BeginTwoskip(path, f)
	if err == nil {
		err = txn.Set(NameKey(e.Name+".killed"), []byte("%(T e)"))
	}
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			_, err = f.WriteAt(make([]byte, 64), fi.Size())
		}
	}
	f.Close() // no Commit, no Abort
	if err != nil {
		t.Fatal(err)
	}
	if st := state(); st.file != nil {
		t.Fatal("a view of an unclean mailboxes.db names a state")
	}
	// Recovered by the transaction: the committed state is st3's.
	if got := unchanged(nil, st3); !got[0] {
		t.Fatalf("after recovery of a killed writer's transaction: Unchanged %v, want [true]", got)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
