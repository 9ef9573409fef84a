package remote

import (
	"crypto/sha256"
	"fmt"

	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/usermap"
)

// Errors about a dump's content that make Restore refuse it whole, before
// connecting. They are wrapped with the offending value and position.
var (
	// ErrDamaged: the dump is damaged or is not what mbtool writes
	// (a GUID or size mismatch, records out of order, a trailer that
	// does not match). Sending it could crash or corrupt the server.
	ErrDamaged = dumpcheck.ErrDamaged
	// ErrUnsafeName: a mailbox name, userid, uniqueid, partition, flag or
	// annotation name that Cyrus would refuse or misread.
	ErrUnsafeName = dumpcheck.ErrUnsafeName
)

// mapACL maps the identifiers of an ACL string.
func mapACL(u *usermap.Map, acl string) string {
	if u.Empty() {
		return acl
	}
	return partition.FormatACL(u.ACL(partition.ParseACL(acl)))
}

// newUniqueID derives the k-th replacement uniqueid for a mailbox whose
// own is taken on the server, in Debian's style (24 of [0-9a-z]); derived
// rather than random so that a second run finds the mailbox the first one
// created.
func newUniqueID(old, name string, k int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("mbtool restore\x00%s\x00%s\x00%d", old, name, k)))
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	id := make([]byte, 24)
	for i := range id {
		id[i] = alphabet[int(h[i])%len(alphabet)]
	}
	return string(id)
}
