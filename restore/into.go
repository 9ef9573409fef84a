package restore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// ErrInto reports an Options.Into that cannot be honoured.
var ErrInto = errors.New("--into")

// ownerRights are the rights Cyrus gives a user on a personal mailbox it
// creates without a parent to copy them from (imap/mboxlist.c: ACL_ALL
// for the owner).
const ownerRights = "lrswipkxtecdan"

// planInto renames the selected mailbox b (mb in the dump) to
// Options.Into, as a new mailbox: a uniqueid other than the dump's, a new
// UIDVALIDITY, the ACL of the owner's existing folders (the nearest
// ancestor's, as Cyrus's create copies it), and no SPECIAL-USE (the
// owner's own folder keeps that use).
func (rs *restorer) planInto(b *box, mb *syncrec.Mailbox) error {
	if rs.into != nil {
		return fmt.Errorf("%w %s: the selection holds more than one mailbox (%s and %s); select one with --mailbox",
			ErrInto, rs.opts.Into, rs.into.src.Name, mb.Name)
	}
	rs.into = b
	name := rs.opts.Into
	b.name, b.res.Name, b.fresh = name, name, true
	b.owner = rs.cfg.NameOwner(name)
	uv := uint32(min(timeNow().Unix(), 1<<32-1))
	if uv <= mb.UIDValidity {
		uv = mb.UIDValidity + 1
	}
	mb.UIDValidity, b.src.UIDValidity = uv, uv
	acl, err := rs.folderACL(name, b.owner)
	if err != nil {
		return err
	}
	if acl != nil {
		b.acl = acl
	}
	kept := b.annots[:0]
	for _, a := range b.annots {
		if !strings.EqualFold(a.Entry, "/specialuse") {
			kept = append(kept, a)
		}
	}
	b.annots = kept
	return nil
}

// folderACL returns the ACL a new mailbox name of owner gets: that of its
// nearest existing ancestor in the target that owner owns, else the
// owner's full rights; nil for a shared mailbox (the dump's ACL stays).
func (rs *restorer) folderACL(name, owner string) ([]partition.ACLEntry, error) {
	if owner == "" {
		return nil, nil
	}
	for c := parentName(name); c != ""; c = parentName(c) {
		e, ok, err := rs.spool.LookupAny(c)
		if err != nil {
			return nil, err
		}
		if ok && !e.Deleted() && !e.Intermediate() && rs.cfg.NameOwner(c) == owner {
			return append([]partition.ACLEntry(nil), e.ACL...), nil
		}
	}
	return []partition.ACLEntry{{ID: owner, Rights: ownerRights}}, nil
}

// checkInto reports a --into whose mailbox the dump does not hold.
func (rs *restorer) checkInto() error {
	if rs.opts.Into != "" && rs.into == nil {
		return fmt.Errorf("%w %s: no mailbox of the dump is selected", ErrInto, rs.opts.Into)
	}
	return nil
}
