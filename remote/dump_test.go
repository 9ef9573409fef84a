package remote

import (
	"strings"
	"testing"
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
				"DELETED.user.alice.Old.6B0F37A3", "Trash.user.alice.B.2", "shared.user.alice"}},
		{"bob@example.com",
			[]string{"example.com!DELETED.user.bob.X.1", "example.com!user.bob", "DELETED.user.bob.Y.2", "other.org!DELETED.user.bob.Z.3"},
			[]string{"example.com!user.bob", "example.com!DELETED.user.bob.X.1"}},
	} {
		inbox := userInbox(tt.user)
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
