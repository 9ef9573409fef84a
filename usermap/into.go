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

// DeletedOriginal returns the name a mailbox of Cyrus's deleted tree had
// before it was deleted (delete_mode: delayed; imap/mboxlist.c
// mboxlist_delayed_deletemailbox): "DELETED.user.alice.Gone.6B0F37A3" had
// "user.alice.Gone", "example.com!DELETED.user.bob.X.6B0F37A3" had
// "example.com!user.bob.X". prefix is the deletedprefix; "" accepts any
// one word but "user". ok is false for a name outside the deleted tree.
func DeletedOriginal(name, prefix string) (string, bool) {
	dom, local := "", name
	if d, rest, ok := strings.Cut(name, "!"); ok {
		dom, local = d+"!", rest
	}
	word, rest, ok := strings.Cut(local, ".")
	if !ok || word == "" || word == "user" || (prefix != "" && word != prefix) {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || !isHex(rest[i+1:]) {
		return "", false
	}
	return dom + rest[:i], true
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
