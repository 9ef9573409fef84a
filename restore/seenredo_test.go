package restore

import (
	"testing"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/syncrec"
)

// A user's new seen db is left to the batch (partition.NewFiles); a Cyrus
// process creates the db before the batch names it, so Commit runs the
// writer's fn (writeSeen's applySeen) again on Cyrus's file. MapSeen maps
// a record in place (UIDMap.SeenRecord), so the second run must start
// from the dump's record again, not map the mapped UIDs a second time.
func TestSeenRedoMapsOnce(t *testing.T) {
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
	recs := []seenPut{{key: []byte("u1"), s: s, rule: msgsel.SeenMerge, uids: m, name: "user.alice.Sent"}}
	fn := func(tx *partition.TwoskipTx) error {
		if problems := applySeen(tx, recs, nil); len(problems) > 0 {
			t.Errorf("problems: %v", problems)
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
	stored, err := target.ReadSeen("bob")
	if err != nil {
		t.Fatal(err)
	}
	var got *partition.SeenRecord
	for i := range stored {
		if stored[i].UniqueID == "u1" {
			got = &stored[i]
		}
	}
	// Once mapped: the two appended messages, 101 and 102, are seen.
	if got == nil || got.SeenUIDs != "101:102" {
		t.Errorf("bob's record of u1 after the redo: %+v; want seen 101:102 (mapped once)", got)
	}
}
