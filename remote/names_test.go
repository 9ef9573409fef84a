package remote

import (
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/usermap"
)

func TestUserMap(t *testing.T) {
	m, err := usermap.New(map[string]string{"alice": "carol", "bob@x.org": "bob@y.org"}, mboxname.UserInbox)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{
		"user.alice":           "user.carol",
		"user.alice.Sent":      "user.carol.Sent",
		"user.alicex":          "user.alicex",
		"x.org!user.bob.Trash": "y.org!user.bob.Trash",
		"shared.team":          "shared.team",
	}
	for in, want := range names {
		if got := m.Name(in); got != want {
			t.Errorf("name(%q) = %q, want %q", in, got, want)
		}
	}
	acl := mapACL(m, "alice\tlrswipkxtecdan\t-alice\tw\tanyone\tlr\t")
	if acl != "carol\tlrswipkxtecdan\t-carol\tw\tanyone\tlr\t" {
		t.Errorf("acl: %q", acl)
	}
	if _, err := usermap.New(map[string]string{"alice": ""}, mboxname.UserInbox); err == nil {
		t.Error("empty new user accepted")
	}
}

// TestDBKeyOrder: a mailbox's children sort right after it, before names
// that merely extend it, as in mailboxes.db.
func TestDBKeyOrder(t *testing.T) {
	want := []string{"user.alice", "user.alice.Archive", "user.alice.Archive.2019", "user.alice.Archive 2", "user.alice.Old Stuff", "user.alice.Sent"}
	got := append([]string(nil), want...)
	sort.Slice(got, func(i, j int) bool { return dbKey(got[i]) < dbKey(got[j]) })
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestCheckFlag(t *testing.T) {
	for _, f := range []string{`\Seen`, `\seen`, `\Expunged`, "$Label1", "Junk", "a.b-c_d"} {
		if err := dumpcheck.CheckFlag(f); err != nil {
			t.Errorf("dumpcheck.CheckFlag(%q): %v", f, err)
		}
	}
	for _, f := range []string{``, `\Recent`, `\Bogus`, "NIL", "a b", "a(b", "{3}", "%x", "a*", "ä"} {
		if err := dumpcheck.CheckFlag(f); err == nil {
			t.Errorf("dumpcheck.CheckFlag(%q) accepted", f)
		}
	}
}

func TestCheckEntry(t *testing.T) {
	for _, e := range []string{"/comment", "/vendor/cmu/cyrus-imapd/savedate", "/specialuse"} {
		if err := dumpcheck.CheckEntry(e); err != nil {
			t.Errorf("dumpcheck.CheckEntry(%q): %v", e, err)
		}
	}
	for _, e := range []string{"", "comment", "/a//b", "/a/", "/a*", "/a\nb"} {
		if err := dumpcheck.CheckEntry(e); err == nil {
			t.Errorf("dumpcheck.CheckEntry(%q) accepted", e)
		}
	}
}
