package partition

import (
	"encoding/binary"
	"hash/crc32"
)

// NumCacheFields is the number of items of a cyrus.cache record
// (imap/mailbox.h NUM_CACHE_FIELDS): envelope, bodystructure, body,
// section, cached headers, from, to, cc, bcc, subject.
const NumCacheFields = 10

// MaxCacheRecord bounds the cyrus.cache record this package reads or a
// dump may carry for one message; a bigger one is not carried (the
// restored record is then parsed by Cyrus, as one without cache).
const MaxCacheRecord = 4 << 20

// openCache opens the mailbox's cyrus.cache, if it has one, for
// CacheRecord. Called under the index lock, so that it is the cache file
// of the snapshot's generation (a repack, which replaces both, needs the
// name lock the snapshot keeps). A snapshot none of whose records has a
// cache record (HasCacheRecord: an empty mailbox, or one whose records
// all lack one) never reads the file, so it is not opened.
func (s *Spool) openCache(m *Mailbox) {
	if !m.anyCacheRecord() {
		return
	}
	p, err := s.metaPath(m, FileCache)
	if err != nil {
		return
	}
	if f, err := m.openFile(p); err == nil {
		m.cache = f
	}
}

// anyCacheRecord reports whether a record of the snapshot may have a
// cache record (HasCacheRecord), from the fields of its index record
// alone; a snapshot kept in a temporary file (MemoryLimit) is not
// scanned and is taken to have one.
func (m *Mailbox) anyCacheRecord() bool {
	rs := int(m.Index.RecordSize)
	if m.tmp != nil || rs == 0 {
		return true
	}
	for off := 0; off+rs <= len(m.recs); off += rs {
		var r Record
		cacheFields(m.recs[off:off+rs], &r)
		if HasCacheRecord(r) {
			return true
		}
	}
	return false
}

// CacheRecord returns r's record in cyrus.cache as Cyrus stores it (its
// ten items, each a 4-byte big-endian length and the bytes padded to 4),
// when the record has one that is sound: cache version CacheVersion, every
// item within the file and MaxCacheRecord, and its CRC equal to the
// record's cache CRC (imap/mailbox.c cache_parserecord and
// mailbox_cacherecord). It returns nil otherwise, and for archived
// records (whose cache lives in cyrus.archivecache). A cache record
// depends only on the message file, so a copy serves any mailbox that
// has the message.
func (m *Mailbox) CacheRecord(r Record) []byte {
	if m.cache == nil || !HasCacheRecord(r) {
		return nil
	}
	off := int64(r.CacheOffset)
	var hdr [4]byte
	total := int64(0)
	for i := 0; i < NumCacheFields; i++ {
		if _, err := m.cache.ReadAt(hdr[:], off+total); err != nil {
			return nil
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		total += 4 + (n+3)&^3
		if total > MaxCacheRecord {
			return nil
		}
	}
	b := make([]byte, total)
	if _, err := m.cache.ReadAt(b, off); err != nil {
		return nil
	}
	if crc32.ChecksumIEEE(b) != r.CacheCRC {
		return nil
	}
	return b
}

// HasCacheRecord reports whether the index record points at a cache
// record CacheRecord can return, from the index record alone: one in
// cyrus.cache (not archived), at an offset, of version CacheVersion.
// CacheRecord then still checks it against the file and the CRC.
func HasCacheRecord(r Record) bool {
	return r.CacheOffset != 0 && r.CacheVersion == CacheVersion && r.SystemFlags&InternalArchived == 0
}

// CheckCacheRecord reports whether b is a well-formed cache record: ten
// items, each a 4-byte big-endian length and its bytes padded to 4, that
// fill b exactly (imap/mailbox.c cache_parserecord).
func CheckCacheRecord(b []byte) bool {
	if len(b) > MaxCacheRecord {
		return false
	}
	off := 0
	for i := 0; i < NumCacheFields; i++ {
		if len(b)-off < 4 {
			return false
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n > len(b) {
			return false
		}
		off += 4 + (n+3)&^3
		if off > len(b) {
			return false
		}
	}
	return off == len(b)
}
