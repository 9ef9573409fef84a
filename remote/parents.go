package remote

import (
	"fmt"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/mboxname"
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
// server lacks, as the offline restore does (restore's intermediates): an
// offline run killed between committing a child and its missing parent
// left the child alone, and a rerun in either mode completes it.
func (rs *restorer) keptParents() error {
	return rs.inv.each(func(b *box) error {
		if b.res.Action != ActionKeep {
			return nil
		}
		_, err := rs.createParents(b)
		return err
	})
}

// createParents creates the missing parents of b, a mailbox kept or
// about to be created, and returns the names of those it created. A
// parent that cannot be created is reported under its own name and the
// ones below it are not tried.
func (rs *restorer) createParents(b *box) ([]string, error) {
	owner := mboxname.Owner(b.mb.Name)
	c := usermap.Child{Name: b.mb.Name, Owner: owner, Partition: b.mb.Partition,
		CreatedModseq: b.mb.CreatedModseq, FolderModseq: b.mb.FolderModseq}
	if owner != "" {
		c.Inbox = mboxname.UserInbox(owner)
	}
	if cur := b.existing; b.res.Action == ActionKeep && cur != nil {
		c.Partition, c.CreatedModseq, c.FolderModseq = cur.Partition, cur.CreatedModseq, cur.FolderModseq
	}
	present := func(name string) (bool, error) { return rs.remote[name], nil }
	parents, err := usermap.MissingParents(c, time.Now(), present, rs.aclOf)
	if err != nil || len(parents) == 0 {
		return nil, err
	}
	var made []string
	for _, p := range parents {
		mb := &syncrec.Mailbox{
			UniqueID: newUniqueID(b.mb.UniqueID, p.Name, 0), Name: p.Name,
			UIDValidity: p.UIDValidity, HighestModseq: 1, Partition: p.Partition, ACL: p.ACL,
			CreatedModseq: p.CreatedModseq, FolderModseq: p.FolderModseq,
			Options: b.mb.Options, QuotaRoot: parentQuotaRoot(b.mb.QuotaRoot, p.Name),
		}
		err := rs.applyEmpty(mb, "the missing parent of "+b.mb.Name)
		if fatal(err) {
			return made, err
		}
		if err != nil {
			rs.problem(p.Name, fmt.Errorf("the missing parent of %s was not created: %w", b.mb.Name, err))
			return made, nil
		}
		rs.remote[p.Name] = true
		made = append(made, p.Name)
	}
	return made, nil
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
