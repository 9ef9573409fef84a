package remote

import (
	"testing"

	"github.com/mbtool/mbtool/syncrec"
)

// TestCounterFloor: the floor of a user's changes is the highest MODSEQ
// GET USER listed, unless the user's mailboxes show that the server keeps
// no conversations for the user (one that held messages without
// XCONVMODSEQ); a conversations user whose mailboxes never held a message
// (XCONVMODSEQ 0 everywhere, so not sent) gets it too.
func TestCounterFloor(t *testing.T) {
	for _, tt := range []struct {
		name  string
		boxes []syncrec.Mailbox
		quota uint64
		want  uint64
	}{
		{"conversations, all folders empty", []syncrec.Mailbox{
			{Name: "user.alice", HighestModseq: 3, CreatedModseq: 1},
			{Name: "user.alice.Sent", HighestModseq: 7, CreatedModseq: 7},
		}, 9, 9},
		{"conversations, mail", []syncrec.Mailbox{
			{Name: "user.alice", HighestModseq: 30, LastUID: 4, XConvModseq: 30},
			{Name: "user.alice.Sent", HighestModseq: 12, LastUID: 0},
		}, 0, 30},
		{"no conversations", []syncrec.Mailbox{
			{Name: "user.alice", HighestModseq: 30, LastUID: 4},
			{Name: "user.alice.Sent", HighestModseq: 12},
		}, 40, 0},
		{"conversations, messages only in a deleted and a submission mailbox", []syncrec.Mailbox{
			{Name: "user.alice", HighestModseq: 5},
			{Name: "DELETED.user.alice.Old.5F000000", HighestModseq: 20, LastUID: 3},
			{Name: "user.alice.Outbox", MboxType: "s", HighestModseq: 25, LastUID: 2},
		}, 0, 25},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := &restorer{}
			for i := range tt.boxes {
				rs.noteMailbox(&tt.boxes[i])
			}
			if tt.quota > 0 {
				rs.noteQuota(&syncrec.Quota{Root: "user.alice", Modseq: tt.quota})
			}
			if got := rs.counter("user.alice.Drafts"); got != tt.want {
				t.Errorf("counter = %d, want %d", got, tt.want)
			}
			if got := rs.counter("user.bob"); got != 0 {
				t.Errorf("another user's counter = %d, want 0", got)
			}
		})
	}
}
