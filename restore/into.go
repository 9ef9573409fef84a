package restore

import (
	"errors"
	"fmt"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
	"github.com/mbtool/mbtool/usermap"
)

// ErrInto reports an Options.Into that cannot be honoured.
var ErrInto = errors.New("--into")

// planInto renames the selected mailbox b (mb in the dump) to
// Options.Into, as a new mailbox: a uniqueid other than the dump's, a new
// UIDVALIDITY, the ACL of the owner's existing folders (the nearest
// ancestor's, as Cyrus's create copies it), and no SPECIAL-USE (the
// owner's own folder keeps that use).
func (rs *restorer) planInto(b *box, mb *syncrec.Mailbox) error {
	if rs.into != nil {
		other, err := spill.Peek(rs.parked, rs.into)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w %s: the selection holds more than one mailbox (%s and %s); select one with --mailbox",
			ErrInto, rs.opts.Into, other.src.Name, mb.Name)
	}
	if err := dumpcheck.CheckName("--into", rs.opts.Into); err != nil {
		return err
	}
	rs.into = b
	name := rs.opts.Into
	b.name, b.res.Name, b.fresh = name, name, true
	b.owner = rs.cfg.NameOwner(name)
	uv := usermap.IntoUIDValidity(mb.UIDValidity, timeNow())
	mb.UIDValidity, b.src.UIDValidity = uv, uv
	parent, found, err := rs.folderACL(name, b.owner)
	if err != nil {
		return err
	}
	b.acl = partition.ParseACL(usermap.IntoACL(b.owner, parent, found, partition.FormatACL(b.acl)))
	kept := b.annots[:0]
	for _, a := range b.annots {
		if !usermap.DropInto(a.Entry) {
			kept = append(kept, a)
		}
	}
	b.annots = kept
	return nil
}

// folderACL returns the ACL of the nearest ancestor of name that owner
// owns, as the restore leaves it, if any (usermap.IntoACL decides).
func (rs *restorer) folderACL(name, owner string) (string, bool, error) {
	if owner == "" {
		return "", false, nil
	}
	for c := mboxname.Parent(name); c != ""; c = mboxname.Parent(c) {
		acl, found, err := rs.aclAsLeft(c, owner)
		if found || err != nil {
			return acl, found, err
		}
	}
	return "", false, nil
}

// aclAsLeft returns the ACL of mailbox c, if owner owns it, as the
// restore leaves it: a mailbox the restore creates or replaces (one of
// the dump, or a missing parent created before) has the ACL it is given,
// as with --server, where Cyrus has created it by then; any other, the
// target's, if it has c (not deleted, not an intermediate placeholder).
func (rs *restorer) aclAsLeft(c, owner string) (string, bool, error) {
	if rs.cfg.NameOwner(c) != owner {
		return "", false, nil
	}
	b, err := rs.named(c)
	if err != nil {
		return "", false, err
	}
	if b != nil {
		if b, err = spill.Peek(rs.parked, b); err != nil {
			return "", false, err
		}
	}
	if b != nil && (b.res.Action == ActionCreate || b.res.Action == ActionReplace) {
		return partition.FormatACL(b.acl), true, nil
	}
	e, ok, err := rs.spool.LookupAny(c)
	if err != nil {
		return "", false, err
	}
	if ok && !e.Deleted() && !e.Intermediate() {
		return partition.FormatACL(e.ACL), true, nil
	}
	return "", false, nil
}

// checkInto reports a --into whose mailbox the dump does not hold.
func (rs *restorer) checkInto() error {
	if rs.opts.Into != "" && rs.into == nil {
		return fmt.Errorf("%w %s: no mailbox of the dump is selected", ErrInto, rs.opts.Into)
	}
	return nil
}
