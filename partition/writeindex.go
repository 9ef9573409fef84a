package partition

import (
	"hash/crc32"
)

// The cyrus.index layout written by Cyrus 3.6 (minor version 17) and by the
// encoders here.
const (
	IndexVersion    = 17  // MAILBOX_MINOR_VERSION of Cyrus 3.6
	IndexHeaderSize = 160 // start_offset of version 17
	IndexRecordSize = 112 // record_size of version 17
	// CacheVersion is the cache_version Cyrus 3.6 stores in every record
	// (MAILBOX_CACHE_MINOR_VERSION).
	CacheVersion = 11
)

// OptionsMask holds the option bits Cyrus keeps when it writes an index
// header (imap/mailbox.h MAILBOX_OPT_VALID): the synced letters and the
// internal NEEDS_UNLINK, NEEDS_REPACK and DELETED bits.
const OptionsMask = OptPOP3NewUIDL | OptSharedSeen | OptDupDeliver | OptHasAlarms |
	OptNeedsUnlink | OptNeedsRepack | OptMailboxDeleted

// AppendIndexHeader appends the 160-byte version 17 encoding of h to b
// (imap/mailbox.c mailbox_index_header_to_buf) and returns the extended
// slice. MinorVersion, StartOffset and RecordSize are written as version
// 17's, whatever h holds; Format is written as 0; options outside
// OptionsMask are dropped; the header CRC is computed. Options and
// HighestModseq are written as they are: for a byte-exact copy of a parsed
// header, set them from RawOptions and RawHighestModseq first.
func AppendIndexHeader(b []byte, h IndexHeader) []byte {
	off := len(b)
	b = append(b, make([]byte, IndexHeaderSize)...)
	p := b[off:]
	be.PutUint32(p[0:], h.Generation)
	be.PutUint32(p[8:], IndexVersion)
	be.PutUint32(p[12:], IndexHeaderSize)
	be.PutUint32(p[16:], IndexRecordSize)
	be.PutUint32(p[20:], h.NumRecords)
	be.PutUint32(p[24:], h.LastAppendDate)
	be.PutUint32(p[28:], h.LastUID)
	be.PutUint64(p[32:], h.QuotaMailboxUsed)
	be.PutUint32(p[40:], h.POP3LastLogin)
	be.PutUint32(p[44:], h.UIDValidity)
	be.PutUint32(p[48:], h.Deleted)
	be.PutUint32(p[52:], h.Answered)
	be.PutUint32(p[56:], h.Flagged)
	be.PutUint32(p[60:], h.Options&OptionsMask)
	be.PutUint32(p[64:], h.LeakedCache)
	be.PutUint64(p[68:], h.HighestModseq)
	be.PutUint64(p[76:], h.DeletedModseq)
	be.PutUint32(p[84:], h.Exists)
	be.PutUint32(p[88:], h.FirstExpunged)
	be.PutUint32(p[92:], h.LastRepackTime)
	be.PutUint32(p[96:], h.HeaderFileCRC)
	be.PutUint32(p[100:], h.SyncCRC)
	be.PutUint32(p[104:], h.RecentUID)
	be.PutUint32(p[108:], h.RecentTime)
	be.PutUint32(p[112:], h.POP3ShowAfter)
	be.PutUint32(p[116:], h.QuotaAnnotUsed)
	be.PutUint32(p[120:], h.SyncCRCAnnot)
	be.PutUint32(p[124:], h.Unseen)
	be.PutUint64(p[128:], h.CreatedModseq)
	be.PutUint32(p[136:], h.ChangesEpoch)
	be.PutUint32(p[156:], crc32.ChecksumIEEE(p[:156]))
	return b
}

// AppendRecord appends the 112-byte version 17 encoding of r to b
// (imap/mailbox.c mailbox_index_record_to_buf) and returns the extended
// slice. The cache offset is split over its two words, CacheVersion fills
// the low half of the word at offset 56, and the record CRC is computed;
// r.RecordCRC is ignored.
func AppendRecord(b []byte, r Record) []byte {
	off := len(b)
	b = append(b, make([]byte, IndexRecordSize)...)
	p := b[off:]
	be.PutUint32(p[0:], r.UID)
	be.PutUint32(p[4:], r.InternalDate)
	be.PutUint32(p[8:], r.SentDate)
	be.PutUint32(p[12:], r.Size)
	be.PutUint32(p[16:], r.HeaderSize)
	be.PutUint32(p[20:], r.GMTime)
	be.PutUint32(p[24:], uint32(r.CacheOffset))
	be.PutUint32(p[28:], r.LastUpdated)
	be.PutUint32(p[32:], r.SystemFlags)
	for i, w := range r.UserFlags {
		be.PutUint32(p[36+4*i:], w)
	}
	be.PutUint32(p[52:], r.SaveDate)
	be.PutUint32(p[56:], uint32(r.CacheOffset>>32&0xffff)<<16|uint32(r.CacheVersion))
	copy(p[60:80], r.GUID[:])
	be.PutUint64(p[80:], r.Modseq)
	be.PutUint64(p[88:], r.CID)
	be.PutUint64(p[96:], r.CreatedModseq)
	be.PutUint32(p[104:], r.CacheCRC)
	be.PutUint32(p[108:], crc32.ChecksumIEEE(p[:108]))
	return b
}

// SetUserFlag sets user flag slot n (0..127) of r; other values of n are
// ignored.
func (r *Record) SetUserFlag(n int) {
	if n >= 0 && n < maxUserFlags {
		r.UserFlags[n/32] |= 1 << (n % 32)
	}
}

// MaxUserFlags is the number of user flag slots of a mailbox
// (MAX_USER_FLAGS).
const MaxUserFlags = maxUserFlags
