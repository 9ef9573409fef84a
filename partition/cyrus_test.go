package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// The tests in this file run against a live Cyrus 3.6 (internal/cyruslab):
// they skip without one, or fail when MBTOOL_REAL_CYRUS=1.

func openLab(t *testing.T, lab *cyruslab.Lab) *Spool {
	t.Helper()
	cfg, err := LoadConfig(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLab(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			t.Parallel()
			lab := cyruslab.Start(t, cyruslab.Options{LegacyDirs: legacy})
			lab.Populate(t)
			// A deleted mailbox leaves a tombstone and a DELETED.* copy
			// (delete_mode: delayed): the tombstone is skipped, the copy is
			// its owner's mailbox.
			admin := lab.IMAP(t, lab.Admin)
			if err := admin.Create("user.bob.gone"); err != nil {
				t.Fatal(err)
			}
			if err := admin.SetACL("user.bob.gone", lab.Admin, "lrswipkxtecda"); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Command("DELETE", "user.bob.gone"); err != nil {
				t.Fatal(err)
			}
			s := openLab(t, lab)
			checkDeleted(t, s)
			checkLockFiles(t, s)
			examine := func(names ...string) string { return lab.Tool(t, "mbexamine", names...) }
			entries := checkSpoolWithMbexamine(t, s, examine, lab.Partition, lab.ConfigDir)
			for _, e := range entries {
				if e.LegacyDirs() != legacy {
					t.Errorf("%s: type %q", e.Name, e.Type)
				}
			}
			checkPaths(t, s, entries, func(args ...string) string { return lab.Tool(t, "mbpath", args...) })
			checkUserDBs(t, s, func(args ...string) string { return lab.Tool(t, "cyr_dbtool", args...) })
			checkLabContent(t, s)
			if !legacy {
				// Last: it changes the lab.
				t.Run("live", func(t *testing.T) { liveConsistency(t, lab, s, 3*time.Second) })
			}
		})
	}
}

// checkPaths compares Dirs, MetaPath, ArchiveDir, SeenPath and SubsPath
// with `mbpath -7 -j`.
func checkPaths(t *testing.T, s *Spool, entries []Entry, mbpath func(args ...string) string) {
	t.Helper()
	users := map[string]bool{}
	for _, e := range entries {
		var got struct {
			Archive, Data, Meta string
			User                struct{ Seen, Sub string }
		}
		if err := json.Unmarshal([]byte(mbpath("-7", "-j", e.Name)), &got); err != nil {
			t.Fatalf("mbpath %s: %v", e.Name, err)
		}
		data, meta, err := s.Dirs(e)
		if err != nil {
			t.Fatal(err)
		}
		arch, _ := s.ArchiveDir(e)
		if data != got.Data || meta != got.Meta || arch != got.Archive {
			t.Errorf("%s: dirs %s %s %s, mbpath %+v", e.Name, data, meta, arch, got)
		}
		if idx, _ := s.MetaPath(e, FileIndex); idx != filepath.Join(got.Meta, FileIndex) {
			t.Errorf("%s: index %s", e.Name, idx)
		}
		if u := e.Owner(s.Config); u != "" && !users[u] {
			users[u] = true
			seen, err1 := s.SeenPath(u)
			sub, err2 := s.SubsPath(u)
			if err1 != nil || err2 != nil || seen != got.User.Seen || sub != got.User.Sub {
				t.Errorf("%s: seen %s sub %s (%v %v), mbpath %+v", u, seen, sub, err1, err2, got.User)
			}
		}
	}
	if len(users) < 2 {
		t.Errorf("users %v", users)
	}
}

// checkUserDBs compares ReadSeen and ReadSubs with cyr_dbtool's dump of
// the same files.
func checkUserDBs(t *testing.T, s *Spool, dbtool func(args ...string) string) {
	t.Helper()
	users, err := s.Users()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(users, ",") != "alice,bob" {
		t.Errorf("users %v", users)
	}
	for _, u := range users {
		path, _ := s.SeenPath(u)
		recs, err := s.ReadSeen(u)
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for _, r := range recs {
			fmt.Fprintf(&got, "%s\t%s\n", r.UniqueID, r.Raw)
			if want := fmt.Sprintf("1 %d %d %d %s", r.LastRead, r.LastUID, r.LastChange, r.SeenUIDs); want != string(r.Raw) {
				t.Errorf("%s seen %s: parsed %q, raw %q", u, r.UniqueID, want, r.Raw)
			}
		}
		if want := dbtool(path, "twoskip", "show"); got.String() != want || len(recs) == 0 {
			t.Errorf("%s seen:\n%s\ncyr_dbtool:\n%s", u, got.String(), want)
		}

		path, _ = s.SubsPath(u)
		subs, err := s.ReadSubs(u)
		if err != nil {
			t.Fatal(err)
		}
		// cyr_dbtool shows the raw keys; map them as ReadSubs does.
		inbox := nameToDBName(s.userInbox(u))
		var want []string
		show := ""
		if _, err := os.Stat(path); err == nil {
			show = dbtool(path, "flat", "show")
		}
		for _, line := range strings.Split(strings.TrimSuffix(show, "\n"), "\n") {
			k, _, _ := strings.Cut(line, "\t")
			if k == "" || k == subsVersionKey {
				continue
			}
			want = append(want, dbnameToName(strings.Replace(strings.TrimPrefix(k, "N"), "INBOX", inbox, 1)))
		}
		if strings.Join(subs, "|") != strings.Join(want, "|") {
			t.Errorf("%s subs %q, cyr_dbtool %q", u, subs, want)
		}
	}
}

// checkLabContent checks what cyruslab's standard content puts in: quota
// on user.alice, annotations, \Seen and user flags.
func checkLabContent(t *testing.T, s *Spool) {
	t.Helper()
	q, err := s.ReadQuota("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	if q.Limits[QuotaStorage] <= 0 || q.Usage[QuotaStorage] <= 0 || q.Usage[QuotaNumFolders] < 5 || q.Modseq == 0 {
		t.Errorf("quota %+v", q)
	}
	if _, err := s.ReadQuota("user.bob"); err == nil {
		t.Errorf("quota of user.bob exists")
	}
	alice, err := s.UserMailboxes("alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var annots []string
	for _, e := range alice {
		if !strings.HasPrefix(e.Name, "user.alice") || e.Owner(s.Config) != "alice" {
			t.Errorf("alice has %s", e.Name)
		}
		m, err := s.OpenMailbox(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range m.Annotations() {
			annots = append(annots, fmt.Sprintf("%s %s %q %q", e.Name, a.Entry, a.UserID, a.Value))
		}
		m.Records(func(r Record) error {
			for _, a := range m.RecordAnnotations(r.UID) {
				annots = append(annots, fmt.Sprintf("%s/%d %s %q %q", e.Name, r.UID, a.Entry, a.UserID, a.Value))
			}
			return nil
		})
		m.Close()
	}
	t.Logf("annotations: %q", annots)
	joined := strings.Join(annots, "\n")
	if !strings.Contains(joined, `user.alice.Sent /specialuse "alice" "\\Sent"`) ||
		!strings.Contains(joined, `user.alice.team /comment "" `) {
		t.Errorf("annotations %s", joined)
	}
}

// checkLockFiles opens every mailbox and checks that no lock file appears
// that Cyrus had not made itself: the namespace and name locks taken are
// the very files Cyrus locks.
func checkLockFiles(t *testing.T, s *Spool) {
	t.Helper()
	list := func() map[string]bool {
		m := map[string]bool{}
		filepath.WalkDir(s.Config.LockPath, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				m[p] = true
			}
			return nil
		})
		return m
	}
	before := list()
	entries, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		m, err := s.OpenMailbox(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	after := list()
	for p := range after {
		if !before[p] {
			t.Errorf("lock file %s made by us, not by Cyrus", p)
		}
	}
	if len(before) < len(entries) {
		t.Errorf("only %d lock files for %d mailboxes", len(before), len(entries))
	}
}

// checkDeleted checks that the deleted user.bob.gone is neither listed
// nor found, though mailboxes.db holds its tombstone and DELETED copy.
func checkDeleted(t *testing.T, s *Spool) {
	t.Helper()
	if _, err := s.Lookup("user.bob.gone"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("lookup of deleted mailbox: %v", err)
	}
	tomb, ok, err := s.lookupAny("user.bob.gone")
	if err != nil || !ok || !tomb.Deleted() {
		t.Errorf("tombstone %+v %v %v", tomb, ok, err)
	}
	var deleted []string
	s.AllEntries(func(e Entry) error {
		if strings.HasPrefix(e.Name, "DELETED.") {
			deleted = append(deleted, e.Name)
		}
		return nil
	})
	if len(deleted) != 1 || !strings.HasPrefix(deleted[0], "DELETED.user.bob.gone.") {
		t.Errorf("DELETED entries %q", deleted)
	}
	// The DELETED.* copy is a mailbox, listed with its owner's as Cyrus
	// lists them for replication; the tombstone is not.
	entries, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, e := range entries {
		if strings.Contains(e.Name, "gone") {
			gone = append(gone, e.Name)
		}
	}
	if len(deleted) == 1 && !reflect.DeepEqual(gone, deleted) {
		t.Errorf("Mailboxes lists %q, want %q", gone, deleted)
	}
	bob, err := s.UserMailboxes("bob")
	if err != nil || len(bob) != 2 || bob[0].Name != "user.bob" || len(deleted) == 1 && bob[1].Name != deleted[0] {
		t.Errorf("bob's mailboxes %+v %v", bob, err)
	}
	if len(deleted) == 1 {
		if e, err := s.Lookup(deleted[0]); err != nil || e.Owner(s.Config) != "bob" {
			t.Errorf("lookup of %s: %+v %v", deleted[0], e, err)
		}
	}
}
