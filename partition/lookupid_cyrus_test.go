package partition

import (
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/internal/cyruslab"
)

// TestRealCyrusLookupID has a real Cyrus 3.6 delete, recreate, rename and
// expire mailboxes under both delete modes, and after each step checks
// that LookupID agrees, for every uniqueid of mailboxes.db, with the table
// of every N record that seen-cleanup used to build, and that the I
// records take the shapes docs/cyrus/files.md §7 describes.
func TestRealCyrusLookupID(t *testing.T) {
	for _, mode := range []string{"delayed", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testRealCyrusLookupID(t, mode)
		})
	}
}

func testRealCyrusLookupID(t *testing.T, mode string) {
	lab := cyruslab.Start(t, cyruslab.Options{ExtraConfig: "delete_mode: " + mode})
	lab.Populate(t)
	s := openLab(t, lab)
	admin := lab.IMAP(t, lab.Admin)
	run := func(args ...any) {
		t.Helper()
		if _, err := admin.Command(args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	del := func(name string) {
		t.Helper()
		run("SETACL", name, lab.Admin, "lrswipkxtecda")
		run("DELETE", name)
	}
	id := func(name string) string {
		t.Helper()
		e, ok, err := s.LookupAny(name)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", name, ok, err)
		}
		return e.UniqueID
	}
	// want checks LookupID's answer for uniqueid: the entry's name (""
	// for none) and whether it is a real mailbox, and then every
	// uniqueid against the table.
	want := func(step, uniqueid, name string, real bool) {
		t.Helper()
		e, ok, err := s.LookupID(uniqueid)
		if err != nil || ok != (name != "") || e.Name != name || s.real(e) != real {
			t.Errorf("%s: LookupID(%s) = %q, found %v, real %v, %v; want %q, real %v",
				step, uniqueid, e.Name, ok, s.real(e), err, name, real)
		}
		checkLookupIDAgrees(t, s)
	}
	deletedCopy := func(name string) string {
		t.Helper()
		var found []string
		err := s.AllEntries(func(e Entry) error {
			if strings.HasPrefix(e.Name, "DELETED."+name+".") && !strings.Contains(e.Name[len("DELETED."+name+"."):], ".") {
				found = append(found, e.Name)
			}
			return nil
		})
		if err != nil || len(found) == 0 {
			t.Fatalf("no deleted copy of %s: %v", name, err)
		}
		return found[len(found)-1]
	}

	checkLookupIDAgrees(t, s)
	sent := id("user.alice.Sent")
	want("a live mailbox", sent, "user.alice.Sent", true)

	// A rename leaves a tombstone under the old name; the uniqueid names
	// the new one.
	run("RENAME", "user.alice.Sent", "user.alice.Sent2")
	want("renamed", sent, "user.alice.Sent2", true)
	// The old name taken by a new mailbox: the renamed one keeps its
	// uniqueid's I record.
	run("CREATE", "user.alice.Sent")
	want("renamed, old name taken: the renamed one", sent, "user.alice.Sent2", true)
	want("renamed, old name taken: the new one", id("user.alice.Sent"), "user.alice.Sent", true)

	run("CREATE", "user.bob.gone")
	gone := id("user.bob.gone")
	del("user.bob.gone")
	if mode == "delayed" {
		// The mailbox moved to DELETED.*, where it is still bob's.
		copy1 := deletedCopy("user.bob.gone")
		want("deleted (delayed)", gone, copy1, true)
		if e, _, _ := s.LookupID(gone); e.Owner(s.Config) != "bob" {
			t.Errorf("the DELETED.* copy %s: owner %q, want bob", e.Name, e.Owner(s.Config))
		}
	} else {
		want("deleted (immediate)", gone, "user.bob.gone", false)
	}

	// The name taken again by a new mailbox.
	run("CREATE", "user.bob.gone")
	gone2 := id("user.bob.gone")
	if mode == "delayed" {
		want("recreated: the first one's DELETED.* copy", gone, deletedCopy("user.bob.gone"), true)
	} else {
		want("recreated: the first one is in no record", gone, "", false)
	}
	want("recreated: the new one", gone2, "user.bob.gone", true)

	// Intermediates: CREATE of a.b.c makes a and a.b as well; deleting
	// the user turns them into tombstones or intermediates.
	run("CREATE", "user.bob.a.b.c")
	abc := id("user.bob.a.b.c")
	want("a.b.c", abc, "user.bob.a.b.c", true)

	if mode == "delayed" {
		// Removing the DELETED.* copy leaves its I record naming an N
		// record that no longer exists; the tombstone under the first
		// name is all that still carries the uniqueid. The later
		// deleted copies are created a second apart: their names
		// carry the time in seconds.
		time.Sleep(1100 * time.Millisecond)
		del("user.bob.gone")
		copy2 := deletedCopy("user.bob.gone")
		want("deleted again", gone2, copy2, true)
		del(copy2)
		db, err := cyrusdb.OpenTwoskip(s.Config.MboxlistPath)
		if err != nil {
			t.Fatal(err)
		}
		v, iok, err := db.Get(IDKey(gone2))
		_, nok, err2 := db.Get(NameKey(copy2))
		db.Close()
		if err != nil || err2 != nil || !iok || nok || !strings.Contains(string(v), nameToDBName(copy2)) {
			t.Errorf("after deleting %s: I record %q (%v), N record there %v (%v); want a stale I record naming it",
				copy2, v, err, nok, err2)
		}
		want("DELETED.* copy removed", gone2, "user.bob.gone", false)
	}

	time.Sleep(1100 * time.Millisecond)
	del("user.bob")
	inbox := id("user.bob")
	if mode == "delayed" {
		want("user removed (delayed)", inbox, deletedCopy("user.bob"), true)
		want("user removed (delayed): a.b.c", abc, deletedCopy("user.bob.a.b.c"), true)
	} else {
		want("user removed (immediate)", inbox, "user.bob", false)
		want("user removed (immediate): a.b.c", abc, "user.bob.a.b.c", false)
	}
}
