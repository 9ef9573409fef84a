package usermap

import (
	"strings"
	"time"

	"github.com/mbtool/mbtool/mboxname"
)

// Child is a mailbox a restore creates, or keeps as already present, as
// the target has it (or will have it): what MissingParents needs of it.
type Child struct {
	Name  string // internal name
	Owner string // userid owning Name ("" for a shared or deleted mailbox)
	// Inbox is the internal name of Owner's INBOX in the target.
	Inbox string
	// Partition is the partition the child has in the target: a kept
	// mailbox's own, a created one's as the restore creates it.
	Partition string
	// CreatedModseq and FolderModseq are the child's, as the target has
	// them (a kept mailbox's own, a created one's as restored).
	CreatedModseq, FolderModseq uint64
}

// Parent is a missing parent of a Child to create: an empty mailbox of
// the child's owner.
type Parent struct {
	Name      string
	Partition string
	ACL       string // Cyrus's string form (id TAB rights TAB ...)
	// UIDValidity is a new one, as Cyrus gives a new mailbox.
	UIDValidity uint32
	// CreatedModseq and FolderModseq are the child's FOLDERMODSEQ (its
	// CREATEDMODSEQ when it has none, at least 1), as Cyrus's
	// mboxlist_update_intermediaries gives the folder modseq of the
	// create to the intermediates it makes.
	CreatedModseq, FolderModseq uint64
	// Options are its OPTIONS in replication's letters: ParentOptions.
	Options string
}

// ParentOptions are the OPTIONS of a missing parent, in replication's
// letters: POP3_NEW_UIDL alone ("P"), what Cyrus 3.6 stores for a mailbox
// it creates with the default mailbox_default_options (0), the
// intermediates of a CREATE included (a real Cyrus's CREATE
// user.x.P.Q.R leaves P with options 0x1). Not the child's: Cyrus does
// not give an intermediate the options of the mailbox created below it.
const ParentOptions = "P"

// MissingParents is the one rule, for both restores, of the missing
// parents of a mailbox the restore creates or keeps: every ancestor of
// c strictly below its owner's INBOX that present says the target lacks
// (present reports a mailbox that exists, not deleted and not an
// intermediate placeholder, or that this run creates), as Cyrus 3.6
// creates every missing level when it creates a mailbox (imap/mboxlist.c
// mboxlist_update_intermediaries). Each is created empty:
//
//   - on the child's partition (c.Partition), as Cyrus's CREATE puts the
//     parents it creates on the partition of the mailbox created;
//   - with the ACL of its nearest present ancestor (aclOf, asked once for
//     each such ancestor, the INBOX included), or the owner's full rights
//     when there is none (IntoACL);
//   - with a new UIDVALIDITY (IntoUIDValidity at now) and the child's
//     folder modseq as created and folder modseq;
//   - with the OPTIONS ParentOptions, whatever the child's.
//
// The INBOX itself is never a missing parent, and a shared or deleted
// mailbox has none. The parents are returned outermost first, the order
// to create them in so that each finds its own parent.
func MissingParents(c Child, now time.Time, present func(name string) (bool, error),
	aclOf func(name string) (acl string, found bool, err error)) ([]Parent, error) {
	if c.Owner == "" || c.Inbox == "" || !strings.HasPrefix(c.Name, c.Inbox+".") {
		return nil, nil
	}
	var chain []string // the ancestors below the INBOX, innermost first
	for a := mboxname.Parent(c.Name); len(a) > len(c.Inbox); a = mboxname.Parent(a) {
		chain = append(chain, a)
	}
	modseq := c.FolderModseq
	if modseq == 0 {
		modseq = max(c.CreatedModseq, 1)
	}
	uv := IntoUIDValidity(0, now)
	var out []Parent
	// Walk outermost first, remembering the nearest present ancestor;
	// its ACL is asked for only when a missing parent below needs it.
	nearest, err := presentOr(present, c.Inbox)
	if err != nil {
		return nil, err
	}
	acl, aclKnown, found := "", false, false
	for i := len(chain) - 1; i >= 0; i-- {
		a := chain[i]
		ok, err := present(a)
		if err != nil {
			return nil, err
		}
		if ok {
			nearest, aclKnown = a, false
			continue
		}
		if !aclKnown {
			acl, found = "", false
			if nearest != "" {
				if acl, found, err = aclOf(nearest); err != nil {
					return nil, err
				}
			}
			acl, aclKnown = IntoACL(c.Owner, acl, found, ""), true
		}
		out = append(out, Parent{Name: a, Partition: c.Partition, ACL: acl, UIDValidity: uv,
			CreatedModseq: modseq, FolderModseq: modseq, Options: ParentOptions})
	}
	return out, nil
}

// presentOr returns name if present says it is there, else "".
func presentOr(present func(string) (bool, error), name string) (string, error) {
	ok, err := present(name)
	if !ok || err != nil {
		return "", err
	}
	return name, nil
}
