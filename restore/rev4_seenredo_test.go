package restore

import (
	"testing"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/syncrec"
)

// A user's new seen db is left to the batch (partition.NewFiles); a Cyrus
// process creates the db before the batch names it, so Commit runs the
// writer's fn again on Cyrus's file. writeSeen's fn hands the same
// *syncrec.Seen to msgsel.MapSeen on each call, and MapSeen maps it in
// place (UIDMap.SeenRecord): the second call maps the already mapped
// UIDs again. This test makes that call sequence with writeSeen's own
// ingredients (a merge's UID map, SeenMerge, one Seen per record) and
// checks what the user ends up with.
func TestRev4SeenRedoMapsTwice(t *testing.T) {
	target := emptyTarget(t, "")
	var maps msgsel.UIDMaps
	defer maps.Close()
	m := maps.New()
	// A merge: the dump's UIDs 2 and 3 were appended as 101 and 102.
	if err := m.Renumber(2, 101); err != nil {
		t.Fatal(err)
	}
	if err := m.Renumber(3, 102); err != nil {
		t.Fatal(err)
	}
	if err := m.Finish(); err != nil {
		t.Fatal(err)
	}
	s := &syncrec.Seen{UserID: "bob", UniqueID: "u1", SeenUIDs: "1:3", LastUID: 3}
	key := []byte("u1")
	fn := func(tx *partition.TwoskipTx) error {
		cur := func() (*syncrec.Seen, bool, error) {
			v, ok, err := tx.Get(key)
			if err != nil || !ok {
				return nil, false, err
			}
			c, err := partition.ParseSeen(key, v)
			if err != nil {
				return nil, true, err
			}
			return &syncrec.Seen{LastRead: c.LastRead, LastUID: c.LastUID, LastChange: c.LastChange, SeenUIDs: c.SeenUIDs}, true, nil
		}
		ok, err := msgsel.MapSeen(msgsel.SeenMerge, m, s, cur)
		if err != nil {
			return err
		}
		if ok {
			tx.Set(key, encodeSeen(s))
		}
		return nil
	}
	created := false
	files := partition.NewFileBatch(func(fd int) error {
		if !created {
			// Cyrus creates bob's seen db between the batch's first
			// flush and its link (bob opened another mailbox).
			created = true
			err := target.UpdateSeen(nil, "bob", partition.Owner{UID: -1, GID: -1}, 0, func(tx *partition.TwoskipTx) error {
				tx.Set([]byte("other"), partition.EncodeSeen(partition.SeenRecord{LastUID: 5, SeenUIDs: "1:5"}))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err := target.UpdateSeen(files, "bob", partition.Owner{UID: -1, GID: -1}, 64, fn); err != nil {
		t.Fatal(err)
	}
	if err := files.Commit(); err != nil {
		t.Fatal(err)
	}
	recs, err := target.ReadSeen("bob")
	if err != nil {
		t.Fatal(err)
	}
	var got *partition.SeenRecord
	for i := range recs {
		if recs[i].UniqueID == "u1" {
			got = &recs[i]
		}
	}
	// Once mapped: the two appended messages, 101 and 102, are seen.
	if got == nil || got.SeenUIDs != "101:102" {
		t.Errorf("bob's record of u1 after the redo: %+v; want seen 101:102 (mapped once)", got)
	}
}
