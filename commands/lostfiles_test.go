package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

var newID = regexp.MustCompile(`uniqueid [0-9a-z]{24}`)

// TestRealCyrusRestoreLostFiles: a mailbox P of the dump some (or all) of
// whose message files were lost from the spool before the dump (the dump
// warns and writes the records without their files), and its child P.C.
// Both restores bring P back with every record, each whose file is
// missing kept as expunged (its UID never reused, UIDNEXT not lowered),
// with a warning per record and exit 3, and restore P.C under it; the
// dry runs and the real runs print the same in both modes, and the two
// targets hold the same records; a rerun finds both identical.
func TestRealCyrusRestoreLostFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		lost []uint32
	}{{"one", []uint32{2}}, {"all", []uint32{1, 2, 3}}} {
		t.Run(tc.name, func(t *testing.T) {
			lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
			t.Setenv(DefaultPasswordEnv, lab.Password)
			m := restoreModes{t: t, lab: lab}
			admin := lab.IMAP(t, lab.Admin)
			if err := admin.Create("user.alice"); err != nil {
				t.Fatal(err)
			}
			c := lab.IMAP(t, "alice")
			for _, name := range []string{"INBOX.P", "INBOX.P.C"} {
				if err := c.Create(name); err != nil {
					t.Fatal(err)
				}
			}
			for i := 1; i <= 3; i++ {
				msg := fmt.Sprintf("Subject: p%d\r\n\r\nbody %d\r\n", i, i)
				if _, err := c.Append("INBOX.P", nil, time.Time{}, []byte(msg)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Append("INBOX.P.C", nil, time.Time{}, []byte("Subject: c\r\n\r\nchild\r\n")); err != nil {
				t.Fatal(err)
			}
			// The HIGHESTMODSEQ and UIDVALIDITY a QRESYNC client of P
			// had cached at the dump.
			p, err := c.Examine("INBOX.P")
			if err != nil {
				t.Fatal(err)
			}
			cachedUV, cachedHMS := p.UIDValidity, p.HighestModSeq
			dir := strings.TrimSpace(lab.Tool(t, "mbpath", "user.alice.P"))
			for _, uid := range tc.lost {
				if err := os.Remove(filepath.Join(dir, fmt.Sprintf("%d.", uid))); err != nil {
					t.Fatal(err)
				}
			}
			file := filepath.Join(t.TempDir(), "alice.dlist")
			if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "-o", file); code != ExitPartial {
				t.Fatalf("dump: exit %d, want %d (the lost files reported)\n%s", code, ExitPartial, out)
			}

			// One fresh target user per mode (users the lab can log in as,
			// without mailboxes); the reports are compared with the user's
			// name and the new uniqueids replaced (the dump's are in use).
			users := map[string]string{"offline": "bob", "server": "carol"}
			var reports [2][2]string
			var codes [2][2]int
			for i, mode := range []string{"offline", "server"} {
				user := users[mode]
				for j, dry := range []bool{true, false} {
					args := []string{"--map-user", "alice=" + user, file}
					if dry {
						args = append([]string{"--dry-run"}, args...)
					}
					code, out := m.in(mode, args...)
					codes[i][j], reports[i][j] = code, newID.ReplaceAllString(strings.ReplaceAll(out, user, "USER"), "uniqueid ID")
				}
			}
			for j, what := range []string{"dry run", "restore"} {
				if codes[0][j] != codes[1][j] || reports[0][j] != reports[1][j] {
					t.Errorf("%s: offline and --server differ:\noffline: exit %d\n%s--server: exit %d\n%s",
						what, codes[0][j], reports[0][j], codes[1][j], reports[1][j])
				}
				if codes[0][j] != ExitPartial {
					t.Errorf("%s offline: exit %d, want %d\n%s", what, codes[0][j], ExitPartial, reports[0][j])
				}
				for _, uid := range tc.lost {
					want := fmt.Sprintf("user.USER.P: UID %d: the dump has no message file for GUID ", uid)
					if !strings.Contains(reports[0][j], want) {
						t.Errorf("%s offline: no warning %q\n%s", what, want, reports[0][j])
					}
				}
			}
			if !strings.Contains(reports[0][1], "(3 created, 0 replaced, 0 merged, 0 refused, 0 already present, 0 skipped)") {
				t.Errorf("restore offline: want the 3 mailboxes created\n%s", reports[0][1])
			}

			// A rerun of the same restore finds every mailbox identical,
			// and says (exit 3) that P's lost records stay expunged (test
			// failed before: exit 0, nothing said).
			for _, mode := range []string{"offline", "server"} {
				code, out := m.in(mode, "--map-user", "alice="+users[mode], file)
				warn := fmt.Sprintf("user.%s.P: %d record(s) without a message file in the dump, expunged in the target", users[mode], len(tc.lost))
				if code != ExitPartial || !strings.Contains(out, "(0 created, 0 replaced, 0 merged, 0 refused, 3 already present, 0 skipped)") ||
					!strings.Contains(out, warn) || strings.Contains(out, "restored as expunged") {
					t.Errorf("%s: rerun: exit %d, want %d, 3 already present and %q\n%s", mode, code, ExitPartial, warn, out)
				}
			}

			// Both targets hold the same: P with its 3 UIDs, the lost ones
			// expunged, UIDNEXT 4; P.C with its message.
			s := openSpool(t, lab.Conf)
			var views [2]string
			for i, mode := range []string{"offline", "server"} {
				user := users[mode]
				var b strings.Builder
				uc := lab.IMAP(t, user)
				for _, f := range []string{"P", "P.C"} {
					name := "user." + user + "." + f
					mb, err := uc.Examine("INBOX." + f)
					if err != nil {
						t.Fatalf("%s: EXAMINE %s: %v", mode, f, err)
					}
					var uids []uint32
					if mb.Exists > 0 {
						msgs, err := uc.UIDFetch("1:*", "(UID)")
						if err != nil {
							t.Fatal(err)
						}
						for _, msg := range msgs {
							uids = append(uids, msg.UID)
						}
					}
					fmt.Fprintf(&b, "%s: IMAP UIDVALIDITY %d UIDNEXT %d HIGHESTMODSEQ %d UIDs %v\n",
						f, mb.UIDValidity, mb.UIDNext, mb.HighestModSeq, uids)
					e, ok, err := s.LookupAny(name)
					if err != nil || !ok {
						t.Fatalf("%s: %s: %v %v", mode, name, ok, err)
					}
					box, err := s.OpenMailbox(context.Background(), e)
					if err != nil {
						t.Fatal(err)
					}
					h := box.Index
					fmt.Fprintf(&b, "%s: index LAST_UID %d HIGHESTMODSEQ %d EXISTS %d SYNC_CRC %#x records",
						f, h.LastUID, h.HighestModseq, h.Exists, h.SyncCRC)
					err = box.Records(func(r partition.Record) error {
						fmt.Fprintf(&b, " %d/%d", r.UID, r.Modseq)
						if r.SystemFlags&partition.InternalExpunged != 0 {
							b.WriteString("/expunged")
						}
						if r.SystemFlags&partition.InternalUnlinked != 0 {
							b.WriteString("/unlinked")
						}
						return nil
					})
					box.Close()
					if err != nil {
						t.Fatal(err)
					}
					b.WriteString("\n")
					if out := lab.Tool(t, "reconstruct", "-n", name); strings.TrimSpace(out) != name {
						t.Errorf("%s: reconstruct -n %s:\n%s", mode, name, out)
					}
				}
				views[i] = b.String()
			}
			// Each lost record was expunged as one change above the
			// dump's HIGHESTMODSEQ: its MODSEQ and the mailbox's are
			// HIGHESTMODSEQ+1, and a QRESYNC client that cached P at the
			// dump is told the lost UIDs VANISHED (test failed before:
			// the MODSEQs as dumped, nothing VANISHED).
			for _, mode := range []string{"offline", "server"} {
				uc := lab.IMAP(t, users[mode])
				if _, err := uc.Command("ENABLE", "QRESYNC"); err != nil {
					t.Fatal(err)
				}
				r, err := uc.Command("SELECT", "INBOX.P", fmt.Sprintf("(QRESYNC (%d %d))", cachedUV, cachedHMS))
				if err != nil {
					t.Fatal(err)
				}
				var vanished []uint32
				var hms uint64
				for _, d := range r.Data {
					if d.Name == "VANISHED" {
						for _, f := range d.Fields {
							if f.List == nil {
								vanished = append(vanished, expandSet(f.Text)...)
							}
						}
					}
					if code := strings.Fields(d.Code); d.Name == "OK" && len(code) == 2 && code[0] == "HIGHESTMODSEQ" {
						hms, _ = strconv.ParseUint(code[1], 10, 64)
					}
				}
				slices.Sort(vanished)
				if !slices.Equal(vanished, tc.lost) || hms != cachedHMS+1 {
					t.Errorf("%s: SELECT P (QRESYNC (%d %d)): VANISHED %v, HIGHESTMODSEQ %d; want VANISHED %v, HIGHESTMODSEQ %d",
						mode, cachedUV, cachedHMS, vanished, hms, tc.lost, cachedHMS+1)
				}
			}
			for _, uid := range tc.lost {
				want := fmt.Sprintf(" %d/%d/expunged/unlinked", uid, cachedHMS+1)
				if !strings.Contains(views[0], want) {
					t.Errorf("P: UID %d: want MODSEQ %d (the dump's HIGHESTMODSEQ+1):\n%s", uid, cachedHMS+1, views[0])
				}
			}
			if want := fmt.Sprintf("P: index LAST_UID 3 HIGHESTMODSEQ %d ", cachedHMS+1); !strings.Contains(views[0], want) {
				t.Errorf("P: want %q:\n%s", want, views[0])
			}
			if views[0] != views[1] {
				t.Errorf("the targets differ:\noffline:\n%s--server:\n%s", views[0], views[1])
			}
			t.Logf("offline:\n%s", views[0])
			pIndex := strings.Split(views[0], "\n")[1]
			for uid := uint32(1); uid <= 3; uid++ {
				want := regexp.MustCompile(fmt.Sprintf(` %d/[0-9]+ `, uid))
				if slices.Contains(tc.lost, uid) {
					want = regexp.MustCompile(fmt.Sprintf(` %d/[0-9]+/expunged/unlinked\b`, uid))
				}
				if !want.MatchString(pIndex + " ") {
					t.Errorf("P: UID %d: want %s:\n%s", uid, want, views[0])
				}
			}
			if !strings.Contains(views[0], "UIDNEXT 4 ") || !strings.Contains(views[0], fmt.Sprintf("EXISTS %d ", 3-len(tc.lost))) {
				t.Errorf("offline: want P with UIDNEXT 4 and %d messages:\n%s", 3-len(tc.lost), views[0])
			}
		})
	}
}
