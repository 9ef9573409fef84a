package remote

import (
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/mbtool/mbtool/usermap"
)

// The missing parents of a mailbox the restore creates or keeps are
// decided by the one rule of both restores (usermap.MissingParents) and
// sent here, each one empty and explicitly, outermost first: left to
// itself, sync_server would make them its own way when it creates a
// mailbox (on another partition, with its own UIDVALIDITY and MODSEQs),
// and not at all for a mailbox kept as already present.

// keptParents gives a mailbox of the dump kept as already present (an
// earlier run created it) the ancestors below its owner's INBOX that the
// server lacks, as the offline restore does (restore's intermediates): a
// child left without its parent (deleted since, or an offline run of an
// earlier version killed between committing the child and its parent)
// is completed by a rerun in either mode. A
// parent that cannot be created is reported under its own name; the
// kept child stays as it is.
func (rs *restorer) keptParents() error {
	return rs.inv.each(func(b *box) error {
		if b.res.Action != ActionKeep {
			return nil
		}
		_, err := rs.createParents(b)
		return err
	})
}

// ParentError is why a mailbox to create was not sent: a missing parent
// of it could not be created (docs/restore.md, "Missing parent folders");
// the offline restore refuses such a mailbox in the same words.
type ParentError = result.ParentError

// createParents creates the missing parents of b, a mailbox kept or
// about to be created. A parent that cannot be created is reported under
// its own name, the ones below it are not tried, and it is returned as a
// *ParentError (the error of the run is returned as such: the session is
// broken).
func (rs *restorer) createParents(b *box) (*ParentError, error) {
	owner := mboxname.Owner(b.mb.Name)
	c := usermap.Child{Name: b.mb.Name, Owner: owner, Partition: b.mb.Partition,
		CreatedModseq: b.mb.CreatedModseq, FolderModseq: b.mb.FolderModseq}
	if owner != "" {
		c.Inbox = mboxname.UserInbox(owner)
	}
	if cur := b.existing; b.res.Action == ActionKeep && cur != nil {
		c.Partition, c.CreatedModseq, c.FolderModseq = cur.Partition, cur.CreatedModseq, cur.FolderModseq
	}
	parents, err := usermap.MissingParents(c, time.Now(), rs.present, rs.aclOf)
	if err != nil || len(parents) == 0 {
		return nil, err
	}
	for _, p := range parents {
		mb := &syncrec.Mailbox{
			UniqueID: newUniqueID(b.mb.UniqueID, p.Name, 0), Name: p.Name,
			UIDValidity: p.UIDValidity, HighestModseq: 1, Partition: p.Partition, ACL: p.ACL,
			CreatedModseq: p.CreatedModseq, FolderModseq: p.FolderModseq,
			Options: p.Options, QuotaRoot: parentQuotaRoot(b.mb.QuotaRoot, p.Name),
		}
		err := rs.applyEmpty(mb, "the missing parent of "+b.mb.Name)
		if fatal(err) {
			return nil, err
		}
		if err != nil {
			rs.problem(p.Name, result.MissingParentError(b.mb.Name, err))
			return &ParentError{Parent: p.Name, Err: err}, nil
		}
		rs.remote[p.Name] = true
	}
	return nil, nil
}

// present reports, for usermap.MissingParents, whether mailbox name is
// there once the restore is done, as the offline restore counts it: the
// server lists it or this run applied it, or it is a mailbox of the dump
// that the run creates, replaces, merges into or keeps (wherever the dump
// brings it, after its child too), unless it was refused.
func (rs *restorer) present(name string) (bool, error) {
	if rs.remote[name] {
		return true, nil
	}
	if rs.names == nil {
		return false, nil
	}
	id, ok, err := rs.names.Get(spill.KeyName, name)
	if err != nil || !ok {
		return false, err
	}
	b, err := spill.Peek(rs.inv.parked, rs.inv.boxes[id-1])
	if err != nil {
		return false, err
	}
	// Refused, by the plan or the server, it is not there (what the
	// server has was counted above): the rule of both restores.
	return b.res.Present(), nil
}

// parentQuotaRoot returns the quota root of the parent name of a mailbox
// whose quota root is root: root when it is name or above it, else none
// known ("", the child is its own root).
func parentQuotaRoot(root, name string) string {
	if root == name || strings.HasPrefix(name, root+".") {
		return root
	}
	return ""
}

// aclOf asks the server for the ACL of mailbox name (GET MAILBOXES).
func (rs *restorer) aclOf(name string) (string, bool, error) {
	acl, found := "", false
	err := rs.getMailboxes("MAILBOXES", dlist.NewList().Append(dlist.NewAtom(name)), func(mb *syncrec.Mailbox) error {
		if mb.Name == name && !isPlaceholder(mb) {
			acl, found = mb.ACL, true
		}
		return nil
	})
	return acl, found, err
}
