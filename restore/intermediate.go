package restore

import (
	"strings"

	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/mbtool/mbtool/usermap"
)

// intermediates creates, as Cyrus 3.6 does when it creates a mailbox
// (imap/mboxlist.c mboxlist_update_intermediaries, called by
// mboxlist_createmailbox, so by IMAP CREATE and sync_server alike), the
// missing ancestors of every mailbox the restore creates below a user's
// INBOX: empty mailboxes of the owner, a fresh uniqueid and UIDVALIDITY,
// on the child's partition, the ACL of their nearest existing ancestor,
// their created and folder MODSEQs the child's FOLDERMODSEQ: the one
// rule of both restores, usermap.MissingParents. A restore of
// user.alice.Restored.Sent (--into) where alice has no Restored folder,
// or of user.alice.Archive.2019 alone (--mailbox) after she deleted
// Archive, thus leaves what `restore --server` leaves (docs/restore.md).
// An ancestor the dump brings is not one: it is created as dumped. They
// are not reported: Cyrus's create does not report them either, and
// like Cyrus, which creates them only as part of a create that succeeds,
// the restore commits one only with a mailbox below it, in the same
// mailboxes.db transaction (commitGroup, withParents; or once a kept one
// is there, childCommitted): a child refused at the last moment leaves no
// empty parent behind, and a parent that cannot be committed refuses its
// child, as --server does not send it (result.ParentError). A mailbox of
// the dump kept as already present (an earlier run of the restore
// created it) gets its missing ancestors too: one whose parent is gone
// since (deleted, or an offline run of an earlier version, which
// committed the parent after the child, killed between the two) is
// completed by the rerun.
func (rs *restorer) intermediates() error {
	for b := range rs.boxes.all() { // not the boxes intermediate adds
		if b.implicit {
			continue
		}
		err := rs.parked.Use(b, func() error {
			if b.res.Action == ActionCreate || b.res.Action == ActionKeep {
				return rs.intermediatesOf(b)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// intermediatesOf creates the missing ancestors of the created (or kept)
// b, as usermap.MissingParents decides for both restores: on the
// partition b has in the target (a kept mailbox's own, a created one's as
// restored), with b's folder modseq as the target has it.
func (rs *restorer) intermediatesOf(b *box) error {
	if b.owner == "" || mboxname.Owner(b.name) == "" {
		return nil // not a user's own mailbox (shared, or in the deleted tree)
	}
	c := usermap.Child{Name: b.name, Owner: b.owner, Inbox: rs.spool.UserInbox(b.owner),
		Partition: b.partition, CreatedModseq: b.src.CreatedModseq, FolderModseq: b.src.FolderModseq}
	if b.res.Action == ActionKeep {
		cur, ok, err := rs.spool.LookupAny(b.name)
		if err != nil {
			return err
		}
		if ok {
			c.Partition, c.CreatedModseq, c.FolderModseq = cur.Partition, cur.CreatedModseq, cur.FolderModseq
		}
	}
	// A mailbox of the dump (or a parent made for another child) is
	// present unless it was refused, as --server counts it
	// (result.Mailbox.Present); any other is the target's.
	present := func(a string) (bool, error) {
		ib, err := rs.named(a)
		if err != nil {
			return false, err
		}
		if ib != nil {
			if ib, err = spill.Peek(rs.parked, ib); err != nil {
				return false, err
			}
			if ib.res.Present() {
				return true, nil
			}
		}
		cur, exists, err := rs.spool.LookupAny(a)
		return exists && !cur.Deleted() && !cur.Intermediate(), err
	}
	aclOf := func(a string) (string, bool, error) { return rs.aclAsLeft(a, b.owner) }
	parents, err := usermap.MissingParents(c, timeNow(), present, aclOf)
	if err != nil {
		return err
	}
	// An ancestor created for another child is b's parent too: it is
	// committed once either is (childCommitted).
	for a := mboxname.Parent(b.name); strings.HasPrefix(b.name, c.Inbox+".") && len(a) > len(c.Inbox); a = mboxname.Parent(a) {
		ib, err := rs.named(a)
		if err != nil {
			return err
		}
		if ib != nil && ib.implicit {
			err := rs.parked.Use(ib, func() error {
				ib.children = append(ib.children, b.id)
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	for _, p := range parents {
		if err := rs.intermediate(b, p); err != nil {
			return err
		}
	}
	return nil
}

// intermediate adds the empty mailbox p, a missing parent of the created
// (or kept) child.
func (rs *restorer) intermediate(child *box, p usermap.Parent) (err error) {
	d := &boxData{
		src:       srcKeys{UIDValidity: p.UIDValidity, CreatedModseq: p.CreatedModseq, FolderModseq: p.FolderModseq},
		name:      p.Name,
		owner:     child.owner,
		partition: p.Partition,
		typ:       "e",
		fresh:     true,
		children:  []uint32{child.id},
	}
	if rs.cfg.LegacyDirs {
		d.typ += "l"
	}
	a := p.Name
	d.acl = partition.ParseACL(p.ACL)
	d.res = MailboxResult{Action: ActionCreate, Name: a, Partition: d.partition}
	if why, err := rs.cannotWrite(&box{boxData: d, ref: -1, implicit: true}); err != nil || why != "" {
		return err // the child's own refusal says why
	}
	ib := rs.boxes.add(d)
	ib.implicit = true
	defer func() {
		if perr := rs.parked.Park(ib); err == nil {
			err = perr
		}
	}()
	if err := rs.setKey(spill.KeyName, a, ib); err != nil {
		return err
	}
	err = rs.spool.ReadMailboxes(func(v *partition.MailboxesView) error { return rs.chooseID(v, ib) })
	if err != nil {
		return err
	}
	if rs.opts.DryRun {
		return nil
	}
	// Cyrus creates it with no HIGHESTMODSEQ of its own (mboxlist_createmailbox
	// with highestmodseq 0): the first one, 1.
	bl, err := rs.newBuilder(ib, &syncrec.Mailbox{Name: a, UIDValidity: p.UIDValidity, HighestModseq: 1,
		CreatedModseq: p.CreatedModseq, FolderModseq: p.FolderModseq, Options: p.Options})
	if err != nil {
		return err
	}
	defer bl.close()
	return bl.finish()
}

// childCommitted reports whether a mailbox the implicit b was created
// for has been committed, or was there already (kept).
func (rs *restorer) childCommitted(b *box) bool {
	for _, c := range b.children {
		if h := rs.boxes.at(c); h.done || h.kept {
			return true
		}
	}
	return false
}
