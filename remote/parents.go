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

// keptParents gives a mailbox of the dump kept as already present (an
// earlier run created it) the ancestors below its owner's INBOX that the
// server lacks, as the offline restore does (restore's intermediates): an
// offline run killed between committing a child and its missing parent
// left the child alone, and a rerun in either mode completes it. sync_server
// creates a mailbox's missing ancestors whenever it creates one
// (imap/mboxlist.c mboxlist_update_intermediaries), so the deepest
// missing ancestor is sent, empty, with a uniqueid derived from the
// child's, a new UIDVALIDITY and the ACL of the nearest ancestor the
// server has (the owner's full rights if none), and sync_server makes the
// ones above it.
func (rs *restorer) keptParents() error {
	err := rs.inv.each(func(b *box) error {
		if b.res.Applied {
			rs.remote[b.mb.Name] = true // created by this run
		}
		return nil
	})
	if err != nil {
		return err
	}
	return rs.inv.each(rs.keptParent)
}

// keptParent is keptParents for one box.
func (rs *restorer) keptParent(b *box) error {
	if b.res.Action != ActionKeep {
		return nil
	}
	owner := mboxname.Owner(b.mb.Name)
	if owner == "" {
		return nil
	}
	inbox := mboxname.UserInbox(owner)
	if !strings.HasPrefix(b.mb.Name, inbox+".") {
		return nil
	}
	var missing []string // deepest first
	var nearest string
	found := false
	for a := parentOf(b.mb.Name); len(a) > len(inbox); a = parentOf(a) {
		if rs.present(a) {
			nearest, found = a, true
			break
		}
		missing = append(missing, a)
	}
	if len(missing) == 0 {
		return nil
	}
	if !found {
		nearest, found = inbox, rs.present(inbox)
	}
	acl := ""
	if found {
		var err error
		if acl, found, err = rs.aclOf(nearest); err != nil {
			return err
		}
	}
	empty := *b.mb
	empty.Name, empty.UniqueID = missing[0], newUniqueID(b.mb.UniqueID, missing[0], 0)
	empty.UIDValidity = usermap.IntoUIDValidity(0, time.Now())
	empty.LastUID, empty.RecentUID, empty.HighestModseq = 0, 0, 1
	empty.SyncCRC, empty.SyncCRCAnnot, empty.XConvModseq, empty.RaclModseq = 0, 0, 0, 0
	empty.Annotations, empty.UserFlags = nil, nil
	empty.ACL = usermap.IntoACL(owner, acl, found, "")
	err := rs.applyEmpty(&empty, "the missing parent of "+b.mb.Name)
	if fatal(err) {
		return err
	}
	if err != nil {
		rs.problem(b.mb.Name, fmt.Errorf("its missing parent %s was not created: %w", empty.Name, err))
		return nil
	}
	for _, a := range missing {
		rs.remote[a] = true
	}

	return nil
}

// present reports whether the server has mailbox name (GET USER or GET
// MAILBOXES listed it, or the restore created it).
func (rs *restorer) present(name string) bool { return rs.remote[name] }

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

// parentOf returns the name of the parent of an internal name.
func parentOf(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i]
	}
	return ""
}
