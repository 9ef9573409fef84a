package remote

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/spill"
)

// TestUserMailboxOrder: a user's mailboxes as dump --server takes them
// from GET USER are those an offline dump takes, in its order: the
// user's tree in mailboxes.db order, then the user's deleted mailboxes.
func TestUserMailboxOrder(t *testing.T) {
	for _, tt := range []struct {
		user string
		got  []string // as the server lists them
		want []string
	}{
		{"alice",
			[]string{"DELETED.user.alice.Old.6B0F37A3", "user.alice.Sent", "user.alice", "user.alicex", "DELETED.user.alicex.A.1",
				"user.alice.a^b", "user.alice.a", "user.bob", "shared.user.alice", "Trash.user.alice.B.2", "user"},
			[]string{"user.alice", "user.alice.Sent", "user.alice.a", "user.alice.a^b",
				"DELETED.user.alice.Old.6B0F37A3", "Trash.user.alice.B.2"}},
		{"bob@example.com",
			[]string{"example.com!DELETED.user.bob.X.1", "example.com!user.bob", "DELETED.user.bob.Y.2", "other.org!DELETED.user.bob.Z.3"},
			[]string{"example.com!user.bob", "example.com!DELETED.user.bob.X.1"}},
	} {
		inbox := mboxname.UserInbox(tt.user)
		var names []string
		for _, n := range tt.got {
			if under(n, inbox) || inDeletedTree(n, inbox) {
				names = append(names, n)
			}
		}
		sortUserMailboxes(names, inbox)
		if strings.Join(names, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: %v, want %v", tt.user, names, tt.want)
		}
	}
}

// TestRealCyrusDumpDeleted: with delete_mode: delayed, a user's deleted
// folder (DELETED.user.bob.Gone.<hex>) is in dump --server as in the
// offline dump, in the same place.
func TestRealCyrusDumpDeleted(t *testing.T) {
	t.Parallel()
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true, ExtraConfig: "delete_mode: delayed\nexpunge_mode: delayed"})
	defer noCrash(t, lab)
	lab.Populate(t)
	bob := lab.IMAP(t, "bob")
	for _, box := range []string{"INBOX.Gone", "INBOX.Kept"} {
		if err := bob.Create(box); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Append(box, nil, time.Time{}, []byte("Subject: "+box+"\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Command("DELETE", "INBOX.Gone"); err != nil {
		t.Fatal(err)
	}
	offline := replicationOnly(offlineDump(t, lab, "bob"))
	if !bytes.Contains(offline, []byte("DELETED.user.bob.Gone.")) {
		t.Fatalf("the offline dump has no deleted mailbox:\n%s", offline)
	}
	c, err := dialer(lab, lab.SyncAddr)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf bytes.Buffer
	sum, err := Dump(context.Background(), c, &buf, dump.Options{Users: []string{"bob"}, Host: "lab", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Errorf("problems: %v", sum.Problems)
	}
	compareDumps(t, buf.Bytes(), offline)
}

// TestRealCyrusDumpClosesPolicy: dump --server removes the files its
// policy checker spilled the mailbox names to (dumpcheck.Dump), as the
// offline dump does: no descriptor is left open when Dump returns.
func TestRealCyrusDumpClosesPolicy(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	defer noCrash(t, lab)
	lab.Populate(t)
	defer func(l int64) { spill.NamesMemLimit = l }(spill.NamesMemLimit)
	spill.NamesMemLimit = 1 // every name to a file
	c, err := dialer(lab, lab.SyncAddr)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := openFiles(t)
	var buf bytes.Buffer
	if _, err := Dump(context.Background(), c, &buf, dump.Options{Users: []string{"alice", "bob"}, Host: "lab", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	if after := openFiles(t); after > before {
		t.Errorf("%d files open after dump --server, %d before", after, before)
	}
}

// openFiles counts the process's open descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(fds)
}
