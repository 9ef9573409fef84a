package restore

import (
	"crypto/rand"
	"errors"
	"strings"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/partition"
)

// Errors about the content of a dump that make restore refuse it whole,
// before anything is visible in the target. They are wrapped with the
// offending value.
var (
	// ErrUnsafeName: a mailbox name, userid, uniqueid, flag or annotation
	// name that is malformed or could escape the target's directories.
	ErrUnsafeName = dumpcheck.ErrUnsafeName
	// ErrPartition: the dump names a partition the target does not have.
	ErrPartition = errors.New("partition not configured in the target")
	// ErrDamaged: the dump is structurally wrong (records out of order,
	// sizes that do not match, more than 128 user flags).
	ErrDamaged = errors.New("damaged dump")
	// ErrIndexVersion: the dump comes from a Cyrus whose cyrus.index version
	// this restore cannot write.
	ErrIndexVersion = errors.New("unsupported index version")
)

// newUniqueID returns a fresh uniqueid in the style of Debian's Cyrus 3.6:
// 24 random characters from [0-9a-z].
func newUniqueID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, 24)
	var b [32]byte
	for len(out) < 24 {
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		for _, c := range b {
			if c < 252 && len(out) < 24 { // 252 = 7*36: no modulo bias
				out = append(out, alphabet[c%36])
			}
		}
	}
	return string(out)
}

// userMap renames users for --map-user: mailbox names below the user's
// INBOX, ACL identifiers, seen and subscription owners, annotation owners.
type userMap struct {
	users map[string]string // old userid -> new
	boxes [][2]string       // old INBOX name -> new INBOX name
}

func newUserMap(spool *partition.Spool, m map[string]string) (*userMap, error) {
	u := &userMap{users: make(map[string]string)}
	for old, nu := range m {
		if err := dumpcheck.CheckUserID(old); err != nil {
			return nil, err
		}
		if err := dumpcheck.CheckUserID(nu); err != nil {
			return nil, err
		}
		u.users[old] = nu
		u.boxes = append(u.boxes, [2]string{spool.UserInbox(old), spool.UserInbox(nu)})
	}
	return u, nil
}

// user maps a userid.
func (u *userMap) user(id string) string {
	if n, ok := u.users[id]; ok {
		return n
	}
	return id
}

// name maps an internal mailbox name: the old user's INBOX and everything
// below it move to the new user's.
func (u *userMap) name(name string) string {
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

// acl maps the identifiers of an ACL ("-id" negative rights included).
func (u *userMap) acl(acl []partition.ACLEntry) []partition.ACLEntry {
	out := make([]partition.ACLEntry, len(acl))
	for i, a := range acl {
		id := a.ID
		if neg, ok := strings.CutPrefix(id, "-"); ok {
			id = "-" + u.user(neg)
		} else {
			id = u.user(id)
		}
		out[i] = partition.ACLEntry{ID: id, Rights: a.Rights}
	}
	return out
}
