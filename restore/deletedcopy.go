package restore

import (
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/mbtool/mbtool/usermap"
)

// continueDeleted makes a mailbox created under a name whose earlier
// incarnation the target keeps in its deleted tree (delete_mode: delayed)
// with the same UIDVALIDITY continue that one's numbering: LAST_UID and
// HIGHESTMODSEQ at least the deleted copy's, so that no UID a client saw
// in it names another message now (the restore of a deleted folder from a
// dump older than its last mail).
func (rs *restorer) continueDeleted(b *box, mb *syncrec.Mailbox) error {
	copies, err := rs.deletedCopies(b.owner)
	if err != nil {
		return err
	}
	for _, e := range copies[b.name] {
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
	return nil
}

// deletedCopies returns the owner's deleted mailboxes by the name they
// had, read once per owner.
func (rs *restorer) deletedCopies(owner string) (map[string][]partition.Entry, error) {
	if m, ok := rs.deleted[owner]; ok {
		return m, nil
	}
	m := map[string][]partition.Entry{}
	if owner != "" {
		all, err := rs.spool.UserMailboxes(owner)
		if err != nil {
			return nil, err
		}
		for _, e := range all {
			if orig, ok := usermap.DeletedOriginal(e.Name, rs.cfg.DeletedPrefix); ok {
				m[orig] = append(m[orig], e)
			}
		}
	}
	if rs.deleted == nil {
		rs.deleted = map[string]map[string][]partition.Entry{}
	}
	rs.deleted[owner] = m
	return m, nil
}
