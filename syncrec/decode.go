package syncrec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
)

// ErrInvalid is wrapped by every error about a record or mailbox whose keys
// are missing or do not convert.
var ErrInvalid = errors.New("invalid sync record")

// FieldError names the key and byte offset of a bad value.
type FieldError struct {
	Offset int64  // byte offset of the value in the input
	Key    string // the dlist key, e.g. "UID"
	Err    error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("offset %d: %s: %v", e.Offset, e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func invalid(off int64, key, format string, args ...any) error {
	return &FieldError{Offset: off, Key: key, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
}

// parseNum converts decimal digits as Cyrus's parsenum does: the whole text
// must be digits, at least one, at most 18446744073709551615.
func parseNum(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func scalar(t dlist.Token) bool {
	return t.Kind == dlist.Atom || t.Kind == dlist.Literal || t.Kind == dlist.Flag
}

func tokNum(t dlist.Token, key string, max uint64) (uint64, error) {
	if !scalar(t) {
		return 0, invalid(t.Offset, key, "expected a number, found %v", t.Kind)
	}
	n, ok := parseNum(t.Bytes)
	if !ok || n > max {
		return 0, invalid(t.Offset, key, "%q is not a number", clip(t.Bytes))
	}
	return n, nil
}

func clip(b []byte) string {
	if len(b) > 48 {
		return string(b[:48]) + "..."
	}
	return string(b)
}

const (
	max32 = 1<<32 - 1
	max64 = 1<<64 - 1
)

// ReadRecord reads one RECORD entry %( ... ) from r; the opening token has
// already been read and is passed as open. It decodes from tokens without
// building a tree, so a million records cost a million small structs and
// nothing more.
func ReadRecord(r *dlist.Reader, open dlist.Token) (*Record, error) {
	return readRecord(r, open, &budget{max: MaxHeld}, false)
}

// readRecord reads a record, its values bounded by b. light skips the
// annotations and the cache record (MailboxReader.Light).
func readRecord(r *dlist.Reader, open dlist.Token, b *budget, light bool) (*Record, error) {
	if open.Kind != dlist.KVList {
		return nil, invalid(open.Offset, "RECORD", "expected %%( for a record, found %v", open.Kind)
	}
	rec := &Record{}
	const (
		hUID = 1 << iota
		hModseq
		hLastUpdated
		hFlags
		hInternalDate
		hSize
		hGUID
		hAll = 1<<iota - 1
	)
	have := 0
	var cacheCRC uint32
	var haveCRC bool
	var cacheAt int64
	for {
		kt, err := r.Next()
		if err != nil {
			return nil, err
		}
		if kt.Kind == dlist.End {
			break
		}
		if !scalar(kt) {
			return nil, invalid(kt.Offset, "RECORD", "expected a key, found %v", kt.Kind)
		}
		key := intern(kt.Bytes)
		if light && (key == "ANNOTATIONS" || key == KeyCache || key == KeyCacheCRC) {
			if err := skipValue(r); err != nil {
				return nil, err
			}
			continue
		}
		switch key {
		case "FLAGS":
			if rec.Flags, err = readFlags(r, b); err != nil {
				return nil, err
			}
			have |= hFlags
			continue
		case "ANNOTATIONS":
			if rec.Annotations, err = readAnnotations(r, b); err != nil {
				return nil, err
			}
			continue
		case KeyCache:
			if rec.Cache, cacheAt, err = readCache(r); err != nil {
				return nil, err
			}
			if err := b.take(int64(len(rec.Cache)), cacheAt, KeyCache); err != nil {
				return nil, err
			}
			continue
		case KeyCacheCRC:
			ct, err := r.Next()
			if err != nil {
				return nil, err
			}
			n, err := tokNum(ct, key, max32)
			if err != nil {
				return nil, err
			}
			cacheCRC, haveCRC = uint32(n), true
			continue
		case "UID", "MODSEQ", "LAST_UPDATED", "INTERNALDATE", "SIZE", "GUID":
		default:
			if err := skipValue(r); err != nil { // a key this version does not know
				return nil, err
			}
			continue
		}
		vt, err := r.Next()
		if err != nil {
			return nil, err
		}
		var n uint64
		switch key {
		case "UID":
			n, err = tokNum(vt, key, max32)
			rec.UID, have = uint32(n), have|hUID
		case "MODSEQ":
			n, err = tokNum(vt, key, max64)
			rec.Modseq, have = n, have|hModseq
		case "LAST_UPDATED":
			n, err = tokNum(vt, key, max64>>1)
			rec.LastUpdated, have = int64(n), have|hLastUpdated
		case "INTERNALDATE":
			n, err = tokNum(vt, key, max64>>1)
			rec.InternalDate, have = int64(n), have|hInternalDate
		case "SIZE":
			n, err = tokNum(vt, key, max32)
			rec.Size, have = uint32(n), have|hSize
		case "GUID":
			if !scalar(vt) {
				err = invalid(vt.Offset, key, "expected a GUID, found %v", vt.Kind)
				break
			}
			var gerr error
			if rec.GUID, gerr = guid.ParseBytes(vt.Bytes); gerr != nil {
				err = invalid(vt.Offset, key, "%q: %v", clip(vt.Bytes), gerr)
			}
			have |= hGUID
		}
		if err != nil {
			return nil, err
		}
	}
	if have != hAll {
		for i, k := range []string{"UID", "MODSEQ", "LAST_UPDATED", "FLAGS", "INTERNALDATE", "SIZE", "GUID"} {
			if have&(1<<i) == 0 {
				return nil, invalid(open.Offset, k, "missing from record (UID %d)", rec.UID)
			}
		}
	}
	if rec.Cache != nil {
		switch {
		case !haveCRC:
			return nil, invalid(cacheAt, KeyCache, "without %s (UID %d)", KeyCacheCRC, rec.UID)
		case crc32.ChecksumIEEE(rec.Cache) != cacheCRC:
			return nil, invalid(cacheAt, KeyCache, "CRC %d, %s says %d (UID %d)", crc32.ChecksumIEEE(rec.Cache), KeyCacheCRC, cacheCRC, rec.UID)
		case !partition.CheckCacheRecord(rec.Cache):
			return nil, invalid(cacheAt, KeyCache, "not a cache record (UID %d)", rec.UID)
		}
	}
	return rec, nil
}

// readCache reads the value of MBTOOL_CACHE, a list of hex atoms, into the
// cache record they spell, at most partition.MaxCacheRecord bytes.
func readCache(r *dlist.Reader) ([]byte, int64, error) {
	t, err := r.Next()
	if err != nil {
		return nil, 0, err
	}
	if t.Kind != dlist.List {
		return nil, 0, invalid(t.Offset, KeyCache, "expected a list, found %v", t.Kind)
	}
	at := t.Offset
	b := []byte{}
	for {
		t, err := r.Next()
		if err != nil {
			return nil, 0, err
		}
		if t.Kind == dlist.End {
			return b, at, nil
		}
		if !scalar(t) || len(t.Bytes)%2 != 0 || len(b)+len(t.Bytes)/2 > partition.MaxCacheRecord {
			return nil, 0, invalid(t.Offset, KeyCache, "expected hex digits, at most %d bytes in all", partition.MaxCacheRecord)
		}
		n := len(b)
		b = append(b, make([]byte, len(t.Bytes)/2)...)
		if _, err := hex.Decode(b[n:], t.Bytes); err != nil {
			return nil, 0, invalid(t.Offset, KeyCache, "%v", err)
		}
	}
}

func readFlags(r *dlist.Reader, b *budget) ([]string, error) {
	t, err := r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.List {
		return nil, invalid(t.Offset, "FLAGS", "expected a list, found %v", t.Kind)
	}
	var flags []string
	for {
		t, err := r.Next()
		if err != nil {
			return nil, err
		}
		if t.Kind == dlist.End {
			return flags, nil
		}
		if !scalar(t) {
			return nil, invalid(t.Offset, "FLAGS", "expected a flag, found %v", t.Kind)
		}
		if err := b.take(int64(len(t.Bytes)), t.Offset, "FLAGS"); err != nil {
			return nil, err
		}
		if flags == nil {
			flags = make([]string, 0, 4) // grown at once, not one by one
		}
		flags = append(flags, intern(t.Bytes))
	}
}

// intern returns b as a string, without allocating for the record keys,
// system flags and annotation entries that nearly every message record
// repeats.
func intern(b []byte) string {
	switch string(b) {
	case "UID":
		return "UID"
	case "MODSEQ":
		return "MODSEQ"
	case "LAST_UPDATED":
		return "LAST_UPDATED"
	case "FLAGS":
		return "FLAGS"
	case "INTERNALDATE":
		return "INTERNALDATE"
	case "SIZE":
		return "SIZE"
	case "GUID":
		return "GUID"
	case "ANNOTATIONS":
		return "ANNOTATIONS"
	case KeyCache:
		return KeyCache
	case KeyCacheCRC:
		return KeyCacheCRC
	case `\Seen`:
		return `\Seen`
	case `\Answered`:
		return `\Answered`
	case `\Flagged`:
		return `\Flagged`
	case `\Deleted`:
		return `\Deleted`
	case `\Draft`:
		return `\Draft`
	case "/vendor/cmu/cyrus-imapd/savedate":
		return "/vendor/cmu/cyrus-imapd/savedate"
	case "/vendor/cmu/cyrus-imapd/createdmodseq":
		return "/vendor/cmu/cyrus-imapd/createdmodseq"
	case "/vendor/cmu/cyrus-imapd/thrid":
		return "/vendor/cmu/cyrus-imapd/thrid"
	}
	return string(b)
}

// readAnnotations reads an ANNOTATIONS list. It decodes the list as it
// reads it, without building the tree readTree would (every message record
// has annotations: the tree cost verify and restore about forty
// allocations a record), and fails as readTree followed by
// DecodeAnnotations would: a reading error or an exceeded budget first,
// else the first annotation that does not decode.
func readAnnotations(r *dlist.Reader, b *budget) ([]Annotation, error) {
	t, err := r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.List {
		v, err := readTree(r, t, "ANNOTATIONS", b)
		if err != nil {
			return nil, err
		}
		return DecodeAnnotations(v)
	}
	if err := b.take(0, t.Offset, "ANNOTATIONS"); err != nil {
		return nil, err
	}
	var as []Annotation
	var bad error // the first annotation that does not decode
	for {
		ct, err := r.Next()
		if err != nil {
			return nil, err
		}
		if ct.Kind == dlist.End {
			if bad != nil {
				return nil, bad
			}
			if as == nil {
				as = []Annotation{} // as DecodeAnnotations returns
			}
			return as, nil
		}
		if ct.Kind != dlist.KVList {
			// Read it as readTree would, for its reading errors and
			// budget; it cannot decode.
			if _, err := readTree(r, ct, "ANNOTATIONS", b); err != nil {
				return nil, err
			}
			if bad == nil {
				bad = invalid(ct.Offset, "ANNOTATIONS", "expected %%(, found %v", ct.Kind)
			}
			continue
		}
		a, aerr, err := readAnnotation(r, ct.Offset, b)
		if err != nil {
			return nil, err
		}
		if aerr != nil {
			if bad == nil {
				bad = aerr
			}
			continue
		}
		if as == nil {
			// Room for what a message record usually has (thrid,
			// savedate, ...) at once, not grown one by one.
			as = make([]Annotation, 0, 4)
		}
		as = append(as, a)
	}
}

// readAnnotation reads one annotation's %( list, whose opening token at
// offset off has been read. err is a reading error or an exceeded budget;
// aerr says why a well-read annotation does not decode (as
// DecodeAnnotations says it: both decode through annotationFields).
func readAnnotation(r *dlist.Reader, off int64, b *budget) (a Annotation, aerr, err error) {
	if err := b.take(0, off, "ANNOTATIONS"); err != nil {
		return a, nil, err
	}
	var f annotationFields
	for {
		kt, err := r.Next()
		if err != nil {
			return a, nil, err
		}
		if kt.Kind == dlist.End {
			break
		}
		if !scalar(kt) {
			return a, nil, invalid(kt.Offset, "ANNOTATIONS", "expected a key, found %v", kt.Kind)
		}
		if err := b.take(int64(len(kt.Bytes)), kt.Offset, "ANNOTATIONS"); err != nil {
			return a, nil, err
		}
		bit := annotationBit(kt.Bytes)
		key := annotationKeys[bit]
		if bit == 0 {
			key = string(kt.Bytes)
		}
		vt, err := r.Next()
		if err != nil {
			return a, nil, err
		}
		if vt.Kind == dlist.List || vt.Kind == dlist.KVList || !(scalar(vt) || vt.Kind == dlist.Nil) {
			// A nested or malformed value: readTree reads it (or says
			// what is wrong).
			v, err := readTree(r, vt, key, b)
			if err != nil {
				return a, nil, err
			}
			f.set(bit, v)
			continue
		}
		if err := b.take(int64(len(vt.Bytes)), vt.Offset, key); err != nil {
			return a, nil, err
		}
		f.set(bit, &dlist.Value{Kind: vt.Kind, Data: vt.Bytes, Offset: vt.Offset})
	}
	a, aerr = f.annotation(off)
	return a, aerr, nil
}

// The fields of an annotation, as annotationFields marks them.
const (
	annEntry = 1 << iota
	annUserID
	annModseq
	annValue
)

// annotationKeys names each field by its bit.
var annotationKeys = [...]string{annEntry: "ENTRY", annUserID: "USERID", annModseq: "MODSEQ", annValue: "VALUE"}

// annotationBit is the field bit of key k, 0 for a key annotations do not
// have (which is ignored).
func annotationBit(k []byte) int {
	switch string(k) {
	case "ENTRY":
		return annEntry
	case "USERID":
		return annUserID
	case "MODSEQ":
		return annModseq
	case "VALUE":
		return annValue
	}
	return 0
}

// annotationFields is the one decoder of an annotation's %( list, fed a
// value per key, from the reader (readAnnotation) or from a tree
// (DecodeAnnotations). The first of a repeated key counts, as
// dlist.Value.Get finds it.
type annotationFields struct {
	a      Annotation
	have   int
	modseq *dlist.Value // kept only when it is not a plain number
}

// set takes the value of the field bit. v's Data may be the reader's
// buffer: set copies what it keeps.
func (f *annotationFields) set(bit int, v *dlist.Value) {
	if bit == 0 || f.have&bit != 0 {
		return
	}
	f.have |= bit
	switch bit {
	case annEntry:
		// As dlist.Value.String: the bytes of a scalar, "" otherwise.
		switch v.Kind {
		case dlist.Atom, dlist.Flag, dlist.Literal, dlist.Text:
			f.a.Entry = intern(v.Data)
		}
	case annUserID:
		f.a.UserID = v.String()
	case annModseq:
		if n, ok := parseNum(v.Data); ok && (v.Kind == dlist.Atom || v.Kind == dlist.Literal) {
			f.a.Modseq = n
			return
		}
		m := *v
		m.Key, m.Data = "MODSEQ", bytes.Clone(v.Data)
		f.modseq = &m
	case annValue:
		f.a.Value = append([]byte(nil), v.Data...)
	}
}

// annotation is the decoded annotation whose %( list is at offset off, or
// why it does not decode.
func (f *annotationFields) annotation(off int64) (Annotation, error) {
	for _, bit := range [...]int{annEntry, annUserID, annModseq, annValue} {
		if f.have&bit == 0 {
			return Annotation{}, invalid(off, annotationKeys[bit], "missing from annotation")
		}
	}
	if f.modseq != nil {
		n, err := f.modseq.Num64()
		if err != nil {
			return Annotation{}, invalid(f.modseq.Offset, "MODSEQ", "%v", err)
		}
		f.a.Modseq = n
	}
	return f.a, nil
}

// skipValue reads one value and forgets it, holding nothing.
func skipValue(r *dlist.Reader) error {
	for depth := 0; ; {
		t, err := r.Next()
		if err != nil {
			return err
		}
		switch t.Kind {
		case dlist.List, dlist.KVList:
			depth++
		case dlist.End:
			if depth == 0 {
				return invalid(t.Offset, "RECORD", "a key without a value")
			}
			depth--
		case dlist.File:
			return invalid(t.Offset, "RECORD", "a file literal in a record")
		}
		if depth <= 0 {
			return nil
		}
	}
}

// DecodeAnnotations converts an ANNOTATIONS list value.
func DecodeAnnotations(v *dlist.Value) ([]Annotation, error) {
	if v.Kind != dlist.List {
		return nil, invalid(v.Offset, "ANNOTATIONS", "expected a list, found %v", v.Kind)
	}
	as := make([]Annotation, 0, len(v.Children))
	for _, c := range v.Children {
		if c.Kind != dlist.KVList {
			return nil, invalid(c.Offset, "ANNOTATIONS", "expected %%(, found %v", c.Kind)
		}
		var f annotationFields
		for _, k := range c.Children {
			f.set(annotationBit([]byte(k.Key)), k)
		}
		a, err := f.annotation(c.Offset)
		if err != nil {
			return nil, err
		}
		as = append(as, a)
	}
	return as, nil
}

// DecodeMailbox converts the mailbox-level keys of a MAILBOX kvlist (any
// RECORD key is ignored).
func DecodeMailbox(v *dlist.Value) (*Mailbox, error) {
	if v.Kind != dlist.KVList {
		return nil, invalid(v.Offset, "MAILBOX", "expected %%(, found %v", v.Kind)
	}
	if err := uniqueKeys(v, "MAILBOX"); err != nil {
		return nil, err
	}
	mb := &Mailbox{}
	str := func(key string, dst *string, required bool) error {
		c := v.Get(key)
		if c == nil {
			if required {
				return invalid(v.Offset, key, "missing from mailbox")
			}
			return nil
		}
		if c.Kind == dlist.List || c.Kind == dlist.KVList {
			return invalid(c.Offset, key, "expected a string, found %v", c.Kind)
		}
		*dst = c.String()
		return nil
	}
	num := func(key string, max uint64, required bool, set func(uint64)) error {
		c := v.Get(key)
		if c == nil {
			if required {
				return invalid(v.Offset, key, "missing from mailbox")
			}
			return nil
		}
		n, err := c.Num64()
		if err != nil || n > max {
			return invalid(c.Offset, key, "%q is not a number", clip(c.Data))
		}
		set(n)
		return nil
	}
	errs := []error{
		str("UNIQUEID", &mb.UniqueID, true),
		str("MBOXNAME", &mb.Name, true),
		str("MBOXTYPE", &mb.MboxType, false),
		num("SYNC_CRC", max32, false, func(n uint64) { mb.SyncCRC = uint32(n) }),
		num("SYNC_CRC_ANNOT", max32, false, func(n uint64) { mb.SyncCRCAnnot = uint32(n) }),
		num("LAST_UID", max32, false, func(n uint64) { mb.LastUID = uint32(n) }),
		num("HIGHESTMODSEQ", max64, true, func(n uint64) { mb.HighestModseq = n }),
		num("RECENTUID", max32, false, func(n uint64) { mb.RecentUID = uint32(n) }),
		num("RECENTTIME", max64>>1, false, func(n uint64) { mb.RecentTime = int64(n) }),
		num("LAST_APPENDDATE", max64>>1, false, func(n uint64) { mb.LastAppendDate = int64(n) }),
		num("POP3_LAST_LOGIN", max64>>1, false, func(n uint64) { mb.POP3LastLogin = int64(n) }),
		num("POP3_SHOW_AFTER", max64>>1, false, func(n uint64) { mb.POP3ShowAfter = int64(n) }),
		num("XCONVMODSEQ", max64, false, func(n uint64) { mb.XConvModseq = n }),
		num("RACLMODSEQ", max64, false, func(n uint64) { mb.RaclModseq = n }),
		num("UIDVALIDITY", max32, false, func(n uint64) { mb.UIDValidity = uint32(n) }),
		str("PARTITION", &mb.Partition, false),
		str("ACL", &mb.ACL, false),
		str("OPTIONS", &mb.Options, false),
		str("QUOTAROOT", &mb.QuotaRoot, false),
		num("CREATEDMODSEQ", max64, false, func(n uint64) { mb.CreatedModseq = n }),
		num("FOLDERMODSEQ", max64, false, func(n uint64) { mb.FolderModseq = n }),
		num(KeyDeletedModseq, max64, false, func(n uint64) { mb.DeletedModseq = n }),
		num(KeyGeneration, max32, false, func(n uint64) { mb.Generation = uint32(n) }),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if a := v.Get("ANNOTATIONS"); a != nil {
		as, err := DecodeAnnotations(a)
		if err != nil {
			return nil, err
		}
		mb.Annotations = as
	}
	if u := v.Get(KeyUserFlags); u != nil {
		if u.Kind != dlist.List || len(u.Children) > MaxUserFlags {
			return nil, invalid(u.Offset, KeyUserFlags, "expected a list of at most %d flags", MaxUserFlags)
		}
		mb.UserFlags = make([]string, 0, len(u.Children))
		for _, c := range u.Children {
			switch c.Kind {
			case dlist.Nil:
				mb.UserFlags = append(mb.UserFlags, "")
			case dlist.Atom, dlist.Flag:
				mb.UserFlags = append(mb.UserFlags, c.String())
			default:
				return nil, invalid(c.Offset, KeyUserFlags, "expected a flag, found %v", c.Kind)
			}
		}
	}
	return mb, nil
}

// uniqueKeys refuses a kvlist that gives a key twice: which one counts
// would be a guess.
func uniqueKeys(v *dlist.Value, what string) error {
	if len(v.Children) > 64 {
		seen := make(map[string]bool, len(v.Children))
		for _, c := range v.Children {
			if seen[c.Key] {
				return invalid(c.Offset, c.Key, "given twice in %s", what)
			}
			seen[c.Key] = true
		}
		return nil
	}
	for i, c := range v.Children {
		for _, d := range v.Children[:i] {
			if d.Key == c.Key {
				return invalid(c.Offset, c.Key, "given twice in %s", what)
			}
		}
	}
	return nil
}

// DecodeSeen converts the value of an APPLY SEEN line.
func DecodeSeen(v *dlist.Value) (*Seen, error) {
	if v.Kind != dlist.KVList {
		return nil, invalid(v.Offset, "SEEN", "expected %%(, found %v", v.Kind)
	}
	if err := uniqueKeys(v, "SEEN"); err != nil {
		return nil, err
	}
	s := &Seen{}
	for _, k := range []string{"USERID", "UNIQUEID", "LASTREAD", "LASTUID", "LASTCHANGE", "SEENUIDS"} {
		if v.Get(k) == nil {
			return nil, invalid(v.Offset, k, "missing from SEEN")
		}
	}
	s.UserID = v.Get("USERID").String()
	s.UniqueID = v.Get("UNIQUEID").String()
	s.SeenUIDs = v.Get("SEENUIDS").String()
	lr, err1 := v.Get("LASTREAD").Date()
	lu, err2 := v.Get("LASTUID").Num64()
	if err2 == nil && lu > max32 {
		err2 = fmt.Errorf("LASTUID %d is above 4294967295", lu)
	}
	lc, err3 := v.Get("LASTCHANGE").Date()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, invalid(v.Offset, "SEEN", "%v", err)
	}
	s.LastRead, s.LastUID, s.LastChange = lr, uint32(lu), lc
	return s, nil
}

// DecodeServerAnnotation converts the value of an APPLY ANNOTATION line of
// a server annotation (MBOXNAME ""); one of a mailbox is refused, since
// mailbox annotations travel in APPLY MAILBOX.
func DecodeServerAnnotation(v *dlist.Value) (*Annotation, error) {
	for _, k := range []string{"MBOXNAME", "ENTRY", "USERID", "VALUE"} {
		if v.Get(k) == nil {
			return nil, invalid(v.Offset, k, "missing from ANNOTATION")
		}
	}
	if m := v.Get("MBOXNAME").String(); m != "" {
		return nil, invalid(v.Offset, "MBOXNAME", "%q: only server annotations (MBOXNAME \"\") are carried by APPLY ANNOTATION", clip([]byte(m)))
	}
	return &Annotation{Entry: v.Get("ENTRY").String(), UserID: v.Get("USERID").String(),
		Value: append([]byte(nil), v.Get("VALUE").Data...)}, nil
}

// DecodeSub converts the value of an APPLY SUB line.
func DecodeSub(v *dlist.Value) (*Sub, error) {
	if v.Kind != dlist.KVList {
		return nil, invalid(v.Offset, "SUB", "expected %%(, found %v", v.Kind)
	}
	if err := uniqueKeys(v, "SUB"); err != nil {
		return nil, err
	}
	if v.Get("USERID") == nil || v.Get("MBOXNAME") == nil {
		return nil, invalid(v.Offset, "SUB", "USERID and MBOXNAME are required")
	}
	return &Sub{UserID: v.Get("USERID").String(), MboxName: v.Get("MBOXNAME").String()}, nil
}

// DecodeQuota converts the value of an APPLY QUOTA line as Cyrus's
// sync_decode_quota_limits does: every resource unlimited unless named;
// LIMIT 4294967295 means an unlimited storage limit; named resources win.
func DecodeQuota(v *dlist.Value) (*Quota, error) {
	if v.Kind != dlist.KVList {
		return nil, invalid(v.Offset, "QUOTA", "expected %%(, found %v", v.Kind)
	}
	if err := uniqueKeys(v, "QUOTA"); err != nil {
		return nil, err
	}
	root := v.Get("ROOT")
	if root == nil {
		return nil, invalid(v.Offset, "ROOT", "missing from QUOTA")
	}
	q := &Quota{Root: root.String()}
	for i := range q.Limits {
		q.Limits[i] = Unlimited
	}
	if l := v.Get("LIMIT"); l != nil {
		n, err := l.Num64()
		if err != nil || n > max32 {
			return nil, invalid(l.Offset, "LIMIT", "%q is not a number up to 4294967295", clip(l.Data))
		}
		if n != max32 {
			q.Limits[QuotaStorage] = int64(n)
		}
	}
	for i, name := range QuotaNames {
		if c := v.Get(name); c != nil {
			// quota_t is 64 bits (Cyrus's sync_decode_quota_limits reads
			// it with dlist_getnum64).
			n, err := c.Num64()
			if err != nil || n > max64>>1 {
				return nil, invalid(c.Offset, name, "%q is not a number up to 2^63-1", clip(c.Data))
			}
			q.Limits[i] = int64(n)
		}
	}
	if m := v.Get("MODSEQ"); m != nil {
		n, err := m.Num64()
		if err != nil {
			return nil, invalid(m.Offset, "MODSEQ", "%v", err)
		}
		q.Modseq = n
	}
	return q, nil
}
