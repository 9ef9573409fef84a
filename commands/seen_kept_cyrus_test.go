package commands

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/partition"
)

// TestRealCyrusRestoreKeptSeen checks that both modes treat another
// user's seen record of a mailbox that the restore leaves as it is alike,
// and never lose what the user has now. At the dump bob has read UIDs 1-2
// of alice's team folder and 2-3 of shared.team; since, he has read UID 1
// of shared.team and marked UID 3 unread there. Cyrus changes the
// mailbox (the records' MODSEQ) with any change of bob's seen set, so his
// record of a mailbox that is still identical to the dump's can differ
// from the dump's only in what Cyrus writes without touching the mailbox
// or by losing it: the test moves its LASTREAD and LASTCHANGE a day
// later, in bob's seen db, and later removes both records. A restore of
// the whole dump keeps every mailbox (identical) and leaves bob's records
// as they are now, that of alice's folder (kept) as that of shared.team
// (not in the dump); where bob has no record (lost since), the dump's is
// written. Both modes run one after the other on the same server.
func TestRealCyrusRestoreKeptSeen(t *testing.T) {
	lab, m, _ := aliceLab(t)
	file := filepath.Join(t.TempDir(), "all.dlist")
	if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "--user", "bob", "-o", file); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	boxes := []string{"user.alice.team", "shared.team"}
	bobSeen := func() map[string][]string {
		t.Helper()
		c := lab.IMAP(t, "bob")
		defer c.Close()
		got := map[string][]string{}
		for _, mb := range boxes {
			if _, err := c.Examine(mb); err != nil {
				t.Fatal(err)
			}
			msgs, err := c.UIDFetch("1:*", "(FLAGS)")
			if err != nil {
				t.Fatal(err)
			}
			got[mb] = []string{}
			for _, msg := range msgs {
				if msg.HasFlag(`\Seen`) {
					got[mb] = append(got[mb], fmt.Sprint(msg.UID))
				}
			}
		}
		return got
	}
	atDump := bobSeen()
	if want := []string{"1", "2"}; !reflect.DeepEqual(atDump["user.alice.team"], want) {
		t.Fatalf("bob's seen UIDs of alice's team folder at the dump: %v, want %v", atDump["user.alice.team"], want)
	}
	// Since the dump bob has read UID 1 of shared.team and marked UID 3
	// unread (which changes the mailbox too: Cyrus gives the records a
	// new MODSEQ), and opened alice's team folder again, which changes
	// only his record of it (moved a day later in his seen db, below).
	uids := map[string]string{}
	for _, mb := range boxes {
		e, ok, err := openSpool(t, lab.Conf).LookupAny(mb)
		if err != nil || !ok {
			t.Fatalf("%s: %v, %v", mb, ok, err)
		}
		uids[mb] = e.UniqueID
	}
	rawAtDump := storedSeen(t, lab.Conf, "bob", uids["user.alice.team"])
	c := lab.IMAP(t, "bob")
	if _, err := c.Select("shared.team"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1", "+FLAGS", `(\Seen)`); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("3", "-FLAGS", `(\Seen)`); err != nil {
		t.Fatal(err)
	}
	c.Close()
	err := openSpool(t, lab.Conf).UpdateSeen(nil, "bob", partition.CyrusOwner(), 0, func(tx *partition.TwoskipTx) error {
		key := []byte(uids["user.alice.team"])
		v, _, err := tx.Get(key)
		if err != nil {
			return err
		}
		r, err := partition.ParseSeen(key, v)
		if err != nil {
			return err
		}
		r.LastRead += 86400
		r.LastChange += 86400
		tx.Set(key, partition.EncodeSeen(r))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := bobSeen()
	if reflect.DeepEqual(now, atDump) {
		t.Fatalf("bob's seen state did not change: %v", now)
	}
	raw := map[string]string{}
	for mb, id := range uids {
		raw[mb] = storedSeen(t, lab.Conf, "bob", id)
	}
	if raw["user.alice.team"] == rawAtDump {
		t.Fatalf("bob's record of alice's team folder did not change: %q", rawAtDump)
	}

	var outs []string
	for _, mode := range []string{"offline", "server"} {
		code, out := m.in(mode, file)
		if code != ExitOK || !strings.Contains(out, "0 refused, 8 already present") {
			t.Fatalf("%s: restore of the whole dump: exit %d\n%s", mode, code, out)
		}
		outs = append(outs, out)
		if got := bobSeen(); !reflect.DeepEqual(got, now) {
			t.Errorf("%s: bob's seen UIDs after the restore %v; he had %v (at the dump %v)", mode, got, now, atDump)
		}
		for mb, id := range uids {
			if got := storedSeen(t, lab.Conf, "bob", id); got != raw[mb] {
				t.Errorf("%s: bob's record of %s after the restore %q; he had %q", mode, mb, got, raw[mb])
			}
		}
	}
	if outs[0] != outs[1] {
		t.Errorf("offline and --server print differently:\n%s\n%s", outs[0], outs[1])
	}

	// bob's records lost: the dump's are written, in both modes.
	s := openSpool(t, lab.Conf)
	for _, mode := range []string{"offline", "server"} {
		err := s.UpdateSeen(nil, "bob", partition.CyrusOwner(), 0, func(tx *partition.TwoskipTx) error {
			for _, mb := range boxes {
				e, ok, err := s.LookupAny(mb)
				if err != nil || !ok {
					t.Fatalf("%s: %v, %v", mb, ok, err)
				}
				tx.Delete([]byte(e.UniqueID))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := bobSeen(); len(got["user.alice.team"])+len(got["shared.team"]) != 0 {
			t.Fatalf("bob's records removed, he still has seen %v", got)
		}
		if code, out := m.in(mode, file); code != ExitOK {
			t.Fatalf("%s: restore of the whole dump: exit %d\n%s", mode, code, out)
		}
		if got := bobSeen(); !reflect.DeepEqual(got, atDump) {
			t.Errorf("%s: bob had no records; after the restore he has seen %v, want the dump's %v", mode, got, atDump)
		}
	}
}
