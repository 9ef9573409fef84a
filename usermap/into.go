package usermap

import (
	"strings"
	"time"
)

// --into (restore a mailbox as a new one under another name), for both
// restores: the rules that make the copy a folder of its new owner rather
// than a clone of the old mailbox.

// OwnerRights are the rights Cyrus gives a user on a personal mailbox it
// creates with no parent to copy them from (imap/mboxlist.c: ACL_ALL for
// the owner).
const OwnerRights = "lrswipkxtecdan"

// IntoUIDValidity returns the UIDVALIDITY of a mailbox restored under
// another name: the time, as Cyrus gives a new mailbox one
// (mboxname_nextuidvalidity), and above the dumped mailbox's, so that no
// client takes one for the other.
func IntoUIDValidity(dumped uint32, now time.Time) uint32 {
	uv := uint32(min(max(now.Unix(), 1), 1<<32-1))
	if uv <= dumped {
		uv = dumped + 1
	}
	return uv
}

// IntoACL returns the ACL (Cyrus's string form) of a mailbox restored
// under another name of owner: parent's, the ACL of the owner's nearest
// existing ancestor mailbox, as Cyrus's create copies it; the owner's
// full rights when there is none; dumped for a shared mailbox.
func IntoACL(owner, parent string, found bool, dumped string) string {
	switch {
	case owner == "":
		return dumped
	case found:
		return parent
	}
	return owner + "\t" + OwnerRights + "\t"
}

// DropInto reports a mailbox annotation a mailbox restored under another
// name does not keep: SPECIAL-USE, which stays with the owner's own
// folder of that use.
func DropInto(entry string) bool { return strings.EqualFold(entry, "/specialuse") }
