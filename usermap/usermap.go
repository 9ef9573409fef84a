// Package usermap renames users for restore's --map-user, offline and over
// the replication protocol alike: userids (in ACLs, seen, subscription and
// annotation owners) and the internal mailbox names below a user's INBOX.
package usermap

import (
	"strings"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// Map renames users. The zero of it (nil entries) renames nothing.
type Map struct {
	users map[string]string // old userid -> new
	boxes [][2]string       // old INBOX name -> new INBOX name
}

// New returns the map of m (old userid -> new), with inbox giving a
// user's INBOX as an internal mailbox name. Every userid must be valid
// (dumpcheck.CheckUserID).
func New(m map[string]string, inbox func(user string) string) (*Map, error) {
	u := &Map{users: make(map[string]string)}
	for old, nu := range m {
		if err := dumpcheck.CheckUserID(old); err != nil {
			return nil, err
		}
		if err := dumpcheck.CheckUserID(nu); err != nil {
			return nil, err
		}
		u.users[old] = nu
		u.boxes = append(u.boxes, [2]string{inbox(old), inbox(nu)})
	}
	return u, nil
}

// Empty reports whether the map renames nobody.
func (u *Map) Empty() bool { return len(u.users) == 0 }

// User maps a userid.
func (u *Map) User(id string) string {
	if n, ok := u.users[id]; ok {
		return n
	}
	return id
}

// Name maps an internal mailbox name: the old user's INBOX and everything
// below it move to the new user's.
func (u *Map) Name(name string) string {
	for _, b := range u.boxes {
		if name == b[0] {
			return b[1]
		}
		if strings.HasPrefix(name, b[0]+".") {
			return b[1] + name[len(b[0]):]
		}
	}
	return name
}

// ACL maps the identifiers of an ACL ("-id" negative rights included),
// into a new slice.
func (u *Map) ACL(acl []partition.ACLEntry) []partition.ACLEntry {
	out := make([]partition.ACLEntry, len(acl))
	for i, a := range acl {
		id := a.ID
		if neg, ok := strings.CutPrefix(id, "-"); ok {
			id = "-" + u.User(neg)
		} else {
			id = u.User(id)
		}
		out[i] = partition.ACLEntry{ID: id, Rights: a.Rights}
	}
	return out
}

// Annotations maps the owners of annotations (mailbox or message level),
// in place; shared ones (no owner) stay.
func (u *Map) Annotations(as []syncrec.Annotation) {
	for i := range as {
		if as[i].UserID != "" {
			as[i].UserID = u.User(as[i].UserID)
		}
	}
}
