// Package dumpcheck validates names and values read from a dump before
// they are used: as parts of file names in a Cyrus partition or config
// directory, as keys in its databases, or on the replication wire. A dump
// is outside data; a name such as "user.x.^^" or "../" must never lead
// outside the target, and a flag or annotation Cyrus could not print back
// must never reach a server.
package dumpcheck

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// ErrUnsafeName is wrapped by every error of this package: a mailbox name,
// userid, uniqueid, partition, flag or annotation name that is malformed or
// could escape the target's directories.
var ErrUnsafeName = errors.New("unsafe or invalid name in dump")

// maxNameLen is Cyrus's MAX_MAILBOX_NAME.
const maxNameLen = 490

// CheckName validates an internal mailbox name from the dump: printable
// ASCII (names are modified UTF-7), no '/', at most maxNameLen bytes, an
// optional "domain!" prefix, and no component that is empty or, once '^'
// is read as '.', "." or ".." or starts with '.' (Cyrus's
// mboxname_policycheck refuses those too). Such names cannot reach outside
// the partition in either directory layout.
func CheckName(what, name string) error {
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

// CheckUserID validates a userid from the dump (seen and subscription
// owners, ACL identifiers, annotation owners): it becomes part of file
// names in the config directory.
func CheckUserID(id string) error {
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

// CheckUniqueID validates a mailbox uniqueid: 24 characters of [0-9a-z] in
// Debian's build, 36-character UUIDs with libuuid, other lengths from older
// versions; it names a directory in the uuid layout.
func CheckUniqueID(id string) error {
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

// CheckText validates a flag, annotation entry or ACL rights string: no
// NUL or line breaks, bounded length.
func CheckText(what, s string) error {
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

// CheckPartition validates a partition name: an atom of printable ASCII.
// Whether the server has it is checked on the server (see Restore).
func CheckPartition(p string) error {
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

// CheckEntry validates an annotation entry name as Cyrus writes them:
// "/"-separated words, no wildcard, no empty word.
func CheckEntry(e string) error {
	if err := CheckText("annotation", e); err != nil {
		return err
	}
	if e[0] != '/' || strings.HasSuffix(e, "/") || strings.Contains(e, "//") || strings.ContainsAny(e, "*%") {
		return fmt.Errorf("%w: annotation %q", ErrUnsafeName, e)
	}
	return nil
}

// CheckFlag validates a flag as Cyrus's sync_getflags reads it and the
// dlist writer prints it: a known system flag, or a user flag that is an
// atom.
func CheckFlag(f string) error {
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

// CheckACL validates an ACL string.
func CheckACL(acl string) error {
	for _, a := range partition.ParseACL(acl) {
		if err := CheckUserID(strings.TrimPrefix(a.ID, "-")); err != nil {
			return fmt.Errorf("ACL: %w", err)
		}
		if err := CheckText("ACL rights", a.Rights); err != nil {
			return err
		}
	}
	return nil
}

// ErrInvalid is wrapped by errors about values that are malformed without
// being dangerous, such as a seen set that is not a sequence set.
var ErrInvalid = errors.New("invalid value in dump")

// CheckSeqSet checks that a seen set holds only the characters of an IMAP
// sequence set (Cyrus's imparse_issequence); Cyrus would discard anything
// else when it reads the record.
func CheckSeqSet(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || c == ':' || c == ',' || c == '*') {
			return fmt.Errorf("%w: seen set %q", ErrInvalid, s)
		}
	}
	return nil
}

// Quota decodes the value of an APPLY QUOTA line and checks its root.
func Quota(v *dlist.Value) (*syncrec.Quota, error) {
	q, err := syncrec.DecodeQuota(v)
	if err != nil {
		return nil, err
	}
	if err := CheckName("quota root", q.Root); err != nil {
		return nil, err
	}
	return q, nil
}

// Sub decodes the value of an APPLY SUB line and checks its user and
// mailbox name.
func Sub(v *dlist.Value) (*syncrec.Sub, error) {
	s, err := syncrec.DecodeSub(v)
	if err != nil {
		return nil, err
	}
	if err := CheckUserID(s.UserID); err != nil {
		return nil, err
	}
	if err := CheckName("subscription", s.MboxName); err != nil {
		return nil, err
	}
	return s, nil
}

// Seen decodes the value of an APPLY SEEN line and checks its user,
// uniqueid and seen set.
func Seen(v *dlist.Value) (*syncrec.Seen, error) {
	s, err := syncrec.DecodeSeen(v)
	if err != nil {
		return nil, err
	}
	if err := CheckUserID(s.UserID); err != nil {
		return nil, err
	}
	if err := CheckUniqueID(s.UniqueID); err != nil {
		return nil, err
	}
	if err := CheckSeqSet(s.SeenUIDs); err != nil {
		return nil, err
	}
	return s, nil
}

// UserData collects a dump's APPLY QUOTA, SUB and SEEN lines, decoded and
// checked.
type UserData struct {
	Quotas []*syncrec.Quota
	Subs   []*syncrec.Sub
	Seen   []*syncrec.Seen
	// ServerAnnotations are users' private annotations of the server
	// (APPLY ANNOTATION with MBOXNAME "").
	ServerAnnotations []*syncrec.Annotation
}

// Read reads the rest of the current line of d, an APPLY QUOTA, SUB or SEEN
// named by name, through its end, and adds it. It reports false, reading
// nothing, for any other command.
func (u *UserData) Read(d *dumpfile.Reader, name string) (bool, error) {
	if name != "QUOTA" && name != "SUB" && name != "SEEN" && name != "ANNOTATION" {
		return false, nil
	}
	v, err := d.DL().ReadValue()
	if err != nil {
		return true, err
	}
	if err := d.EndLine(); err != nil {
		return true, err
	}
	switch name {
	case "QUOTA":
		q, err := Quota(v)
		if err != nil {
			return true, err
		}
		u.Quotas = append(u.Quotas, q)
	case "SUB":
		s, err := Sub(v)
		if err != nil {
			return true, err
		}
		u.Subs = append(u.Subs, s)
	case "ANNOTATION":
		a, err := syncrec.DecodeServerAnnotation(v)
		if err != nil {
			return true, err
		}
		if err := CheckUserID(a.UserID); err != nil { // only users' private ones are carried
			return true, fmt.Errorf("server annotation %s: %w", a.Entry, err)
		}
		if err := CheckText("annotation", a.Entry); err != nil {
			return true, err
		}
		u.ServerAnnotations = append(u.ServerAnnotations, a)
	default:
		s, err := Seen(v)
		if err != nil {
			return true, err
		}
		u.Seen = append(u.Seen, s)
	}
	return true, nil
}
