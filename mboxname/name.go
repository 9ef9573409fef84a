// Package mboxname owns Cyrus's mailbox names as mbtool meets them in a
// dump: the internal name of a user's INBOX and the owner of a name, the
// conversion of what an operator types (an IMAP name in a user's
// namespace, with '/' or '.' as separator, in UTF-8) into internal names
// in modified UTF-7, and the Selector that restore, `restore --server` and
// `list` use to pick users and mailboxes with Cyrus's `*` and `%`
// patterns.
//
// Names in a dump are internal names with Cyrus's default namespace, as
// its replication sends them (imap/mboxname.c): "user.alice.Sent",
// "example.com!user.bob", "DELETED.user.alice.Gone.6B0F37A3", a shared
// "shared.news"; a '.' inside a component is written '^'.
package mboxname

import (
	"strings"
)

// DeletedPrefix is the default deletedprefix of imapd.conf: Cyrus's
// delayed delete renames a mailbox to DELETED.<name>.<hex time>.
const DeletedPrefix = "DELETED"

// UserInbox returns the internal name of a user's INBOX with Cyrus's
// default namespace: "user.alice", "example.com!user.alice" for
// alice@example.com; a '.' in the local part is stored as '^'.
func UserInbox(user string) string {
	local, domain, ok := strings.Cut(user, "@")
	name := "user." + strings.ReplaceAll(local, ".", "^")
	if ok {
		return domain + "!" + name
	}
	return name
}

// Owner returns the userid that owns an internal mailbox name with Cyrus's
// default namespace ("user.jo^doe.Sent" -> "jo.doe", "example.com!user.bob"
// -> "bob@example.com"), or "" for a shared or deleted mailbox (see
// DeletedOwner).
func Owner(name string) string {
	domain, local, ok := strings.Cut(name, "!")
	if !ok {
		domain, local = "", name
	}
	rest, ok := strings.CutPrefix(local, "user.")
	if !ok {
		return ""
	}
	user, _, _ := strings.Cut(rest, ".")
	user = strings.ReplaceAll(user, "^", ".")
	if domain != "" {
		user += "@" + domain
	}
	return user
}

// Deleted reports whether name is a mailbox of Cyrus's delayed delete
// (DELETED.user.alice.Gone.6B0F37A3, or with a "domain!" prefix), and
// returns the name it had before ("user.alice.Gone").
func Deleted(name string) (original string, ok bool) {
	return DeletedUnder(name, DeletedPrefix)
}

// DeletedUnder is Deleted for a deleted tree under prefix, the
// deletedprefix of imapd.conf (imap/mboxlist.c
// mboxlist_delayed_deletemailbox renames a mailbox to
// <prefix>.<name>.<hex time>): "Trash.user.alice.A.B.6b0f37a3" had
// "user.alice.A.B" under "Trash". prefix "" accepts any one word but
// "user", for a server whose deletedprefix mbtool does not know.
func DeletedUnder(name, prefix string) (original string, ok bool) {
	domain, local, hasDomain := strings.Cut(name, "!")
	if !hasDomain {
		domain, local = "", name
	}
	word, rest, ok := strings.Cut(local, ".")
	if !ok || word == "" || word == "user" || (prefix != "" && word != prefix) {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || !isHex(rest[i+1:]) {
		return "", false
	}
	original = rest[:i]
	if hasDomain {
		original = domain + "!" + original
	}
	return original, true
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

// DeletedOwner returns the owner of a mailbox, deleted or not: the user
// whose mailbox it is or was ("" for a shared one).
func DeletedOwner(name string) string {
	if orig, ok := Deleted(name); ok {
		return Owner(orig)
	}
	return Owner(name)
}

// ModseqCounter names the modseq counter that the changes of mailbox name
// count in with `conversations: yes` (imap/mboxname.c
// mboxname_conf_getpath(..., "counters")): its owner's (for a deleted
// mailbox, the owner it had; deleted reports that Cyrus's commit leaves
// the changes of a deleted mailbox uncounted, imap/mailbox.c
// mailbox_commit), or, for a shared mailbox (user ""), the shared
// mailboxes' of its domain.
func ModseqCounter(name string) (user, domain string, deleted bool) {
	orig, deleted := Deleted(name)
	if !deleted {
		orig = name
	}
	if user = Owner(orig); user == "" {
		domain, _, _ = strings.Cut(orig, "!")
		if domain == orig {
			domain = ""
		}
	}
	return user, domain, deleted
}

// ModseqCounterKey names the counter of mailbox name (ModseqCounter) in
// one string: the mailboxes of one user, or the shared mailboxes of one
// domain, have the same.
func ModseqCounterKey(name string) string {
	user, domain, _ := ModseqCounter(name)
	if user != "" {
		return "u " + user
	}
	return "s " + domain
}

// External returns an internal name as the user who owns it sees it over
// IMAP with Cyrus's default namespace and '/' as separator ("user.alice"
// -> "INBOX", "user.alice.Entw&APw-rfe" -> "INBOX/Entwürfe"), and the
// owner; for a shared or deleted mailbox the name with '/' separators and
// "". Modified UTF-7 is decoded when it is valid.
func External(name string) (ext, owner string) {
	owner = Owner(name)
	local := name
	if owner != "" {
		inbox := UserInbox(owner)
		local = "INBOX" + name[len(inbox):]
	} else if _, l, ok := strings.Cut(name, "!"); ok {
		local = l
	}
	comps := strings.Split(local, ".")
	for i, c := range comps {
		c = strings.ReplaceAll(c, "^", ".")
		if u, ok := DecodeMUTF7(c); ok {
			c = u
		}
		comps[i] = c
	}
	return strings.Join(comps, "/"), owner
}

// Parent returns the name of the parent of an internal name: the name
// without its last component ("user.alice.A.B" -> "user.alice.A",
// "example.com!user.bob" -> "example.com!user"), a domain's root for the
// top of a domain ("example.com!user" -> "example.com!", where a domain's
// quota root lives), and "" at the top. A '.' of the domain part is not a
// separator.
func Parent(name string) string {
	domain, local := "", name
	if i := strings.IndexByte(name, '!'); i >= 0 {
		domain, local = name[:i+1], name[i+1:]
	}
	if i := strings.LastIndexByte(local, '.'); i >= 0 {
		return domain + local[:i]
	}
	if local != "" {
		return domain
	}
	return ""
}
