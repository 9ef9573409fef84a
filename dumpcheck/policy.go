package dumpcheck

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
)

// The policy: what a dump (or a replication server answering `dump
// --server`) may carry. verify reports each refusal as a finding; restore
// and `restore --server` refuse the whole dump on the first one, before
// anything is visible in the target; `dump --server` refuses to write it.
// The checks are the same everywhere because they are these functions.
//
//   - names: CheckName (mailbox names, quota roots, subscriptions), and
//     no mailbox literally named "user"; the owner a user mailbox's name
//     implies is a valid userid (CheckUserID);
//   - userids (seen and subscription owners, ACL identifiers, annotation
//     owners), uniqueids, partitions, MBOXTYPE, OPTIONS;
//   - flags (CheckFlag: a known system flag or an atom; \Recent is not
//     stored), at most 128 user flags per mailbox; annotation entries
//     (CheckEntry) and the values of the virtual ones;
//   - records: UIDs from 1, ascending, none above LAST_UID; no MODSEQ
//     above HIGHESTMODSEQ; SIZE not 0; a GUID; SYNC_CRC and SYNC_CRC_ANNOT
//     those of the records;
//   - a mailbox name or uniqueid listed twice;
//   - seen sets that are sequence sets; file literals with a partition and
//     bytes.
//
// The bound on memory is not here but in the one reader (package syncrec):
// no value larger than syncrec.MaxValue, and no more than syncrec.MaxHeld
// of values held at once for one command.

// MaxRetained bounds what the mailbox-level values of a whole dump (ACLs
// and mailbox annotations) may take beyond retainFree bytes per mailbox.
// A restore keeps them for every mailbox until it commits, so a dump of
// many mailboxes with large values is refused rather than held: the first
// retainFree bytes of each mailbox's values are what an ordinary mailbox
// has and cost a constant per mailbox, like the rest of its plan.
const (
	MaxRetained = 16 << 20
	retainFree  = 1 << 10
)

// ErrDamaged is wrapped by errors about a dump that is structurally wrong
// or inconsistent without being dangerous: records out of order, a UID
// above LAST_UID, a checksum that does not match, a mailbox listed twice.
// restore.ErrDamaged and remote.ErrDamaged are this error.
var ErrDamaged = errors.New("damaged dump")

// Kind classifies a policy Error. The strings match verify's finding
// kinds where one exists.
type Kind string

// Kinds of refusal.
const (
	KindUnsafe    Kind = "unsafe"    // a name or identifier that is malformed or could escape the target
	KindInvalid   Kind = "invalid"   // a value that is malformed (wrong type, bad number, unknown keyword)
	KindUIDOrder  Kind = "uid-order" // UIDs do not ascend strictly from 1
	KindUIDRange  Kind = "uid-range" // a UID above the mailbox's LAST_UID
	KindModseq    Kind = "modseq"    // a MODSEQ above the mailbox's HIGHESTMODSEQ
	KindDuplicate Kind = "duplicate" // a mailbox name or uniqueid listed twice
	KindCRC       Kind = "crc"       // SYNC_CRC or SYNC_CRC_ANNOT does not match the records
)

// Error is one refusal of the policy: what is wrong, in which mailbox and
// record. It wraps ErrUnsafeName (KindUnsafe) or ErrDamaged (the others).
type Error struct {
	Kind    Kind
	Mailbox string // "" when the value is not inside a mailbox
	UID     uint32 // 0 when not about a record
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Mailbox != "" {
		fmt.Fprintf(&b, "mailbox %s", e.Mailbox)
		if e.UID != 0 {
			fmt.Fprintf(&b, " UID %d", e.UID)
		}
		b.WriteString(": ")
	} else if e.UID != 0 {
		fmt.Fprintf(&b, "UID %d: ", e.UID)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of a policy error: that of the first Error
// wrapped by err, KindUnsafe for any other ErrUnsafeName, KindInvalid
// otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, ErrUnsafeName) {
		return KindUnsafe
	}
	return KindInvalid
}

func unsafeErr(mailbox string, uid uint32, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: KindOf(err), Mailbox: mailbox, UID: uid, Err: err}
}

func damaged(k Kind, mailbox string, uid uint32, format string, args ...any) error {
	return &Error{Kind: k, Mailbox: mailbox, UID: uid, Err: fmt.Errorf("%w: "+format, append([]any{ErrDamaged}, args...)...)}
}

// Dump applies the policy to the commands of one dump (or of one `dump
// --server` session) as they stream by. It remembers the mailbox names
// and uniqueids so far, to refuse one listed twice; nothing else.
type Dump struct {
	// seen holds the names and uniqueids of the mailboxes checked so far,
	// spilling, so that the policy's memory stays flat however many
	// mailboxes the dump has.
	seen     *spill.Names
	retained int64 // see MaxRetained
}

// NewDump returns the checker for one dump; Close it after use.
func NewDump() *Dump {
	return &Dump{seen: spill.NewNames()}
}

// Close removes the files of the checker.
func (d *Dump) Close() { d.seen.Close() }

// Mailbox checks the mailbox-level keys of an APPLY MAILBOX and returns the
// checker for its records. The checker is returned also when the keys are
// refused, for a caller (verify) that goes on to report the records'
// problems too; the error joins every refusal of the keys.
func (d *Dump) Mailbox(mb *syncrec.Mailbox) (*Records, error) {
	errs := checkMailboxKeys(mb)
	rec := &Records{mb: mb, flags: make(map[string]struct{}), crc: syncrec.NewCRC()}
	if _, dup, err := d.seen.Get(spill.KeyName, mb.Name); err != nil {
		return rec, err
	} else if dup {
		errs = append(errs, damaged(KindDuplicate, mb.Name, 0, "the mailbox is listed twice"))
	}
	if _, dup, err := d.seen.Get(spill.KeySrcID, mb.UniqueID); err != nil {
		return rec, err
	} else if dup {
		errs = append(errs, damaged(KindDuplicate, mb.Name, 0, "uniqueid %s is listed twice", mb.UniqueID))
	}
	if err := d.seen.Put(spill.KeyName, mb.Name, 0); err != nil {
		return rec, err
	}
	if err := d.seen.Put(spill.KeySrcID, mb.UniqueID, 0); err != nil {
		return rec, err
	}
	n := int64(len(mb.ACL))
	for _, a := range mb.Annotations {
		n += int64(len(a.Entry) + len(a.UserID) + len(a.Value))
	}
	if n > retainFree {
		d.retained += n - retainFree
		if d.retained > MaxRetained {
			errs = append(errs, &Error{Kind: KindInvalid, Mailbox: mb.Name, Err: fmt.Errorf(
				"%w: %w: the ACLs and mailbox annotations of the dump's mailboxes take more than %d MiB beyond %d bytes each (dumpcheck.MaxRetained)",
				ErrDamaged, syncrec.ErrTooLarge, MaxRetained>>20, retainFree)})
		}
	}
	return rec, errors.Join(errs...)
}

// HasName reports whether a mailbox of this name was checked so far.
func (d *Dump) HasName(name string) (bool, error) {
	_, ok, err := d.seen.Get(spill.KeyName, name)
	return ok, err
}

// HasMailbox reports whether a mailbox of this uniqueid was checked so far.
func (d *Dump) HasMailbox(uniqueid string) (bool, error) {
	_, ok, err := d.seen.Get(spill.KeySrcID, uniqueid)
	return ok, err
}

func checkMailboxKeys(mb *syncrec.Mailbox) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, unsafeErr(mb.Name, 0, err))
		}
	}
	add(CheckName("mailbox name", mb.Name))
	if _, local, _ := strings.Cut(mb.Name, "!"); local == "user" || mb.Name == "user" {
		add(fmt.Errorf("%w: mailbox %q: the user namespace itself is not a mailbox", ErrUnsafeName, mb.Name))
	}
	if o := mboxname.Owner(mb.Name); o != "" {
		if err := CheckUserID(o); err != nil {
			add(fmt.Errorf("owner: %w", err))
		}
	}
	add(CheckUniqueID(mb.UniqueID))
	add(CheckPartition(mb.Partition))
	for _, c := range mb.MboxType {
		// Intermediate, deleted, remote, moving, reserved and legacy types
		// are mboxlist states, not mailboxes with content.
		if c < 'a' || c > 'z' || strings.ContainsRune("idrmzl", c) {
			add(fmt.Errorf("%w: MBOXTYPE %q", ErrUnsafeName, mb.MboxType))
			break
		}
	}
	add(CheckACL(mb.ACL))
	if mb.QuotaRoot != "" {
		add(CheckName("quota root", mb.QuotaRoot))
	}
	for _, a := range mb.Annotations {
		add(checkAnnotation(a))
	}
	if len(mb.UserFlags) > syncrec.MaxUserFlags {
		add(fmt.Errorf("%w: %d user flags, more than %d", ErrUnsafeName, len(mb.UserFlags), syncrec.MaxUserFlags))
	}
	for _, f := range mb.UserFlags {
		if f == "" {
			continue // an unused slot
		}
		if err := CheckFlag(f); err != nil || f[0] == '\\' {
			add(fmt.Errorf("%w: user flag %q", ErrUnsafeName, clipS(f)))
		}
	}
	for _, c := range mb.Options {
		if c < 'A' || c > 'Z' {
			add(fmt.Errorf("%w: OPTIONS %q", ErrUnsafeName, mb.Options))
			break
		}
	}
	return errs
}

func checkAnnotation(a syncrec.Annotation) error {
	if err := CheckEntry(a.Entry); err != nil {
		return err
	}
	if a.UserID != "" {
		if err := CheckUserID(a.UserID); err != nil {
			return fmt.Errorf("annotation %s: %w", a.Entry, err)
		}
	}
	return nil
}

// Records checks the records of one mailbox, in order, and their
// checksums at the end.
type Records struct {
	mb    *syncrec.Mailbox
	prev  uint32
	flags map[string]struct{}
	crc   syncrec.CRC
	n     int64
}

// Record checks one record. It joins every refusal of the record.
func (c *Records) Record(r *syncrec.Record) error {
	name := c.mb.Name
	var errs []error
	bad := func(k Kind, format string, args ...any) {
		errs = append(errs, damaged(k, name, r.UID, format, args...))
	}
	switch {
	case r.UID == 0:
		bad(KindUIDOrder, "UID 0")
	case r.UID <= c.prev:
		bad(KindUIDOrder, "UID %d follows UID %d (UIDs must ascend)", r.UID, c.prev)
	}
	if r.UID > c.mb.LastUID {
		bad(KindUIDRange, "UID %d is above LAST_UID %d", r.UID, c.mb.LastUID)
	}
	if r.Modseq > c.mb.HighestModseq {
		bad(KindModseq, "MODSEQ %d is above HIGHESTMODSEQ %d", r.Modseq, c.mb.HighestModseq)
	}
	if r.Size == 0 {
		bad(KindInvalid, "SIZE 0")
	}
	if r.GUID.IsNull() {
		bad(KindInvalid, "null GUID")
	}
	c.prev = max(c.prev, r.UID)
	for _, f := range r.Flags {
		if err := CheckFlag(f); err != nil {
			errs = append(errs, unsafeErr(name, r.UID, err))
			continue
		}
		if f[0] == '\\' {
			continue
		}
		if _, ok := c.flags[f]; !ok {
			if len(c.flags) == syncrec.MaxUserFlags {
				bad(KindInvalid, "more than %d user flags in the mailbox", syncrec.MaxUserFlags)
				continue
			}
			c.flags[f] = struct{}{}
		}
	}
	for _, a := range r.Annotations {
		if err := checkAnnotation(a); err != nil {
			errs = append(errs, unsafeErr(name, r.UID, err))
			continue
		}
		if err := checkVirtual(a); err != nil {
			bad(KindInvalid, "%v", err)
		}
	}
	c.crc.Add(r)
	c.n++
	return errors.Join(errs...)
}

// checkVirtual checks the value of a virtual annotation (an index field).
func checkVirtual(a syncrec.Annotation) error {
	var err error
	switch a.Entry {
	case syncrec.AnnotThrID:
		_, err = strconv.ParseUint(string(a.Value), 16, 64)
	case syncrec.AnnotSaveDate:
		_, err = strconv.ParseUint(string(a.Value), 10, 32)
	case syncrec.AnnotCreatedModseq:
		_, err = strconv.ParseUint(string(a.Value), 10, 64)
	}
	if err != nil {
		return fmt.Errorf("%s %q is not a number", a.Entry, clip(a.Value))
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 48 {
		return string(b[:48]) + "..."
	}
	return string(b)
}

// End checks what needs all the records: the checksums, compared as
// Cyrus's mailbox_crceq does (a zero on either side matches anything).
func (c *Records) End() error {
	mb := c.mb
	var errs []error
	if !syncrec.Equal(mb.SyncCRC, c.crc.Basic) {
		errs = append(errs, damaged(KindCRC, mb.Name, 0, "SYNC_CRC is %d, the records give %d", mb.SyncCRC, c.crc.Basic))
	}
	if !syncrec.Equal(mb.SyncCRCAnnot, c.crc.Annot) {
		errs = append(errs, damaged(KindCRC, mb.Name, 0, "SYNC_CRC_ANNOT is %d, the records give %d", mb.SyncCRCAnnot, c.crc.Annot))
	}
	return errors.Join(errs...)
}

// CRC returns the checksums of the records checked so far.
func (c *Records) CRC() syncrec.CRC { return c.crc }

// Seen checks an APPLY SEEN record.
func (d *Dump) Seen(s *syncrec.Seen) error {
	return unsafeErr("", 0, errors.Join(CheckUserID(s.UserID), CheckUniqueID(s.UniqueID), CheckSeqSet(s.SeenUIDs)))
}

// Sub checks an APPLY SUB record.
func (d *Dump) Sub(s *syncrec.Sub) error {
	return unsafeErr("", 0, errors.Join(CheckUserID(s.UserID), CheckName("subscription", s.MboxName)))
}

// ServerAnnotation checks an APPLY ANNOTATION of the server (MBOXNAME ""):
// only users' private ones are carried.
func (d *Dump) ServerAnnotation(a *syncrec.Annotation) error {
	if err := CheckUserID(a.UserID); err != nil {
		return unsafeErr("", 0, fmt.Errorf("server annotation %s: %w", a.Entry, err))
	}
	return unsafeErr("", 0, CheckEntry(a.Entry))
}

// Quota checks an APPLY QUOTA record.
func (d *Dump) Quota(q *syncrec.Quota) error {
	return unsafeErr("", 0, CheckName("quota root", q.Root))
}

// File checks the header of a file literal of APPLY MESSAGE.
func (d *Dump) File(fi dlist.FileInfo) error {
	if err := CheckPartition(fi.Partition); err != nil {
		return unsafeErr("", 0, err)
	}
	if fi.Size == 0 {
		return damaged(KindInvalid, "", 0, "empty message file %s", fi.GUID)
	}
	if fi.GUID.IsNull() {
		return damaged(KindInvalid, "", 0, "message file with a null GUID")
	}
	return nil
}
