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
	"io"
	"strings"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/spill"
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
		return fmt.Errorf("%w: %s %q: %s", ErrUnsafeName, what, clipS(name), why)
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

// Bounds of a userid: the whole at most 255 bytes; the local part at most
// 200, so that every file Cyrus names after it ("<user>.conversations" is
// the longest) fits in a file name of 255 bytes.
const (
	maxUserID    = 255
	maxLocalPart = 200
)

// CheckUserID validates a userid from the dump (seen and subscription
// owners, ACL identifiers, annotation owners, the owner a user mailbox's
// name implies): it becomes part of file names in the config directory,
// the domain part a directory of its own (config/domain/<h>/<domain>). No
// control byte, '/' or '!'; a local part that does not start with '.'; a
// domain of non-empty dot-separated labels.
func CheckUserID(id string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: userid %q: %s", ErrUnsafeName, clipS(id), why)
	}
	if id == "" {
		return bad("empty")
	}
	if len(id) > maxUserID {
		return bad(fmt.Sprintf("longer than %d bytes", maxUserID))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f || c == '/' || c == '!' {
			return bad(fmt.Sprintf("byte 0x%02x", c))
		}
	}
	local, domain, hasDomain := strings.Cut(id, "@")
	if local == "" || local[0] == '.' {
		return bad("empty local part or one that starts with '.'")
	}
	if len(local) > maxLocalPart {
		return bad(fmt.Sprintf("local part longer than %d bytes", maxLocalPart))
	}
	if hasDomain {
		if domain == "" || strings.ContainsRune(domain, '@') {
			return bad("bad domain")
		}
		for _, l := range strings.Split(domain, ".") {
			if l == "" {
				return bad("empty label in the domain")
			}
		}
	}
	return nil
}

func clipS(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
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

// CheckPartition validates a partition name: an atom of printable ASCII
// that does not start with '.' (it names a directory in the staging area
// and a key of imapd.conf). Whether the target has it is checked there.
func CheckPartition(p string) error {
	if p == "" || len(p) > 255 || p[0] == '.' {
		return fmt.Errorf("%w: partition %q", ErrUnsafeName, clipS(p))
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= 0x20 || c >= 0x7f || strings.IndexByte(`/(){}"%*\`, c) >= 0 {
			return fmt.Errorf("%w: partition %q: byte 0x%02x", ErrUnsafeName, clipS(p), c)
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
		if a.Rights == "" {
			continue // no rights: Cyrus prints such an entry too
		}
		if err := CheckText("ACL rights", a.Rights); err != nil {
			return err
		}
	}
	return nil
}

// ErrInvalid is wrapped by errors about values that are malformed without
// being dangerous, such as a seen set that is not a sequence set. It is
// ErrDamaged.
var ErrInvalid = ErrDamaged

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

// Quota decodes the value of an APPLY QUOTA line and checks it (Dump.Quota).
func Quota(v *dlist.Value) (*syncrec.Quota, error) {
	q, err := syncrec.DecodeQuota(v)
	if err == nil {
		err = (*Dump)(nil).Quota(q)
	}
	return q, err
}

// Sub decodes the value of an APPLY SUB line and checks it (Dump.Sub).
func Sub(v *dlist.Value) (*syncrec.Sub, error) {
	s, err := syncrec.DecodeSub(v)
	if err == nil {
		err = (*Dump)(nil).Sub(s)
	}
	return s, err
}

// Seen decodes the value of an APPLY SEEN line and checks it (Dump.Seen).
func Seen(v *dlist.Value) (*syncrec.Seen, error) {
	s, err := syncrec.DecodeSeen(v)
	if err == nil {
		err = (*Dump)(nil).Seen(s)
	}
	return s, err
}

// NewReader opens a dump for reading with the bounds of the one reader
// (syncrec.Limits): every path that reads a dump opens it here.
func NewReader(r io.Reader) (*dumpfile.Reader, error) {
	return NewReaderWith(r, dumpfile.ReaderOptions{})
}

// NewReaderWith is NewReader with options (an unsealed stream).
func NewReaderWith(r io.Reader, opts dumpfile.ReaderOptions) (*dumpfile.Reader, error) {
	d, err := dumpfile.NewReaderWith(r, opts)
	if err != nil {
		return nil, err
	}
	d.DL().SetLimits(syncrec.Limits())
	return d, nil
}

// Files reads the value of an APPLY MESSAGE line, a list of file literals,
// calling fn with each file literal's token; fn may read the file's body
// from dl.Body() (what it leaves unread is skipped). Errors wrap ErrDamaged
// when the list is not one of file literals.
func Files(dl *dlist.Reader, fn func(dlist.Token) error) error {
	t, err := dl.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.List {
		return fmt.Errorf("%w: expected a list of files, found %v", ErrDamaged, t.Kind)
	}
	for {
		t, err := dl.Next()
		if err != nil {
			return err
		}
		if t.Kind == dlist.End {
			return nil
		}
		if t.Kind != dlist.File {
			return fmt.Errorf("%w: offset %d: expected a file literal, found %v", ErrDamaged, t.Offset, t.Kind)
		}
		if err := fn(t); err != nil {
			return err
		}
	}
}

// UserData collects a dump's APPLY QUOTA, SUB and SEEN lines, decoded and
// checked, for a restore that applies them after the mailboxes. Quotas are
// kept in memory: one per quota root, each a name and a few numbers.
// Subscriptions (one per user and mailbox) and seen records (which carry
// a seen set of up to syncrec.MaxValue bytes each) go to spill files
// (package spill) and are read back one at a time (EachSub, EachSeen):
// what they take in memory does not grow with the dump.
type UserData struct {
	Quotas []*syncrec.Quota
	// ServerAnnotations are users' private annotations of the server
	// (APPLY ANNOTATION with MBOXNAME ""): a few per user, each bounded.
	ServerAnnotations []*syncrec.Annotation
	seen              spill.Log // the seen records, as dlist
	sw                *dlist.Writer
	nSeen             int
	subs              spill.Log // a record per subscription
	subEnc            spill.Enc
	err               error
}

// NumSeen returns how many seen records were read.
func (u *UserData) NumSeen() int { return u.nSeen }

func (u *UserData) addSeen(s *syncrec.Seen) error {
	if u.err != nil {
		return u.err
	}
	if u.sw == nil {
		u.sw = dlist.NewWriter(u.seen.Writer())
	}
	if err := syncrec.WriteSeen(u.sw, s); err != nil {
		u.err = fmt.Errorf("spooling seen records: %w", err)
		return u.err
	}
	u.nSeen++
	return nil
}

// EachSeen calls fn with each seen record, in the order of the dump, read
// back from the spool one at a time.
func (u *UserData) EachSeen(fn func(*syncrec.Seen) error) error {
	if u.err != nil || u.sw == nil {
		return u.err
	}
	if err := u.sw.Flush(); err != nil {
		return fmt.Errorf("spooling seen records: %w", err)
	}
	sr, err := u.seen.Section(0, u.seen.Size())
	if err != nil {
		return fmt.Errorf("reading back seen records: %w", err)
	}
	r := dlist.NewReader(sr)
	r.SetLimits(syncrec.Limits())
	for i := 0; i < u.nSeen; i++ {
		for k := 0; k < 2; k++ { // APPLY SEEN
			if _, err := r.Next(); err != nil {
				return fmt.Errorf("reading back seen records: %w", err)
			}
		}
		v, err := syncrec.ReadValue(r, "SEEN")
		if err != nil {
			return fmt.Errorf("reading back seen records: %w", err)
		}
		if _, err := r.Next(); err != nil { // the line's end
			return fmt.Errorf("reading back seen records: %w", err)
		}
		s, err := syncrec.DecodeSeen(v)
		if err != nil {
			return fmt.Errorf("reading back seen records: %w", err)
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// addSub spools a subscription.
func (u *UserData) addSub(s *syncrec.Sub) error {
	u.subEnc.Reset()
	u.subEnc.String(s.UserID)
	u.subEnc.String(s.MboxName)
	if _, err := u.subs.Append(u.subEnc.B); err != nil {
		return fmt.Errorf("spooling subscriptions: %w", err)
	}
	return nil
}

// EachSub calls fn with each subscription, in the order of the dump,
// read back from the spool one at a time.
func (u *UserData) EachSub(fn func(*syncrec.Sub) error) error {
	return u.subs.Each(func(p []byte) error {
		d := spill.Dec{B: p}
		s := &syncrec.Sub{UserID: d.String(), MboxName: d.String()}
		if d.Err != nil {
			return fmt.Errorf("reading back subscriptions: %w", d.Err)
		}
		return fn(s)
	})
}

// Close removes the spools.
func (u *UserData) Close() {
	u.seen.Close()
	u.subs.Close()
	u.sw = nil
}

// ReadUserData reads the rest of the current line of d, an APPLY QUOTA,
// SUB or SEEN named by name, through its end, decodes it (bounded by
// syncrec.MaxHeld) and checks it. It returns one of *syncrec.Quota,
// *syncrec.Sub, *syncrec.Seen; or nil, reading nothing, for any other
// command.
func (p *Dump) ReadUserData(d *dumpfile.Reader, name string) (any, error) {
	if name != "QUOTA" && name != "SUB" && name != "SEEN" && name != "ANNOTATION" {
		return nil, nil
	}
	v, err := syncrec.ReadValue(d.DL(), name)
	if err != nil {
		return nil, err
	}
	if err := d.EndLine(); err != nil {
		return nil, err
	}
	switch name {
	case "QUOTA":
		return Quota(v)
	case "SUB":
		return Sub(v)
	case "ANNOTATION":
		a, err := syncrec.DecodeServerAnnotation(v)
		if err == nil {
			err = p.ServerAnnotation(a)
		}
		return a, err
	default:
		return Seen(v)
	}
}

// Read reads an APPLY QUOTA, SUB or SEEN line as ReadUserData does, and
// adds it. It reports false, reading nothing, for any other command.
func (u *UserData) Read(d *dumpfile.Reader, p *Dump, name string) (bool, error) {
	v, err := p.ReadUserData(d, name)
	if v == nil && err == nil {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	switch x := v.(type) {
	case *syncrec.Quota:
		u.Quotas = append(u.Quotas, x)
	case *syncrec.Sub:
		if err := u.addSub(x); err != nil {
			return true, err
		}
	case *syncrec.Annotation:
		u.ServerAnnotations = append(u.ServerAnnotations, x)
	case *syncrec.Seen:
		if err := u.addSeen(x); err != nil {
			return true, err
		}
	}
	return true, nil
}
