package usermap

import (
	"errors"
	"reflect"
	"testing"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/partition"
)

func inbox(user string) string { return "user." + user }

func TestMap(t *testing.T) {
	u, err := New(map[string]string{"alice": "carol"}, inbox)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"alice": "carol", "bob": "bob", "alicex": "alicex", "": "",
	} {
		if got := u.User(in); got != want {
			t.Errorf("User(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"user.alice":           "user.carol",
		"user.alice.Sent":      "user.carol.Sent",
		"user.alice.Sent.2024": "user.carol.Sent.2024",
		"user.alicex":          "user.alicex", // another user sharing the prefix
		"user.bob.alice":       "user.bob.alice",
		"shared.alice":         "shared.alice",
	} {
		if got := u.Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
	acl := []partition.ACLEntry{{ID: "alice", Rights: "lrswipkxtecda"}, {ID: "-alice", Rights: "w"}, {ID: "bob", Rights: "lr"}}
	want := []partition.ACLEntry{{ID: "carol", Rights: "lrswipkxtecda"}, {ID: "-carol", Rights: "w"}, {ID: "bob", Rights: "lr"}}
	if got := u.ACL(acl); !reflect.DeepEqual(got, want) {
		t.Errorf("ACL = %v, want %v", got, want)
	}
	if acl[0].ID != "alice" {
		t.Error("ACL changed its argument")
	}
	if u.Empty() {
		t.Error("Empty on a map that renames alice")
	}
	if e, _ := New(nil, inbox); !e.Empty() || e.Name("user.alice") != "user.alice" {
		t.Error("an empty map renames")
	}
}

func TestBadUserID(t *testing.T) {
	for _, m := range []map[string]string{{"al/ice": "carol"}, {"alice": "../carol"}, {"": "carol"}, {"alice": "ca\x01rol"}} {
		if _, err := New(m, inbox); !errors.Is(err, dumpcheck.ErrUnsafeName) {
			t.Errorf("New(%v) = %v, want dumpcheck.ErrUnsafeName", m, err)
		}
	}
}
