package restore

import (
	"crypto/rand"
	"errors"

	"github.com/mbtool/mbtool/dumpcheck"
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
	ErrDamaged = dumpcheck.ErrDamaged
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
