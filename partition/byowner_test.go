package partition

import (
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
)

// TestMailboxesByOwner checks the one walk of mailboxes.db against a call
// of UserMailboxes per user, on names where a prefix of one user's is
// another's (alice, alice2, alice.x), deleted copies, virtual domains,
// shared mailboxes, and entries that are no mailbox (a tombstone, an
// intermediate).
func TestMailboxesByOwner(t *testing.T) {
	dir := t.TempDir()
	conf := "configdirectory: " + dir + "/config\npartition-default: " + dir + "/spool\n" +
		"defaultpartition: default\nvirtdomains: userid\ndefaultdomain: example.org\n"
	cfg, err := ParseConfig(strings.NewReader(conf), "byowner.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir+"/config", 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{
		"user.alice", "user.alice.Sent", "user.alice.Sent.2024", "user.alice2", "user.alice2.Trash",
		"user.alice^x", "user.alice^x.Drafts", "user.bob.Orphan", "shared", "shared.team",
		"DELETED.user.alice.Old.6B0F37A3", "DELETED.user.alice2.Gone.6B0F37A4",
		"example.com!user.alice", "example.com!user.alice.Sent", "example.com!DELETED.user.alice.X.6B0F37A5",
		"example.com!shared", "other.net!user.zed",
	}
	var recs [][2]string
	for i, n := range names {
		typ := "e"
		switch n {
		case "user.alice2.Trash":
			typ = "d" // a tombstone: no mailbox
		case "shared":
			typ = "i" // an intermediate: no mailbox
		}
		id := strings.Repeat("a", 20) + string(rune('a'+i))
		recs = append(recs, [2]string{"N" + nameToDBName(n),
			"%(T " + typ + " I " + id + " P default V 1700000000 C 1 F 1 M 1700000000 A %(admin lrswipkxtecdan))"})
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i][0] < recs[j][0] })
	f, err := os.Create(cfg.MboxlistPath)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	if err := cyrusdb.WriteTwoskip(f, 1, func() ([]byte, []byte, bool) {
		if i == len(recs) {
			return nil, nil, false
		}
		i++
		return []byte(recs[i-1][0]), []byte(recs[i-1][1]), true
	}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// carol owns no mailbox but subscribes to some: a user all the same.
	if err := os.MkdirAll(dir+"/config/user/c", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/config/user/c/carol.sub", []byte("shared.team\t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Spool{Config: cfg}

	users, byUser, shared, err := s.MailboxesByOwner()
	if err != nil {
		t.Fatal(err)
	}
	wantUsers, err := s.Users()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(users, wantUsers) {
		t.Errorf("MailboxesByOwner gives the users %q, Users %q", users, wantUsers)
	}
	listed := 0
	for _, u := range users {
		want, err := s.UserMailboxes(u)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := entryNames(byUser[u]), entryNames(want); !reflect.DeepEqual(got, want) {
			t.Errorf("user %s: MailboxesByOwner gives %q, UserMailboxes %q", u, got, want)
		}
		listed += len(want)
	}
	for u := range byUser {
		if !slices.Contains(users, u) {
			t.Errorf("MailboxesByOwner lists mailboxes of %s, who is not among the users", u)
		}
	}
	all, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var wantShared []Entry
	for _, e := range all {
		if e.Owner(cfg) == "" {
			wantShared = append(wantShared, e)
		}
	}
	if got, want := entryNames(shared), entryNames(wantShared); !reflect.DeepEqual(got, want) {
		t.Errorf("shared: %q, want %q", got, want)
	}
	if listed+len(shared) < 10 {
		t.Errorf("only %d mailboxes listed: the test's names are not what it means", listed+len(shared))
	}
}

func entryNames(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}
