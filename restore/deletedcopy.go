package restore

import (
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// continueDeleted makes a mailbox created under a name whose earlier
// incarnation the target keeps in its deleted tree (delete_mode: delayed)
// with the same UIDVALIDITY continue that one's numbering: LAST_UID and
// HIGHESTMODSEQ at least the deleted copy's, so that no UID a client saw
// in it names another message now (the restore of a deleted folder from a
// dump older than its last mail). copies are the real mailboxes of the
// deleted tree of b's name, as plan found them under the lock of
// mailboxes.db (MailboxesView.DeletedUnder); their index headers are read
// here, with that lock released.
func (rs *restorer) continueDeleted(b *box, mb *syncrec.Mailbox, copies []partition.Entry) {
	for _, e := range copies {
		if orig, ok := mboxname.DeletedUnder(e.Name, rs.cfg.DeletedPrefix); !ok || orig != b.name {
			continue // a deleted copy of a mailbox below this one
		}
		h, err := rs.spool.ReadIndexHeader(e)
		if err != nil {
			rs.problem(b.name, err)
			continue
		}
		if h.UIDValidity == mb.UIDValidity {
			mb.LastUID = max(mb.LastUID, h.LastUID)
			mb.HighestModseq = max(mb.HighestModseq, h.HighestModseq)
		}
	}
}
