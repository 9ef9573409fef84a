package verify

import (
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
)

// Kind classifies a Finding. Its values are stable: scripts may match them.
type Kind string

// Kinds of problems found in the dump itself.
const (
	KindParse     Kind = "parse"      // the dump does not parse from Offset on; nothing after it was checked
	KindTruncated Kind = "truncated"  // the dump ends before its trailer
	KindTrailing  Kind = "trailing"   // data follows the trailer
	KindDigest    Kind = "digest"     // the trailer's BLAKE3 is not that of the bytes before it
	KindCount     Kind = "count"      // the trailer's counts are not those of the dump
	KindLiteral   Kind = "literal"    // a file literal's bytes do not hash to its GUID (Mailbox: the one it was shipped for)
	KindDuplicate Kind = "duplicate"  // a file literal or a mailbox appears twice
	KindSize      Kind = "size"       // a record's SIZE is not its file literal's size
	KindNoMessage Kind = "no-message" // a record's GUID has no file literal in the dump
	KindCRC       Kind = "crc"        // SYNC_CRC or SYNC_CRC_ANNOT does not match the records
	KindUIDOrder  Kind = "uid-order"  // UIDs do not ascend strictly
	KindUIDRange  Kind = "uid-range"  // a UID above the mailbox's LAST_UID
	KindModseq    Kind = "modseq"     // a MODSEQ above the mailbox's HIGHESTMODSEQ
	KindSeen      Kind = "seen"       // a seen record names a mailbox that exists nowhere
	KindInvalid   Kind = "invalid"    // a command that parses but does not decode, or a value restore refuses
	KindUnsafe    Kind = "unsafe"     // a name or identifier restore refuses: malformed, or it could escape the target
	// KindSkipped is not damage: the dump records (an MBTOOL SKIPPED line)
	// that the item was left out when it was written, and why. A record
	// whose message file the dump says it skipped gets this finding, not
	// KindNoMessage.
	KindSkipped Kind = "skipped-at-dump"
)

// Kinds of differences between the dump and the live partition.
const (
	KindMailboxMissing Kind = "mailbox-missing" // a dumped mailbox no longer exists
	KindMailboxNew     Kind = "mailbox-new"     // a mailbox of a dumped user that the dump lacks
	KindUIDValidity    Kind = "uidvalidity"     // UIDVALIDITY (or the uniqueid) changed: the mailbox was recreated
	KindMessageMissing Kind = "message-missing" // a dumped message is gone or expunged
	KindMessageAdded   Kind = "message-added"   // a live message that the dump lacks
	KindGUIDChanged    Kind = "guid-changed"    // the same UID names another message file
	KindChanged        Kind = "changed"         // flags or MODSEQ changed
	KindBitRot         Kind = "bit-rot"         // a message file's bytes no longer hash to its GUID
	KindFileMissing    Kind = "file-missing"    // a live record's message file is missing
	KindLive           Kind = "live"            // a live mailbox could not be read
)

// Live reports whether k is a difference from the live partition rather
// than a problem of the dump.
func (k Kind) Live() bool {
	switch k {
	case KindMailboxMissing, KindMailboxNew, KindUIDValidity, KindMessageMissing, KindMessageAdded,
		KindGUIDChanged, KindChanged, KindBitRot, KindFileMissing, KindLive:
		return true
	}
	return false
}

// NoOffset is the Offset of a finding that has no place in the dump (a
// mailbox that exists only live).
const NoOffset = -1

// Finding is one problem or difference.
type Finding struct {
	Kind    Kind
	Mailbox string    // internal mailbox name; "" when none applies or is known
	UID     uint32    // 0 when none applies
	GUID    guid.GUID // null when none applies
	// Offset is the byte offset in the uncompressed dump of what the
	// finding is about: the record, the file literal, the mailbox's
	// APPLY MAILBOX line, the trailer. NoOffset when it has none.
	Offset int64
	Path   string // the live message file, for KindBitRot and KindFileMissing
	Detail string // what is wrong, for people
}

// String formats f on one line for people:
// "user.alice UID 4 GUID b8d9... (offset 1234): crc: ...".
func (f Finding) String() string {
	var b strings.Builder
	if f.Mailbox != "" {
		b.WriteString(f.Mailbox)
	} else {
		b.WriteString("dump")
	}
	if f.UID != 0 {
		fmt.Fprintf(&b, " UID %d", f.UID)
	}
	if !f.GUID.IsNull() {
		fmt.Fprintf(&b, " GUID %s", f.GUID)
	}
	if f.Offset != NoOffset {
		fmt.Fprintf(&b, " (offset %d)", f.Offset)
	}
	fmt.Fprintf(&b, ": %s: %s", f.Kind, f.Detail)
	if f.Path != "" {
		fmt.Fprintf(&b, " (%s)", f.Path)
	}
	return b.String()
}

// Summary is what Run found.
type Summary struct {
	Header  dumpfile.Header
	Trailer *dumpfile.Trailer // nil when the dump has no readable trailer

	// Counted in the dump, as far as it was read.
	Mailboxes int64 // APPLY MAILBOX lines
	Messages  int64 // file literals
	Bytes     int64 // bytes of the file literals
	Records   int64 // RECORD entries, expunged ones included
	Offset    int64 // uncompressed bytes read

	// Complete is set when the dump was read through its trailer.
	Complete bool
	// Findings counts the findings, Dump those about the dump itself.
	// Neither counts Skipped: the items the dump records it left out
	// when it was written (KindSkipped findings).
	Findings, Dump int
	Skipped        int
	// SeenElsewhere counts seen records for mailboxes that are not in the
	// dump (a user's view of other users' or shared mailboxes), which
	// only a comparison with the live partition can check.
	SeenElsewhere int

	// With a live partition: mailboxes compared and message files hashed.
	LiveMailboxes, LiveFiles int64
}

// OK reports whether nothing was found.
func (s *Summary) OK() bool { return s.Findings == 0 && s.Complete }
