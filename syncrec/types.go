package syncrec

import (
	"strings"

	"github.com/mbtool/mbtool/guid"
)

// Names of the virtual per-message annotations through which Cyrus 3.6
// replicates index fields that have no RECORD key (docs/cyrus/replication.md §3).
const (
	AnnotThrID                = "/vendor/cmu/cyrus-imapd/thrid"
	AnnotSaveDate             = "/vendor/cmu/cyrus-imapd/savedate"
	AnnotCreatedModseq        = "/vendor/cmu/cyrus-imapd/createdmodseq"
	annotCRCInit       uint32 = 12345678
)

// System flag names as Cyrus prints them in a RECORD's FLAGS, in the order it
// prints them. FlagExpunged is Cyrus's internal EXPUNGED bit, not an IMAP flag.
const (
	FlagDeleted  = `\Deleted`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDraft    = `\Draft`
	FlagExpunged = `\Expunged`
	FlagSeen     = `\Seen`
)

// Annotation is one annotation entry, on a mailbox or a message:
// %(ENTRY e USERID u MODSEQ n VALUE v). UserID "" is a shared annotation.
type Annotation struct {
	Entry  string
	UserID string
	Modseq uint64
	Value  []byte
}

// Record is one message record of an APPLY MAILBOX, expunged ones included.
type Record struct {
	UID          uint32
	Modseq       uint64
	LastUpdated  int64
	Flags        []string // as printed: system flags first (Cyrus order), then user flags by slot
	InternalDate int64
	Size         uint32
	GUID         guid.GUID
	// Annotations holds the real per-message annotations followed by the
	// virtual ones (thrid, savedate, createdmodseq), as Cyrus sends them.
	Annotations []Annotation
	// Cache is the record's cyrus.cache record, carried by mbtool dumps
	// under the key MBTOOL_CACHE (nil when not carried). Cyrus's
	// sync_server ignores the key.
	Cache []byte
}

// Expunged reports whether the record carries Cyrus's internal \Expunged
// flag (expunged but not yet removed by a repack).
func (r *Record) Expunged() bool {
	for _, f := range r.Flags {
		if strings.EqualFold(f, FlagExpunged) {
			return true
		}
	}
	return false
}

// Mailbox is the mailbox-level part of an APPLY MAILBOX: everything but the
// RECORD list.
type Mailbox struct {
	UniqueID       string
	Name           string // internal name, e.g. user.alice.Sent
	MboxType       string // "" for a plain email mailbox
	SyncCRC        uint32
	SyncCRCAnnot   uint32
	LastUID        uint32
	HighestModseq  uint64
	RecentUID      uint32
	RecentTime     int64
	LastAppendDate int64
	POP3LastLogin  int64
	POP3ShowAfter  int64
	XConvModseq    uint64
	RaclModseq     uint64
	UIDValidity    uint32
	Partition      string
	ACL            string // id TAB rights TAB, repeated
	Options        string // option letters, e.g. "P"
	QuotaRoot      string
	CreatedModseq  uint64
	FolderModseq   uint64
	Annotations    []Annotation // mailbox-level

	// mbtool's own keys (docs/format.md), ignored by Cyrus's sync_server:
	// what the index and cyrus.header hold that replication does not
	// carry. Absent (zero) in dumps made over replication.
	//
	// DeletedModseq is the index header's deletedmodseq
	// (MBTOOL_DELETEDMODSEQ).
	DeletedModseq uint64
	// Generation is the index header's generation number
	// (MBTOOL_GENERATION).
	Generation uint32
	// UserFlags are the user flag names by slot as cyrus.header defines
	// them, "" for a free slot (MBTOOL_USERFLAGS); nil when not carried.
	UserFlags []string

	// IndexVersion is the cyrus.index minor version the keys were read
	// from, 0 when unknown. It is not written: a dump carries only the
	// highest of its mailboxes' (INDEXVERSION of its header).
	IndexVersion uint32
}

// Seen is one record of a user's seen database, as APPLY SEEN carries it.
type Seen struct {
	UserID     string
	UniqueID   string
	LastRead   int64
	LastUID    uint32
	LastChange int64
	SeenUIDs   string
}

// Sub is one subscription, as APPLY SUB carries it.
type Sub struct {
	UserID   string
	MboxName string
}

// Quota resources, in the order Cyrus prints them.
const (
	QuotaStorage = iota // KiB
	QuotaMessage
	QuotaAnnotStorage
	QuotaNumFolders
	NumQuotaResources
)

// QuotaNames are the dlist keys of the quota resources.
var QuotaNames = [NumQuotaResources]string{"STORAGE", "MESSAGE", "X-ANNOTATION-STORAGE", "X-NUM-FOLDERS"}

// Unlimited is a quota limit that is not set.
const Unlimited = -1

// Quota is a quota root and its limits, as APPLY QUOTA carries it.
type Quota struct {
	Root   string
	Limits [NumQuotaResources]int64 // Unlimited where not set
	Modseq uint64
}

// MaxUserFlags is Cyrus's MAX_USER_FLAGS, the user flag slots of a
// mailbox.
const MaxUserFlags = 128

// Replication returns a copy of mb without mbtool's own keys: what Cyrus's
// replication carries.
func (mb *Mailbox) Replication() *Mailbox {
	c := *mb
	c.DeletedModseq, c.Generation, c.UserFlags = 0, 0, nil
	return &c
}
