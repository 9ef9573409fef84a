package restore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/partition"
)

// Errors about the content of a dump that make restore refuse it whole,
// before anything is visible in the target. They are wrapped with the
// offending value.
var (
	// ErrUnsafeName: a mailbox name, userid, uniqueid, flag or annotation
	// name that is malformed or could escape the target's directories.
	ErrUnsafeName = errors.New("unsafe or invalid name in dump")
	// ErrPartition: the dump names a partition the target does not have.
	ErrPartition = errors.New("partition not configured in the target")
	// ErrDamaged: the dump is structurally wrong (records out of order,
	// sizes that do not match, more than 128 user flags).
	ErrDamaged = errors.New("damaged dump")
	// ErrIndexVersion: the dump comes from a Cyrus whose cyrus.index version
	// this restore cannot write.
	ErrIndexVersion = errors.New("unsupported index version")
)

// maxNameLen is Cyrus's MAX_MAILBOX_NAME.
const maxNameLen = 490

// checkName validates an internal mailbox name from the dump: printable
// ASCII (names are modified UTF-7), no '/', at most maxNameLen bytes, an
// optional "domain!" prefix, and no component that is empty or, once '^'
// is read as '.', "." or ".." or starts with '.' (Cyrus's
// mboxname_policycheck refuses those too). Such names cannot reach outside
// the partition in either directory layout.
func checkName(what, name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %q: %s", ErrUnsafeName, what, name, why)
	}
	if name == "" {
		return bad("empty")
	}
	if len(name) > maxNameLen {
		return bad("too long")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x20 || c >= 0x7f {
			return bad(fmt.Sprintf("byte 0x%02x", c))
		}
		if c == '/' {
			return bad("contains '/'")
		}
	}
	local := name
	if dom, rest, ok := strings.Cut(name, "!"); ok {
		if dom == "" || strings.HasPrefix(dom, ".") || strings.Contains(dom, "..") {
			return bad("bad domain")
		}
		local = rest
	}
	for _, c := range strings.Split(local, ".") {
		c = strings.ReplaceAll(c, "^", ".")
		if c == "" || c[0] == '.' {
			return bad("empty or dot component")
		}
	}
	return nil
}

// checkUserID validates a userid from the dump (seen and subscription
// owners, ACL identifiers, annotation owners): it becomes part of file
// names in the config directory.
func checkUserID(id string) error {
	if id == "" || len(id) > 255 {
		return fmt.Errorf("%w: userid %q: empty or too long", ErrUnsafeName, id)
	}
	if id[0] == '.' {
		return fmt.Errorf("%w: userid %q: starts with '.'", ErrUnsafeName, id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f || c == '/' {
			return fmt.Errorf("%w: userid %q: byte 0x%02x", ErrUnsafeName, id, c)
		}
	}
	return nil
}

// checkUniqueID validates a mailbox uniqueid: 24 characters of [0-9a-z] in
// Debian's build, 36-character UUIDs with libuuid, other lengths from older
// versions; it names a directory in the uuid layout.
func checkUniqueID(id string) error {
	if len(id) < 2 || len(id) > 64 {
		return fmt.Errorf("%w: uniqueid %q: length %d", ErrUnsafeName, id, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return fmt.Errorf("%w: uniqueid %q: byte 0x%02x", ErrUnsafeName, id, c)
		}
	}
	return nil
}

// checkText validates a flag, annotation entry or ACL rights string: no
// NUL or line breaks, bounded length.
func checkText(what, s string) error {
	if s == "" || len(s) > 1024 {
		return fmt.Errorf("%w: %s %q: empty or too long", ErrUnsafeName, what, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %s %q: byte 0x%02x", ErrUnsafeName, what, s, c)
		}
	}
	return nil
}

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
		if err := checkUserID(old); err != nil {
			return nil, err
		}
		if err := checkUserID(nu); err != nil {
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
