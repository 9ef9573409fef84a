package partition

import (
	"errors"
	"sort"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
)

// idTableAnswer is what a table of every N record of mailboxes.db says of
// each uniqueid, as seen-cleanup built it before LookupID: the entry of
// the highest rank (real, then intermediate or remote, then tombstone),
// the first in database order among equals. LookupID must give the same
// answer for every uniqueid.
func idTableAnswer(t *testing.T, s *Spool) map[string]Entry {
	t.Helper()
	table := make(map[string]Entry)
	err := s.AllEntries(func(e Entry) error {
		if e.UniqueID == "" {
			return nil
		}
		if old, ok := table[e.UniqueID]; !ok || s.Liveness(e) > s.Liveness(old) {
			table[e.UniqueID] = e
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// idsOf returns every uniqueid mailboxes.db names, in an I key or an N
// record, sorted.
func idsOf(t *testing.T, s *Spool) []string {
	t.Helper()
	set := make(map[string]bool)
	for id := range idTableAnswer(t, s) {
		set[id] = true
	}
	db, err := cyrusdb.OpenTwoskip(s.Config.MboxlistPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.ForEach([]byte("I"), func(k, _ []byte) error {
		set[string(k[1:])] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// checkLookupIDAgrees compares LookupID with the table of every N record
// for every uniqueid in mailboxes.db and for one in none, and returns how
// many uniqueids it compared.
func checkLookupIDAgrees(t *testing.T, s *Spool) int {
	t.Helper()
	table := idTableAnswer(t, s)
	ids := append(idsOf(t, s), "zz0nowhere000000000000000")
	for _, id := range ids {
		got, ok, err := s.LookupID(id)
		if err != nil {
			t.Errorf("LookupID(%s): %v", id, err)
			continue
		}
		want, wantOK := table[id]
		if ok != wantOK || got.Name != want.Name || got.Type != want.Type || got.Partition != want.Partition ||
			got.UniqueID != want.UniqueID || s.real(got) != s.real(want) {
			t.Errorf("LookupID(%s) = %q type %q partition %q (found %v); the table of N records says %q type %q partition %q (found %v)",
				id, got.Name, got.Type, got.Partition, ok, want.Name, want.Type, want.Partition, wantOK)
		}
	}
	return len(ids)
}

// setRecords writes raw mailboxes.db records, key to value; the value "-"
// deletes the key.
func setRecords(t *testing.T, s *Spool, recs map[string]string) {
	t.Helper()
	err := s.UpdateTwoskip(s.Config.MboxlistPath, false, Owner{UID: -1, GID: -1}, func(tx *TwoskipTx) error {
		for k, v := range recs {
			if v == "-" {
				tx.Delete([]byte(k))
				continue
			}
			tx.Set([]byte(k), []byte(v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func nkey(name string) string { return string(NameKey(name)) }
func ikey(id string) string   { return string(IDKey(id)) }
func dbn(name string) string  { return nameToDBName(name) }

// TestLookupID pins LookupID's answer for each way Cyrus 3.6.1 leaves the
// I and N records of a uniqueid (docs/cyrus/files.md §7; the records are
// shaped as the real-Cyrus test of lookupid_cyrus_test.go saw them), and
// checks that it agrees with the table of every N record for every
// uniqueid of the database.
func TestLookupID(t *testing.T) {
	s, _ := openFixture(t)
	const (
		delayed  = "d0delayed000000000000000"
		imm      = "d0immediate0000000000000"
		expired  = "d0expired000000000000000"
		reusedA  = "d0reusedold0000000000000"
		reusedB  = "d0reusednew0000000000000"
		nI       = "d0noirecord0000000000000"
		mid      = "d0intermediate000000000"
		twice    = "d0renamedthendeleted000"
		remote   = "d0remote0000000000000000"
		badI     = "d0badirecord00000000000"
		ts       = " V 1796303951 C 1 F 3 M 1796303950"
		realVals = " P default V 1796303951 C 1 F 3 M 1796303950 A %(bob lrswipkxtecdan)"
	)
	setRecords(t, s, map[string]string{
		// delete_mode: delayed: a tombstone under the old name, the mailbox
		// under DELETED.*, the I record naming the latter.
		nkey("user.bob.gone"):                  "%(T ed I " + delayed + ts + ")",
		nkey("DELETED.user.bob.gone.6B116C4E"): "%(T e I " + delayed + realVals + ")",
		ikey(delayed):                          "%(T e N " + dbn("DELETED.user.bob.gone.6B116C4E") + realVals + " H (%(N " + dbn("user.bob.gone") + " M 1796303950 V 1796303951 C 1 F 3 T ed)))",
		// delete_mode: immediate: the I record names the tombstone.
		nkey("user.bob.imm"): "%(T ed I " + imm + ts + ")",
		ikey(imm):            "%(T ed N " + dbn("user.bob.imm") + ts + " H ())",
		// The DELETED.* copy removed since: its N record is gone, its I
		// record stays, and the tombstone under the first name is all
		// that carries the uniqueid.
		nkey("user.bob.exp"): "%(T ed I " + expired + ts + ")",
		ikey(expired):        "%(T e N " + dbn("DELETED.user.bob.exp.6B116C77") + realVals + " H (%(N " + dbn("user.bob.exp") + " M 1796303950 V 1796303951 C 1 F 3 T ed)))",
		// An I record naming a name another mailbox has now.
		ikey(reusedA):           "%(T ed N " + dbn("user.bob.reused") + ts + " H ())",
		nkey("user.bob.reused"): "%(T e I " + reusedB + realVals + ")",
		ikey(reusedB):           "%(T e N " + dbn("user.bob.reused") + realVals + " H ())",
		// An N record without an I record (not one Cyrus writes): LookupID
		// follows Cyrus, which finds no mailbox by this uniqueid either.
		nkey("user.bob.noi"): "%(T e I " + nI + realVals + ")",
		// An intermediate.
		nkey("user.bob.mid"): "%(T ei I " + mid + ts + ")",
		ikey(mid):            "%(T ei N " + dbn("user.bob.mid") + ts + " H ())",
		// Renamed from zA to zB, then deleted at once: two tombstones;
		// the first in database order wins, as in the table.
		nkey("user.bob.zA"): "%(T ed I " + twice + ts + ")",
		nkey("user.bob.zB"): "%(T ed I " + twice + ts + ")",
		ikey(twice):         "%(T ed N " + dbn("user.bob.zB") + ts + " H (%(N " + dbn("user.bob.zA") + " M 1796303950 V 1796303951 C 1 F 3 T ed)))",
		// A remote mailbox.
		nkey("user.bob.far"): "%(T er I " + remote + " S other V 1796303951 C 1 F 3 M 1796303950)",
		ikey(remote):         "%(T er N " + dbn("user.bob.far") + " S other V 1796303951 C 1 F 3 M 1796303950 H ())",
		ikey(badI):           "%(T e P default)",
	})

	alice, err := s.Lookup("user.alice.Sent")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id       string
		name     string // "" for not found
		real     bool
		deleted  bool
		interest string
	}{
		{alice.UniqueID, "user.alice.Sent", true, false, "a live mailbox"},
		{delayed, "DELETED.user.bob.gone.6B116C4E", true, false, "delayed delete: the DELETED.* copy, not the tombstone"},
		{imm, "user.bob.imm", false, true, "immediate delete: the tombstone"},
		{expired, "user.bob.exp", false, true, "stale I record: the tombstone of a former name"},
		{reusedA, "", false, false, "stale I record whose name another mailbox took"},
		{reusedB, "user.bob.reused", true, false, "the mailbox that took the name"},
		{nI, "", false, false, "no I record"},
		{mid, "user.bob.mid", false, false, "an intermediate"},
		{twice, "user.bob.zA", false, true, "two tombstones: the first in database order"},
		{remote, "user.bob.far", false, false, "a remote mailbox"},
		{"", "", false, false, "the empty uniqueid"},
		{"zz0nowhere000000000000000", "", false, false, "a uniqueid in no record"},
	} {
		e, ok, err := s.LookupID(c.id)
		if err != nil {
			t.Errorf("%s: %v", c.interest, err)
			continue
		}
		if ok != (c.name != "") || e.Name != c.name || s.real(e) != c.real || e.Deleted() != c.deleted ||
			ok && e.UniqueID != c.id {
			t.Errorf("%s: LookupID(%q) = %q (uniqueid %q, found %v, real %v, deleted %v); want %q (real %v, deleted %v)",
				c.interest, c.id, e.Name, e.UniqueID, ok, s.real(e), e.Deleted(), c.name, c.real, c.deleted)
		}
	}

	_, _, err = s.LookupID(badI)
	if !errors.Is(err, ErrBadFormat) {
		t.Errorf("an I record without N: %v, want ErrBadFormat", err)
	}
	setRecords(t, s, map[string]string{ikey(badI): "-"})

	// The table of every N record says the same of every uniqueid, except
	// of nI, whose N record has no I record (Cyrus never writes one).
	setRecords(t, s, map[string]string{nkey("user.bob.noi"): "-"})
	if n := checkLookupIDAgrees(t, s); n < 19 {
		t.Errorf("compared %d uniqueids, want every one of the fixture and of this test", n)
	}
}

// TestLookupIDWithoutIRecords: in a mailboxes.db without I records (a
// pre-3.5 one Cyrus has not upgraded) a uniqueid that is not found is an
// error, not "no mailbox has it", which would make every seen record an
// orphan; a found one is answered as usual once I records exist.
func TestLookupIDWithoutIRecords(t *testing.T) {
	s := walkSpool(t, []string{"user.alice", "user.alice.Sent", "user.bob"}) // N records only
	alice, err := s.Lookup("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	_, ok, err := s.LookupID(alice.UniqueID)
	if !errors.Is(err, ErrNoIDRecords) || ok {
		t.Fatalf("LookupID in a database without I records: found %v, %v; want ErrNoIDRecords", ok, err)
	}
	setRecords(t, s, map[string]string{ikey(alice.UniqueID): "%(T e I " + alice.UniqueID + " N " + dbn("user.alice") + " P default V 1700000000 C 1 F 1 M 1700000000 A %(admin lrswipkxtecdan))"})
	e, ok, err := s.LookupID(alice.UniqueID)
	if err != nil || !ok || e.Name != "user.alice" {
		t.Fatalf("LookupID with the I record: %q, %v, %v", e.Name, ok, err)
	}
	_, ok, err = s.LookupID("0000000000000000000000ff")
	if err != nil || ok {
		t.Errorf("LookupID of an unknown uniqueid once I records exist: %v, %v", ok, err)
	}
}
