package usermap

import (
	"reflect"
	"testing"
	"time"
)

func TestMissingParents(t *testing.T) {
	now := time.Unix(1700000000, 0)
	present := map[string]bool{"user.alice": true, "user.alice.A.B": true}
	acls := map[string]string{"user.alice": "alice\tlrswipkxtecdan\tbob\tlr\t", "user.alice.A.B": "alice\tlrs\t"}
	var asked []string
	got, err := MissingParents(Child{Name: "user.alice.A.B.C.D", Owner: "alice", Inbox: "user.alice",
		Partition: "second", CreatedModseq: 4, FolderModseq: 9}, now,
		func(n string) (bool, error) { return present[n], nil },
		func(n string) (string, bool, error) { asked = append(asked, n); return acls[n], true, nil })
	if err != nil {
		t.Fatal(err)
	}
	uv := uint32(now.Unix())
	want := []Parent{
		{Name: "user.alice.A", Partition: "second", ACL: acls["user.alice"], UIDValidity: uv, CreatedModseq: 9, FolderModseq: 9, Options: "P"},
		{Name: "user.alice.A.B.C", Partition: "second", ACL: acls["user.alice.A.B"], UIDValidity: uv, CreatedModseq: 9, FolderModseq: 9, Options: "P"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(asked, []string{"user.alice", "user.alice.A.B"}) {
		t.Errorf("ACLs asked of %v", asked)
	}

	// No INBOX: the owner's full rights; no folder modseq: the created one.
	got, err = MissingParents(Child{Name: "example.com!user.bob.X.Y", Owner: "bob@example.com", Inbox: "example.com!user.bob",
		Partition: "p"}, now,
		func(string) (bool, error) { return false, nil },
		func(n string) (string, bool, error) { t.Errorf("ACL asked of %s", n); return "", false, nil })
	want = []Parent{{Name: "example.com!user.bob.X", Partition: "p", ACL: "bob@example.com\t" + OwnerRights + "\t",
		UIDValidity: uv, CreatedModseq: 1, FolderModseq: 1, Options: "P"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v\nwant %+v", got, err, want)
	}

	// A child of the INBOX, a shared mailbox: none.
	for _, c := range []Child{
		{Name: "user.alice.Sent", Owner: "alice", Inbox: "user.alice"},
		{Name: "user.alice", Owner: "alice", Inbox: "user.alice"},
		{Name: "shared.a.b", Inbox: "user.alice"},
	} {
		got, err := MissingParents(c, now, func(string) (bool, error) { return false, nil },
			func(string) (string, bool, error) { return "", false, nil })
		if err != nil || len(got) != 0 {
			t.Errorf("%s: %+v %v", c.Name, got, err)
		}
	}
}
