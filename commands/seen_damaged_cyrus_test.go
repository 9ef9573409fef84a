package commands

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// TestRealCyrusRestoreDamagedSeen checks, in both modes, that a damaged
// seen record of the target's user concerns that record only: bob has
// read UIDs 1-2 of alice's team folder, alice expunges them after the
// dump, and an --undelete brings them back, so bob's current record of
// the folder is merged with the dump's. With that record damaged (a seen
// set that is no IMAP sequence set) it is reported as a problem of the
// folder and left as it is, and the rest of the user data still goes
// (alice's subscription to the folder, which she dropped); with bob's
// record of another mailbox damaged (shared.team), nothing is reported:
// only the records merged with are read.
func TestRealCyrusRestoreDamagedSeen(t *testing.T) {
	for _, which := range []string{"merged", "other"} {
		for _, mode := range []string{"offline", "server"} {
			t.Run(which+"-"+mode, func(t *testing.T) {
				lab, m, _ := aliceLab(t)
				file := filepath.Join(t.TempDir(), "all.dlist")
				if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "--user", "bob", "-o", file); code != ExitOK {
					t.Fatalf("dump: exit %d\n%s", code, out)
				}
				c := expungeTeam12(t, lab)
				if _, err := c.Command("UNSUBSCRIBE", cyruslab.Quote("INBOX.team")); err != nil {
					t.Fatal(err)
				}
				damaged := map[string]string{"merged": "user.alice.team", "other": "shared.team"}[which]
				uid, raw := damageSeen(t, lab.Conf, "bob", damaged)

				args := []string{"--undelete", "--mailbox", "user.alice.team", file}
				code, out := m.in(mode, args...)
				problem := "seen record of bob for " + uid + ": the user's current record: "
				if which == "merged" {
					if code != ExitPartial || !strings.Contains(out, "user.alice.team") || !strings.Contains(out, problem) ||
						!strings.Contains(out, "(left as it is)") {
						t.Errorf("restore with bob's record damaged: exit %d, want %d and the problem %q...\n%s", code, ExitPartial, problem, out)
					}
				} else if code != ExitOK {
					t.Errorf("restore with another record of bob damaged: exit %d\n%s", code, out)
				}
				if got := storedSeen(t, lab.Conf, "bob", uid); got != raw {
					t.Errorf("bob's damaged record of %s is now %q, was %q", damaged, got, raw)
				}
				// The user data after the seen state went too.
				c2 := lab.IMAP(t, "alice")
				defer c2.Close()
				r, err := c2.Command("LSUB", cyruslab.Quote(""), cyruslab.Quote("*"))
				if err != nil {
					t.Fatal(err)
				}
				subscribed := false
				for _, d := range r.Data {
					if d.Name == "LSUB" && len(d.Fields) == 3 && d.Fields[2].Text == "INBOX.team" {
						subscribed = true
					}
				}
				if !subscribed {
					t.Errorf("alice's subscription to INBOX.team was not restored\n%s", out)
				}
			})
		}
	}
}

// damageSeen replaces the seen set of user's record of mailbox, in the
// user's seen db, by one that is no sequence set, and returns the
// mailbox's uniqueid and the record as now stored.
func damageSeen(t *testing.T, conf, user, mailbox string) (string, string) {
	t.Helper()
	s := openSpool(t, conf)
	e, ok, err := s.LookupAny(mailbox)
	if err != nil || !ok {
		t.Fatalf("%s: %v, %v", mailbox, ok, err)
	}
	var raw []byte
	err = s.UpdateSeen(nil, user, partition.CyrusOwner(), 0, func(tx *partition.TwoskipTx) error {
		v, ok, err := tx.Get([]byte(e.UniqueID))
		if err != nil || !ok {
			t.Fatalf("%s's seen record of %s: %v, %v", user, mailbox, ok, err)
		}
		r, err := partition.ParseSeen([]byte(e.UniqueID), v)
		if err != nil {
			return err
		}
		r.SeenUIDs = "x:y"
		raw = partition.EncodeSeen(r)
		tx.Set([]byte(e.UniqueID), raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e.UniqueID, string(raw)
}

// storedSeen returns user's seen record of the mailbox uniqueid, as
// stored.
func storedSeen(t *testing.T, conf, user, uniqueid string) string {
	t.Helper()
	recs, err := openSpool(t, conf).ReadSeen(user)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.UniqueID == uniqueid {
			return string(r.Raw)
		}
	}
	return ""
}
