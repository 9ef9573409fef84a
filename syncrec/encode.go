package syncrec

import (
	"encoding/hex"
	"hash/crc32"

	"github.com/mbtool/mbtool/dlist"
)

// WriteMailbox writes one "APPLY MAILBOX %(...)" line (or, with verb "*",
// a "* MAILBOX" reply line) with mb's keys in the order Cyrus 3.6 sends
// them, followed by a RECORD list of the records next yields in ascending UID
// order. next returns nil at the end. The RECORD list is streamed: however
// many records there are, none is held after it is written.
func WriteMailbox(w *dlist.Writer, verb string, mb *Mailbox, next func() (*Record, error)) error {
	w.BeginLine(verb, "MAILBOX")
	w.BeginKVList()
	writeMailboxKeys(w, mb)
	w.Key("RECORD")
	w.BeginList()
	for {
		r, err := next()
		if err != nil {
			return err
		}
		if r == nil {
			break
		}
		WriteRecord(w, r)
	}
	w.EndList()
	w.EndList()
	return w.EndLine()
}

func writeMailboxKeys(w *dlist.Writer, mb *Mailbox) {
	w.Key("UNIQUEID")
	w.Atom(mb.UniqueID)
	w.Key("MBOXNAME")
	w.Atom(mb.Name)
	if mb.MboxType != "" {
		w.Key("MBOXTYPE")
		w.Atom(mb.MboxType)
	}
	w.Key("SYNC_CRC")
	w.Num(uint64(mb.SyncCRC))
	w.Key("SYNC_CRC_ANNOT")
	w.Num(uint64(mb.SyncCRCAnnot))
	w.Key("LAST_UID")
	w.Num(uint64(mb.LastUID))
	w.Key("HIGHESTMODSEQ")
	w.Num(mb.HighestModseq)
	w.Key("RECENTUID")
	w.Num(uint64(mb.RecentUID))
	w.Key("RECENTTIME")
	w.Num(uint64(mb.RecentTime))
	w.Key("LAST_APPENDDATE")
	w.Num(uint64(mb.LastAppendDate))
	w.Key("POP3_LAST_LOGIN")
	w.Num(uint64(mb.POP3LastLogin))
	w.Key("POP3_SHOW_AFTER")
	w.Num(uint64(mb.POP3ShowAfter))
	if mb.XConvModseq != 0 {
		w.Key("XCONVMODSEQ")
		w.Num(mb.XConvModseq)
	}
	if mb.RaclModseq != 0 {
		w.Key("RACLMODSEQ")
		w.Num(mb.RaclModseq)
	}
	w.Key("UIDVALIDITY")
	w.Num(uint64(mb.UIDValidity))
	w.Key("PARTITION")
	w.Atom(mb.Partition)
	w.Key("ACL")
	w.Atom(mb.ACL)
	w.Key("OPTIONS")
	w.Atom(mb.Options)
	if mb.QuotaRoot != "" {
		w.Key("QUOTAROOT")
		w.Atom(mb.QuotaRoot)
	}
	if mb.CreatedModseq != 0 {
		w.Key("CREATEDMODSEQ")
		w.Num(mb.CreatedModseq)
	}
	if mb.FolderModseq != 0 {
		w.Key("FOLDERMODSEQ")
		w.Num(mb.FolderModseq)
	}
	if len(mb.Annotations) > 0 {
		w.Key("ANNOTATIONS")
		writeAnnotations(w, mb.Annotations)
	}
	if mb.DeletedModseq != 0 {
		w.Key(KeyDeletedModseq)
		w.Num(mb.DeletedModseq)
	}
	if mb.Generation != 0 {
		w.Key(KeyGeneration)
		w.Num(uint64(mb.Generation))
	}
	if mb.UserFlags != nil {
		w.Key(KeyUserFlags)
		w.BeginList()
		for _, f := range mb.UserFlags {
			if f == "" {
				w.Nil()
			} else {
				w.Atom(f)
			}
		}
		w.EndList()
	}
}

// mbtool's own keys of APPLY MAILBOX and RECORD (docs/format.md).
const (
	KeyDeletedModseq = "MBTOOL_DELETEDMODSEQ"
	KeyGeneration    = "MBTOOL_GENERATION"
	KeyUserFlags     = "MBTOOL_USERFLAGS"
	KeyCache         = "MBTOOL_CACHE"
	KeyCacheCRC      = "MBTOOL_CACHECRC"
)

// cacheChunk is how many bytes of a cache record one atom of MBTOOL_CACHE
// holds, in hex: short enough to be printed as a bare atom (a literal's
// length, once damaged, would derail the reader past the record).
const cacheChunk = 500

// WriteRecord writes one RECORD entry %(UID ... GUID ... [ANNOTATIONS (...)]).
func WriteRecord(w *dlist.Writer, r *Record) {
	w.BeginKVList()
	w.Key("UID")
	w.Num(uint64(r.UID))
	w.Key("MODSEQ")
	w.Num(r.Modseq)
	w.Key("LAST_UPDATED")
	w.Num(uint64(r.LastUpdated))
	w.Key("FLAGS")
	w.BeginList()
	for _, f := range r.Flags {
		w.Flag(f)
	}
	w.EndList()
	w.Key("INTERNALDATE")
	w.Num(uint64(r.InternalDate))
	w.Key("SIZE")
	w.Num(uint64(r.Size))
	w.Key("GUID")
	w.GUID(r.GUID)
	if len(r.Annotations) > 0 {
		w.Key("ANNOTATIONS")
		writeAnnotations(w, r.Annotations)
	}
	if r.Cache != nil {
		w.Key(KeyCacheCRC)
		w.Num(uint64(crc32.ChecksumIEEE(r.Cache)))
		w.Key(KeyCache)
		w.BeginList()
		for c := r.Cache; len(c) > 0; {
			n := min(len(c), cacheChunk)
			w.Atom(hex.EncodeToString(c[:n]))
			c = c[n:]
		}
		w.EndList()
	}
	w.EndList()
}

func writeAnnotations(w *dlist.Writer, as []Annotation) {
	w.BeginList()
	for i := range as {
		a := &as[i]
		w.BeginKVList()
		w.Key("ENTRY")
		w.Atom(a.Entry)
		w.Key("USERID")
		w.Atom(a.UserID)
		w.Key("MODSEQ")
		w.Num(a.Modseq)
		w.Key("VALUE")
		w.Bytes(a.Value)
		w.EndList()
	}
	w.EndList()
}

// WriteSeen writes "APPLY SEEN %(USERID UNIQUEID LASTREAD LASTUID LASTCHANGE SEENUIDS)".
func WriteSeen(w *dlist.Writer, s *Seen) error {
	w.BeginLine("APPLY", "SEEN")
	w.BeginKVList()
	w.Key("USERID")
	w.Atom(s.UserID)
	w.Key("UNIQUEID")
	w.Atom(s.UniqueID)
	w.Key("LASTREAD")
	w.Num(uint64(s.LastRead))
	w.Key("LASTUID")
	w.Num(uint64(s.LastUID))
	w.Key("LASTCHANGE")
	w.Num(uint64(s.LastChange))
	w.Key("SEENUIDS")
	w.Atom(s.SeenUIDs)
	w.EndList()
	return w.EndLine()
}

// WriteServerAnnotation writes "APPLY ANNOTATION %(MBOXNAME "" ENTRY e
// USERID u VALUE v)": an annotation of the server rather than of a
// mailbox (GETMETADATA ""), as sync_client sends one (imap/sync_support.c
// folder_setannotation; sync_server stores it with
// annotate_state_set_server).
func WriteServerAnnotation(w *dlist.Writer, a *Annotation) error {
	w.BeginLine("APPLY", "ANNOTATION")
	w.BeginKVList()
	w.Key("MBOXNAME")
	w.Atom("")
	w.Key("ENTRY")
	w.Atom(a.Entry)
	w.Key("USERID")
	w.Atom(a.UserID)
	w.Key("VALUE")
	w.Bytes(a.Value)
	w.EndList()
	return w.EndLine()
}

// WriteSub writes "APPLY SUB %(USERID u MBOXNAME m)".
func WriteSub(w *dlist.Writer, s *Sub) error {
	w.BeginLine("APPLY", "SUB")
	w.BeginKVList()
	w.Key("USERID")
	w.Atom(s.UserID)
	w.Key("MBOXNAME")
	w.Atom(s.MboxName)
	w.EndList()
	return w.EndLine()
}

// WriteQuota writes "APPLY QUOTA %(ROOT r LIMIT l <resource> n ... MODSEQ m)"
// as Cyrus's sync_encode_quota_limits does: LIMIT is the storage limit (or
// 4294967295 when unlimited), then every resource whose limit is set.
func WriteQuota(w *dlist.Writer, q *Quota) error {
	w.BeginLine("APPLY", "QUOTA")
	w.BeginKVList()
	w.Key("ROOT")
	w.Atom(q.Root)
	w.Key("LIMIT")
	if l := q.Limits[QuotaStorage]; l >= 0 {
		w.Num(uint64(l))
	} else {
		w.Num(4294967295)
	}
	for i, l := range q.Limits {
		if l >= 0 {
			w.Key(QuotaNames[i])
			w.Num(uint64(l))
		}
	}
	w.Key("MODSEQ")
	w.Num(q.Modseq)
	w.EndList()
	return w.EndLine()
}
