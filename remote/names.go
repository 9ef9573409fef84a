package remote

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// Errors about a dump's content that make Restore refuse it whole, before
// connecting. They are wrapped with the offending value and position.
var (
	// ErrDamaged: the dump is damaged or is not what mbtool writes
	// (a GUID or size mismatch, records out of order, a trailer that
	// does not match). Sending it could crash or corrupt the server.
	ErrDamaged = errors.New("damaged dump")
	// ErrUnsafeName: a mailbox name, userid, uniqueid, partition, flag or
	// annotation name that Cyrus would refuse or misread.
	ErrUnsafeName = errors.New("unsafe or invalid name in dump")
)

// maxNameLen is Cyrus's MAX_MAILBOX_NAME.
const maxNameLen = 490

// maxUserFlags is Cyrus's MAX_USER_FLAGS.
const maxUserFlags = 128

// checkName validates an internal mailbox name: printable ASCII (names
// are modified UTF-7), no '/', at most maxNameLen bytes, an optional
// "domain!" prefix, no empty component and none starting with '.'
// (as restore's check; Cyrus's mboxname_policycheck refuses those too).
func checkName(what, name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %q: %s", ErrUnsafeName, what, name, why)
	}
	if name == "" || len(name) > maxNameLen {
		return bad("empty or too long")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == '/' {
			return bad(fmt.Sprintf("byte 0x%02x", c))
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

// checkUserID validates a userid (owners of seen state, subscriptions,
// annotations; ACL identifiers).
func checkUserID(id string) error {
	if id == "" || len(id) > 255 || id[0] == '.' {
		return fmt.Errorf("%w: userid %q", ErrUnsafeName, id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f || c == '/' {
			return fmt.Errorf("%w: userid %q: byte 0x%02x", ErrUnsafeName, id, c)
		}
	}
	return nil
}

// checkUniqueID validates a mailbox uniqueid: [0-9A-Za-z-], 2 to 64
// characters (24 in Debian's build, 36 with libuuid).
func checkUniqueID(id string) error {
	if len(id) < 2 || len(id) > 64 {
		return fmt.Errorf("%w: uniqueid %q", ErrUnsafeName, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return fmt.Errorf("%w: uniqueid %q: byte 0x%02x", ErrUnsafeName, id, c)
		}
	}
	return nil
}

// checkPartition validates a partition name: an atom of printable ASCII.
// Whether the server has it is checked on the server (see Restore).
func checkPartition(p string) error {
	if p == "" || len(p) > 255 {
		return fmt.Errorf("%w: partition %q", ErrUnsafeName, p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= 0x20 || c >= 0x7f || strings.IndexByte(`/(){}"%*\`, c) >= 0 {
			return fmt.Errorf("%w: partition %q: byte 0x%02x", ErrUnsafeName, p, c)
		}
	}
	return nil
}

// checkText validates an annotation entry or ACL rights string.
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

// checkEntry validates an annotation entry name as Cyrus writes them:
// "/"-separated words, no wildcard, no empty word.
func checkEntry(e string) error {
	if err := checkText("annotation", e); err != nil {
		return err
	}
	if e[0] != '/' || strings.HasSuffix(e, "/") || strings.Contains(e, "//") || strings.ContainsAny(e, "*%") {
		return fmt.Errorf("%w: annotation %q", ErrUnsafeName, e)
	}
	return nil
}

// checkFlag validates a flag as Cyrus's sync_getflags reads it and the
// dlist writer prints it: a known system flag, or a user flag that is an
// atom.
func checkFlag(f string) error {
	if strings.HasPrefix(f, `\`) {
		switch strings.ToLower(f) {
		case `\answered`, `\flagged`, `\deleted`, `\draft`, `\seen`, `\expunged`:
			return nil
		}
		return fmt.Errorf("%w: unknown system flag %q", ErrUnsafeName, f)
	}
	if f == "" || len(f) > 1024 || strings.EqualFold(f, "NIL") || f[0] == '{' || f[0] == '%' {
		return fmt.Errorf("%w: flag %q", ErrUnsafeName, f)
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; c <= 0x20 || c >= 0x7f || strings.IndexByte(`()"\*%{`, c) >= 0 {
			return fmt.Errorf("%w: flag %q: byte 0x%02x", ErrUnsafeName, f, c)
		}
	}
	return nil
}

// checkSeqSet checks a seen set holds only sequence-set characters.
func checkSeqSet(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || c == ':' || c == ',' || c == '*') {
			return fmt.Errorf("%w: seen set %q", ErrDamaged, s)
		}
	}
	return nil
}

// checkACL validates an ACL string.
func checkACL(acl string) error {
	for _, a := range partition.ParseACL(acl) {
		if err := checkUserID(strings.TrimPrefix(a.ID, "-")); err != nil {
			return fmt.Errorf("ACL: %w", err)
		}
		if err := checkText("ACL rights", a.Rights); err != nil {
			return err
		}
	}
	return nil
}

// userInbox returns the internal name of a user's INBOX with Cyrus's
// default namespace: "user.alice", "example.com!user.alice" for
// alice@example.com; a '.' in the local part is stored as '^'.
func userInbox(user string) string {
	local, domain, ok := strings.Cut(user, "@")
	name := "user." + strings.ReplaceAll(local, ".", "^")
	if ok {
		return domain + "!" + name
	}
	return name
}

// ownerOf returns the user owning an internal mailbox name, or "" for a
// shared mailbox (the inverse of userInbox).
func ownerOf(name string) string {
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

// userMap renames users for --map-user.
type userMap struct {
	users map[string]string // old userid -> new
	boxes [][2]string       // old INBOX -> new INBOX
}

func newUserMap(m map[string]string) (*userMap, error) {
	u := &userMap{users: make(map[string]string)}
	for old, nu := range m {
		if err := checkUserID(old); err != nil {
			return nil, err
		}
		if err := checkUserID(nu); err != nil {
			return nil, err
		}
		u.users[old] = nu
		u.boxes = append(u.boxes, [2]string{userInbox(old), userInbox(nu)})
	}
	return u, nil
}

func (u *userMap) user(id string) string {
	if n, ok := u.users[id]; ok {
		return n
	}
	return id
}

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

func (u *userMap) acl(acl string) string {
	if len(u.users) == 0 {
		return acl
	}
	entries := partition.ParseACL(acl)
	for i, a := range entries {
		if neg, ok := strings.CutPrefix(a.ID, "-"); ok {
			entries[i].ID = "-" + u.user(neg)
		} else {
			entries[i].ID = u.user(a.ID)
		}
	}
	return partition.FormatACL(entries)
}

// annotations maps the owners of annotations, in place.
func (u *userMap) annotations(as []syncrec.Annotation) {
	for i := range as {
		if as[i].UserID != "" {
			as[i].UserID = u.user(as[i].UserID)
		}
	}
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
