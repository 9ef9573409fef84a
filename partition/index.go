package partition

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/mbtool/mbtool/guid"
)

// Index minor versions this package decodes. Versions 12 to 17 all carry a
// header CRC, per-record CRCs and GUIDs; older ones (written by Cyrus 2.3
// and earlier) have no checksums and are refused.
const (
	MinIndexVersion = 12
	MaxIndexVersion = 17
)

// System flags (low 16 bits of system_flags, imap/mailbox.h FLAG_*).
const (
	FlagAnswered uint32 = 1 << 0
	FlagFlagged  uint32 = 1 << 1
	FlagDeleted  uint32 = 1 << 2
	FlagDraft    uint32 = 1 << 3
	FlagSeen     uint32 = 1 << 4
)

// Internal flags (high 16 bits of system_flags, FLAG_INTERNAL_*).
const (
	InternalSnoozed           uint32 = 1 << 26
	InternalSplitConversation uint32 = 1 << 27
	InternalNeedsCleanup      uint32 = 1 << 28
	InternalArchived          uint32 = 1 << 29
	InternalUnlinked          uint32 = 1 << 30
	InternalExpunged          uint32 = 1 << 31
)

// Mailbox options (index header options, imap/mailbox.h OPT_*).
const (
	OptPOP3NewUIDL    uint32 = 1 << 0
	OptCondstore      uint32 = 1 << 1 // obsolete, never set
	OptSharedSeen     uint32 = 1 << 2
	OptDupDeliver     uint32 = 1 << 3
	OptHasAlarms      uint32 = 1 << 4
	OptNeedsUnlink    uint32 = 1 << 29
	OptNeedsRepack    uint32 = 1 << 30
	OptMailboxDeleted uint32 = 1 << 31
)

// indexLayout gives the header and record sizes of a minor version
// (imap/mailbox.c mailbox_buf_to_index_header, mailbox_repack_setup).
func indexLayout(version uint32) (headerSize, recordSize int, ok bool) {
	switch version {
	case 12:
		return 128, 96, true
	case 13:
		return 128, 104, true
	case 14, 15:
		return 160, 104, true
	case 16, 17:
		return 160, 112, true
	}
	return 0, 0, false
}

// IndexHeader is the header of a cyrus.index file, as Cyrus holds it in
// memory after reading: fields a version does not store are zero, except
// the adjustments Cyrus makes at read time (mailbox_buf_to_index_header):
// Options has OptPOP3NewUIDL set when Exists is 0, HighestModseq 0 reads
// as 1, and ChangesEpoch below version 17 is LastRepackTime (or 0 where
// Cyrus would use the current time). RawOptions and RawHighestModseq keep
// the stored values.
type IndexHeader struct {
	Generation, Format, MinorVersion, StartOffset, RecordSize, NumRecords uint32
	LastAppendDate, LastUID                                               uint32
	QuotaMailboxUsed                                                      uint64
	POP3LastLogin, UIDValidity, Deleted, Answered, Flagged, Options       uint32
	LeakedCache                                                           uint32
	HighestModseq, DeletedModseq                                          uint64
	Exists, FirstExpunged, LastRepackTime, HeaderFileCRC, SyncCRC         uint32
	RecentUID, RecentTime, POP3ShowAfter, QuotaAnnotUsed, SyncCRCAnnot    uint32
	Unseen                                                                uint32
	CreatedModseq                                                         uint64
	ChangesEpoch                                                          uint32
	// HeaderCRC is the stored CRC-32 of the header bytes before it.
	HeaderCRC uint32
	// RawOptions and RawHighestModseq are the values as stored on disk.
	RawOptions       uint32
	RawHighestModseq uint64
}

// Record is one cyrus.index record (one message, expunged or not).
type Record struct {
	UID, InternalDate, SentDate, Size, HeaderSize, GMTime uint32
	// CacheOffset is the 48-bit offset into cyrus.cache (0 = none).
	CacheOffset uint64
	LastUpdated uint32
	// SystemFlags holds the IMAP flags (low 16 bits) and internal flags
	// (high 16 bits) exactly as stored.
	SystemFlags uint32
	// UserFlags: slot n is bit 1<<(n%32) of word n/32.
	UserFlags    [4]uint32
	SaveDate     uint32
	CacheVersion uint16
	GUID         guid.GUID
	Modseq       uint64
	// CID is the conversation id (thrid), 0 = none.
	CID           uint64
	CreatedModseq uint64
	CacheCRC      uint32
	// RecordCRC is the stored CRC-32 of the record bytes before it.
	RecordCRC uint32
}

// Has reports whether all bits of flag are set in SystemFlags.
func (r Record) Has(flag uint32) bool { return r.SystemFlags&flag == flag }

// Expunged reports whether the record is expunged (internal flag).
func (r Record) Expunged() bool { return r.Has(InternalExpunged) }

// Unlinked reports whether the message file has been removed.
func (r Record) Unlinked() bool { return r.Has(InternalUnlinked) }

// Archived reports whether the message file lives on the archive partition.
func (r Record) Archived() bool { return r.Has(InternalArchived) }

// HasUserFlag reports whether user flag slot n (0..127) is set.
func (r Record) HasUserFlag(n int) bool {
	if n < 0 || n >= 128 {
		return false
	}
	return r.UserFlags[n/32]&(1<<(n%32)) != 0
}

var be = binary.BigEndian

// ParseIndexHeader decodes and checks the header at the start of a
// cyrus.index file. b may be longer than the header. It checks the minor
// version (MinIndexVersion..MaxIndexVersion), the header CRC, and that
// start_offset and record_size are those of the version.
func ParseIndexHeader(b []byte) (IndexHeader, error) {
	var h IndexHeader
	if len(b) < 12 {
		return h, fmt.Errorf("%w: header truncated at %d bytes", ErrBadFormat, len(b))
	}
	h.Generation = be.Uint32(b[0:])
	h.Format = be.Uint32(b[4:])
	h.MinorVersion = be.Uint32(b[8:])
	hsize, rsize, ok := indexLayout(h.MinorVersion)
	if !ok {
		return h, fmt.Errorf("%w: minor version %d (supported: %d to %d)",
			ErrVersion, h.MinorVersion, MinIndexVersion, MaxIndexVersion)
	}
	if len(b) < hsize {
		return h, fmt.Errorf("%w: header truncated at %d of %d bytes", ErrBadFormat, len(b), hsize)
	}
	h.HeaderCRC = be.Uint32(b[hsize-4:])
	if got := crc32.ChecksumIEEE(b[:hsize-4]); got != h.HeaderCRC {
		return h, fmt.Errorf("%w: header CRC %08x, computed %08x", ErrChecksum, h.HeaderCRC, got)
	}
	h.StartOffset = be.Uint32(b[12:])
	h.RecordSize = be.Uint32(b[16:])
	h.NumRecords = be.Uint32(b[20:])
	h.LastAppendDate = be.Uint32(b[24:])
	h.LastUID = be.Uint32(b[28:])
	h.QuotaMailboxUsed = be.Uint64(b[32:])
	h.POP3LastLogin = be.Uint32(b[40:])
	h.UIDValidity = be.Uint32(b[44:])
	h.Deleted = be.Uint32(b[48:])
	h.Answered = be.Uint32(b[52:])
	h.Flagged = be.Uint32(b[56:])
	h.RawOptions = be.Uint32(b[60:])
	h.LeakedCache = be.Uint32(b[64:])
	h.RawHighestModseq = be.Uint64(b[68:])
	h.DeletedModseq = be.Uint64(b[76:])
	h.Exists = be.Uint32(b[84:])
	h.FirstExpunged = be.Uint32(b[88:])
	h.LastRepackTime = be.Uint32(b[92:])
	h.HeaderFileCRC = be.Uint32(b[96:])
	h.SyncCRC = be.Uint32(b[100:])
	h.RecentUID = be.Uint32(b[104:])
	h.RecentTime = be.Uint32(b[108:])
	if h.MinorVersion >= 13 {
		h.POP3ShowAfter = be.Uint32(b[112:])
		h.QuotaAnnotUsed = be.Uint32(b[116:])
		h.SyncCRCAnnot = be.Uint32(b[120:])
	}
	if h.MinorVersion >= 14 {
		h.Unseen = be.Uint32(b[124:])
	}
	if h.MinorVersion >= 16 {
		h.CreatedModseq = be.Uint64(b[128:])
	}
	if h.MinorVersion >= 17 {
		h.ChangesEpoch = be.Uint32(b[136:])
	} else {
		h.ChangesEpoch = h.LastRepackTime
	}
	if h.StartOffset != uint32(hsize) || h.RecordSize != uint32(rsize) {
		return h, fmt.Errorf("%w: start_offset %d, record_size %d; version %d has %d and %d",
			ErrBadFormat, h.StartOffset, h.RecordSize, h.MinorVersion, hsize, rsize)
	}
	h.Options = h.RawOptions
	if h.Exists == 0 {
		h.Options |= OptPOP3NewUIDL
	}
	h.HighestModseq = h.RawHighestModseq
	if h.HighestModseq == 0 {
		h.HighestModseq = 1
	}
	return h, nil
}

// Size returns the number of bytes the header says the file must hold at
// least: start_offset + num_records * record_size.
func (h IndexHeader) Size() int64 {
	return int64(h.StartOffset) + int64(h.NumRecords)*int64(h.RecordSize)
}

// cacheFields sets the fields of r that say where its cache record is
// (HasCacheRecord's): the system flags, the cache version and the 48-bit
// cache offset, at the same places in every index version. b holds at
// least the first 60 bytes of a record.
func cacheFields(b []byte, r *Record) {
	r.SystemFlags = be.Uint32(b[32:])
	cv := uint64(be.Uint32(b[56:]))
	r.CacheVersion = uint16(cv)
	r.CacheOffset = uint64(be.Uint32(b[24:])) | (cv&0xffff0000)<<16
}

// ParseRecord decodes and checks one index record of the given minor
// version (imap/mailbox.c mailbox_buf_to_index_record). b must hold at
// least the version's record size.
func ParseRecord(b []byte, version uint32) (Record, error) {
	var r Record
	_, rsize, ok := indexLayout(version)
	if !ok {
		return r, fmt.Errorf("%w: minor version %d", ErrVersion, version)
	}
	if len(b) < rsize {
		return r, fmt.Errorf("%w: record truncated at %d of %d bytes", ErrBadFormat, len(b), rsize)
	}
	r.UID = be.Uint32(b[0:])
	r.InternalDate = be.Uint32(b[4:])
	r.SentDate = be.Uint32(b[8:])
	r.Size = be.Uint32(b[12:])
	r.HeaderSize = be.Uint32(b[16:])
	r.GMTime = be.Uint32(b[20:])
	r.LastUpdated = be.Uint32(b[28:])
	for i := range r.UserFlags {
		r.UserFlags[i] = be.Uint32(b[36+4*i:])
	}
	cacheFields(b, &r)
	copy(r.GUID[:], b[60:80])
	r.Modseq = be.Uint64(b[80:])
	var crcAt int
	switch {
	case version == 12:
		r.CacheCRC = be.Uint32(b[88:])
		crcAt = 92
	case version < 16:
		r.CID = be.Uint64(b[88:])
		if version >= 15 {
			r.SaveDate = be.Uint32(b[52:])
		}
		r.CacheCRC = be.Uint32(b[96:])
		crcAt = 100
	default:
		r.CID = be.Uint64(b[88:])
		r.SaveDate = be.Uint32(b[52:])
		r.CreatedModseq = be.Uint64(b[96:])
		r.CacheCRC = be.Uint32(b[104:])
		crcAt = 108
	}
	r.RecordCRC = be.Uint32(b[crcAt:])
	if got := crc32.ChecksumIEEE(b[:crcAt]); got != r.RecordCRC {
		return r, fmt.Errorf("%w: record CRC %08x, computed %08x", ErrChecksum, r.RecordCRC, got)
	}
	return r, nil
}
