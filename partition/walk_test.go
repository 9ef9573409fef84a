package partition

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
)

// walkSpool writes a mailboxes.db of the given names (type e, but
// "user.alice2.Trash" a tombstone and "shared" an intermediate) and a
// subscriptions file for carol, who owns no mailbox.
func walkSpool(t *testing.T, names []string) *Spool {
	t.Helper()
	dir := t.TempDir()
	conf := "configdirectory: " + dir + "/config\npartition-default: " + dir + "/spool\n" +
		"defaultpartition: default\nvirtdomains: userid\ndefaultdomain: example.org\n"
	cfg, err := ParseConfig(strings.NewReader(conf), "walk.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir+"/config/user/c", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/config/user/c/carol.sub", []byte("shared.team\t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var recs [][2]string
	for i, n := range names {
		typ := "e"
		switch n {
		case "user.alice2.Trash":
			typ = "d"
		case "shared":
			typ = "i"
		}
		id := fmt.Sprintf("%024x", i)
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
	return &Spool{Config: cfg}
}

// walkNames are names where a prefix of one user's is another's (alice,
// alice2, alice^x), deleted copies, virtual domains, shared mailboxes,
// and entries that are no mailbox (a tombstone, an intermediate), and
// enough users that a walk takes several chunks.
func walkNames() []string {
	names := []string{
		"user.alice", "user.alice.Sent", "user.alice.Sent.2024", "user.alice2", "user.alice2.Trash",
		"user.alice^x", "user.alice^x.Drafts", "user.bob.Orphan", "shared", "shared.team",
		"DELETED.user.alice.Old.6B0F37A3", "DELETED.user.alice2.Gone.6B0F37A4",
		"example.com!user.alice", "example.com!user.alice.Sent", "example.com!DELETED.user.alice.X.6B0F37A5",
		"example.com!shared", "other.net!user.zed",
	}
	for i := range 2*walkChunk + 37 {
		names = append(names, fmt.Sprintf("user.u%05d", i))
	}
	return names
}

// TestWalkEntries checks the chunked walks of mailboxes.db against one
// read of the whole database under one lock (mboxEntries), and that each
// chunk holds at most walkChunk records.
func TestWalkEntries(t *testing.T) {
	names := walkNames()
	s := walkSpool(t, names)

	for _, tc := range []struct {
		what string
		keep func(Entry) bool
	}{{"every record", nil}, {"real mailboxes", s.real}} {
		want, err := s.mboxEntries("", tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		var got []Entry
		chunks := 0
		err = s.walkEntries(tc.keep, func(c []Entry) error {
			chunks++
			if len(c) > walkChunk {
				t.Errorf("%s: a chunk of %d records", tc.what, len(c))
			}
			got = append(got, c...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if g, w := entryNames(got), entryNames(want); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: the walk gives %d names, one read %d", tc.what, len(g), len(w))
		}
		if chunks < 3 {
			t.Errorf("%s: %d chunks: the test does not cross a chunk's end", tc.what, chunks)
		}
	}

	// Users is the owners of real mailboxes, and carol.
	set := map[string]bool{"carol": true}
	for _, n := range names {
		if n == "user.alice2.Trash" || n == "shared" {
			continue
		}
		if u := (Entry{Name: n}).Owner(s.Config); u != "" {
			set[u] = true
		}
	}
	var wantUsers []string
	for u := range set {
		wantUsers = append(wantUsers, u)
	}
	sort.Strings(wantUsers)
	for _, u := range []string{"alice", "alice2", "alice.x", "bob", "carol", "alice@example.com", "zed@other.net"} {
		if !set[u] {
			t.Fatalf("the test's names have no user %s: %q...", u, wantUsers[:8])
		}
	}
	for u, want := range map[string][]string{
		"alice":             {"user.alice", "user.alice.Sent", "user.alice.Sent.2024", "DELETED.user.alice.Old.6B0F37A3"},
		"alice2":            {"user.alice2", "DELETED.user.alice2.Gone.6B0F37A4"},
		"alice.x":           {"user.alice^x", "user.alice^x.Drafts"},
		"bob":               {"user.bob.Orphan"},
		"carol":             {},
		"alice@example.com": {"example.com!user.alice", "example.com!user.alice.Sent", "example.com!DELETED.user.alice.X.6B0F37A5"},
		"u01024":            {"user.u01024"},
	} {
		got, err := s.UserMailboxes(u)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(entryNames(got), want) {
			t.Errorf("UserMailboxes(%s) = %q, want %q", u, entryNames(got), want)
		}
	}
	counted := 0
	users, err := s.UsersWalk(func(c []Entry) error { counted += len(c); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(users, wantUsers) {
		t.Errorf("UsersWalk gives %d users, want %d", len(users), len(wantUsers))
	}
	if want := len(names) - 2; counted != want {
		t.Errorf("UsersWalk passed on %d mailboxes, want %d", counted, want)
	}
}

// TestWalkEntriesResumes changes mailboxes.db between two chunks: the
// record the first chunk ended with is deleted and records are added
// before and after it. The walk goes on after the deleted key: it sees
// the one added after it, not the one added before, and no record twice.
func TestWalkEntriesResumes(t *testing.T) {
	s := walkSpool(t, walkNames())
	var got []string
	first := true
	err := s.walkEntries(nil, func(c []Entry) error {
		for _, e := range c {
			got = append(got, e.Name)
		}
		if !first {
			return nil
		}
		first = false
		last := c[len(c)-1].Name
		return s.UpdateTwoskip(s.Config.MboxlistPath, false, Owner{UID: -1, GID: -1}, func(tx *TwoskipTx) error {
			tx.Delete(NameKey(last))
			v := []byte("%(T e I 0123456789abcdef01234567 P default V 1 C 1 F 1 M 1 A %(admin lrs))")
			tx.Set(NameKey("user.a-before"), v)
			tx.Set(NameKey(last+"x"), v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, n := range got {
		count[n]++
		if count[n] > 1 {
			t.Errorf("%s seen twice", n)
		}
	}
	if first {
		t.Fatal("the walk took one chunk")
	}
	if count["user.a-before"] != 0 {
		t.Errorf("a record added before the walk's place was seen")
	}
	if len(got) != len(walkNames())+1 {
		t.Errorf("the walk saw %d records, want %d (one added after its place)", len(got), len(walkNames())+1)
	}
}

// TestWalkChunkBoundary: a database of exactly walkChunk records (and
// one more, one less, and twice as many) is walked whole, each record
// once.
func TestWalkChunkBoundary(t *testing.T) {
	for _, n := range []int{walkChunk - 1, walkChunk, walkChunk + 1, 2 * walkChunk} {
		var names []string
		for i := range n {
			names = append(names, fmt.Sprintf("user.u%05d", i))
		}
		s := walkSpool(t, names)
		seen := map[string]int{}
		if err := s.walkEntries(nil, func(c []Entry) error {
			for _, e := range c {
				seen[e.Name]++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Errorf("%d records: the walk saw %d", n, len(seen))
		}
		for k, v := range seen {
			if v != 1 {
				t.Errorf("%d records: %s seen %d times", n, k, v)
			}
		}
	}
}

func entryNames(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}
