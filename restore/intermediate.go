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
// the ACL of their nearest existing ancestor, their created and folder
// MODSEQs the created child's FOLDERMODSEQ. A restore of
// user.alice.Restored.Sent (--into) where alice has no Restored folder,
// or of user.alice.Archive.2019 alone (--mailbox) after she deleted
// Archive, thus leaves what `restore --server` leaves (docs/restore.md).
// An ancestor the dump brings is not one: it is created as dumped. They
// are not reported: Cyrus's create does not report them either, and
// like Cyrus, which creates them only as part of a create that succeeds,
// the restore commits one only once a mailbox below it is committed
// (commit, childCommitted): a child refused at the last moment leaves no
// empty parent behind. A mailbox of the dump kept as already present (an
// earlier run of the restore created it) gets its missing ancestors too:
// a run killed between committing a child and its parent leaves the
// child alone, and the rerun completes it.
func (rs *restorer) intermediates() error {
	n := len(rs.boxes) // intermediate appends to rs.boxes
	for _, b := range rs.boxes[:n] {
		if b.implicit {
			continue
		}
		if err := rs.parked.Load(b); err != nil {
			return err
		}
		var err error
		if b.res.Action == ActionCreate || b.res.Action == ActionKeep {
			err = rs.intermediatesOf(b)
		}
		if perr := rs.parked.Park(b); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// intermediatesOf creates the missing ancestors of the created (or kept)
// b.
func (rs *restorer) intermediatesOf(b *box) error {
	if b.owner == "" || mboxname.Owner(b.name) == "" {
		return nil // not a user's own mailbox (shared, or in the deleted tree)
	}
	inbox := rs.spool.UserInbox(b.owner)
	if !strings.HasPrefix(b.name, inbox+".") {
		return nil
	}
	for a := parentName(b.name); len(a) > len(inbox); a = parentName(a) {
		if ib, err := rs.named(a); err != nil {
			return err
		} else if ib != nil {
			if ib.implicit {
				if err := rs.parked.Load(ib); err != nil {
					return err
				}
				ib.children = append(ib.children, uint32(b.id))
				if err := rs.parked.Park(ib); err != nil {
					return err
				}
			}
			continue
		}
		cur, exists, err := rs.spool.LookupAny(a)
		if err != nil {
			return err
		}
		if exists && !cur.Deleted() && !cur.Intermediate() {
			continue
		}
		if err := rs.intermediate(b, a); err != nil {
			return err
		}
	}
	return nil
}

// intermediate adds the empty mailbox a, an ancestor of the created b.
func (rs *restorer) intermediate(child *box, a string) (err error) {
	modseq := child.src.FolderModseq
	if modseq == 0 {
		modseq = max(child.src.CreatedModseq, 1)
	}
	uv := usermap.IntoUIDValidity(0, timeNow())
	ib := &box{ref: -1, implicit: true, boxData: &boxData{
		src:       srcKeys{UIDValidity: uv, CreatedModseq: modseq, FolderModseq: modseq},
		name:      a,
		owner:     child.owner,
		partition: child.partition,
		typ:       "e",
		fresh:     true,
		children:  []uint32{uint32(child.id)},
	}}
	if rs.cfg.LegacyDirs {
		ib.typ += "l"
	}
	parent, found, err := rs.folderACL(a, ib.owner)
	if err != nil {
		return err
	}
	ib.acl = partition.ParseACL(usermap.IntoACL(ib.owner, parent, found, ""))
	ib.res = MailboxResult{Action: ActionCreate, Name: a, Partition: ib.partition}
	if why, err := rs.cannotWrite(ib); err != nil || why != "" {
		return err // the child's own refusal says why
	}
	rs.boxes = append(rs.boxes, ib)
	ib.id = len(rs.boxes)
	defer func() {
		if perr := rs.parked.Park(ib); err == nil {
			err = perr
		}
	}()
	if err := rs.setKey(spill.KeyName, a, ib); err != nil {
		return err
	}
	if err := rs.chooseID(ib); err != nil {
		return err
	}
	if rs.opts.DryRun {
		return nil
	}
	// Cyrus creates it with no HIGHESTMODSEQ of its own (mboxlist_createmailbox
	// with highestmodseq 0): the first one, 1.
	bl, err := rs.newBuilder(ib, &syncrec.Mailbox{Name: a, UIDValidity: uv, HighestModseq: 1, CreatedModseq: modseq})
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
		if h := rs.boxes[c-1]; h.done || h.kept {
			return true
		}
	}
	return false
}
