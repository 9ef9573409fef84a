package remote

import (
	"strings"

	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/syncrec"
)

// With `conversations: yes` Cyrus numbers the changes of all of a user's
// mailboxes from one counter per user (imap/mboxname.c
// mboxname_nextmodseq), which a JMAP client's state is; what a restore
// changes in a mailbox that stays must be numbered above it, or a client
// at that state is not told. The replication protocol does not report the
// counter: sync_server raises it to the HIGHESTMODSEQ of every APPLY
// MAILBOX (imap/sync_support.c sync_apply_mailbox, mboxname_setmodseq)
// but no GET answers it. Every MODSEQ the server gave, though, came from
// it: the HIGHESTMODSEQ, FOLDERMODSEQ, CREATEDMODSEQ, XCONVMODSEQ and
// RACLMODSEQ of the user's mailboxes and the MODSEQ of the user's quota
// roots (each change of quota usage takes the next value too:
// imap/quota_db.c quota_write, mboxname_nextquotamodseq), which GET USER
// lists. Their highest is what restore --server numbers above: the
// counter itself whenever the user's last change touched a mailbox or a
// quota root that still exists (docs/restore.md, "MODSEQs and the
// user's counter").
//
// Whether the server keeps conversations for the user, the protocol
// tells only indirectly: sync_server sends XCONVMODSEQ only when it is
// not 0 (imap/sync_support.c sync_prepare_dlists), and it is not 0 in a
// mailbox of a conversations user once a message was ever added to it
// (imap/conversations.c keeps each folder's thread MODSEQ). So the floor
// applies unless the user's mailboxes show that there is no counter: one
// mailbox that ever held a message (LAST_UID above 0) and that
// conversations would cover (not deleted, not a submission mailbox:
// imap/mailbox.c mailbox_has_conversations), yet no XCONVMODSEQ in any.
// When nothing tells (no such mailbox), it applies: it is only a lower
// bound, and numbering a mailbox's changes above a bound higher than its
// HIGHESTMODSEQ is always valid (a MODSEQ must only grow, RFC 7162 §3.1;
// without conversations Cyrus numbers the next change one above the
// mailbox's HIGHESTMODSEQ, whatever it is).

// modseqFloor is what GET USER told of one counter.
type modseqFloor struct {
	top    uint64 // the highest MODSEQ the server listed
	conv   bool   // a mailbox has XCONVMODSEQ: the server keeps conversations
	noConv bool   // a mailbox conversations would cover held messages, without XCONVMODSEQ
}

// floorOf returns the record of the counter of mailbox name.
func (rs *restorer) floorOf(name string) *modseqFloor {
	if rs.floors == nil {
		rs.floors = make(map[string]*modseqFloor)
	}
	k := mboxname.ModseqCounterKey(name)
	f := rs.floors[k]
	if f == nil {
		f = &modseqFloor{}
		rs.floors[k] = f
	}
	return f
}

// noteMailbox notes the MODSEQs of a mailbox GET USER listed.
func (rs *restorer) noteMailbox(mb *syncrec.Mailbox) {
	f := rs.floorOf(mb.Name)
	f.top = max(f.top, mb.HighestModseq, mb.FolderModseq, mb.CreatedModseq, mb.XConvModseq, mb.RaclModseq)
	f.conv = f.conv || mb.XConvModseq != 0
	if _, deleted := mboxname.Deleted(mb.Name); mb.XConvModseq == 0 && mb.LastUID > 0 && !deleted && !strings.HasPrefix(mb.MboxType, "s") {
		f.noConv = true
	}
}

// noteQuota notes the MODSEQ of a quota root GET USER listed.
func (rs *restorer) noteQuota(q *syncrec.Quota) {
	f := rs.floorOf(q.Root)
	f.top = max(f.top, q.Modseq)
}

// counter returns what the changes of mailbox name must be numbered
// above besides its HIGHESTMODSEQ: the highest MODSEQ the server gave to
// the user, unless the server shows that it keeps no conversations for
// the user; else 0.
func (rs *restorer) counter(name string) uint64 {
	if f := rs.floorOf(name); f.conv || !f.noConv {
		return f.top
	}
	return 0
}

// counted notes that the server took a mailbox with this HIGHESTMODSEQ:
// sync_server raised the counter to it.
func (rs *restorer) counted(name string, highestModseq uint64) {
	f := rs.floorOf(name)
	f.top = max(f.top, highestModseq)
}
