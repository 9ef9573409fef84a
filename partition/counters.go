package partition

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/mbtool/mbtool/mboxname"
)

// The modseq counters of a user (imap/mboxname.c, "COUNTERS"): with
// `conversations: yes` Cyrus gives a change in any mailbox of a user the
// next value of one counter per user, kept in the file `counters` beside
// the user's seen database (shared mailboxes: `shared.counters` of the
// configuration directory or of the domain). docs/cyrus/files.md §11
// describes the file.
const (
	countersVersion = 9   // MV_VERSION, what Cyrus 3.6 writes
	countersLength  = 296 // MV_LENGTH
	countersCRC     = 292 // MV_OFF_CRC: CRC32 of the bytes before it

	offGeneration    = 0  // MV_OFF_GENERATION, 32 bits
	offVersion       = 4  // MV_OFF_VERSION, 32 bits
	offHighestModseq = 8  // MV_OFF_HIGHESTMODSEQ, 64 bits, big-endian
	offMailModseq    = 16 // MV_OFF_MAILMODSEQ
	offCalDAVModseq  = 24 // MV_OFF_CALDAVMODSEQ
	offCardDAVModseq = 32 // MV_OFF_CARDDAVMODSEQ
	offSubmitModseq  = 96 // MV_OFF_SUBMISSIONMODSEQ
)

// CountersPath returns the path of the modseq counters file that the
// changes of mailbox name count in (imap/mboxname.c mboxname_conf_getpath
// with suffix "counters"), and false for a mailbox that counts in none (a
// deleted one: Cyrus's commit skips them, imap/mailbox.c mailbox_commit).
// The file need not exist.
func (s *Spool) CountersPath(name string) (string, bool, error) {
	user, domain, deleted := mboxname.ModseqCounter(name)
	if deleted {
		return "", false, nil
	}
	if user != "" {
		p, err := s.userFilePath(user, "counters")
		return p, err == nil, err
	}
	p := s.Config.ConfigDir
	if domain != "" {
		p += "/domain/" + string(hashChar(domain, s.Config.FullDirHash)) + "/" + domain
	}
	return p + "/shared.counters", true, nil
}

// counterOffset is the offset of the counter of the mailbox's kind, by its
// mbtype letter (imap/mboxname.c mboxname_domodseq; the kinds Cyrus tells
// by name, notes and DAV notifications, are not told apart: mail).
func counterOffset(mbtype string) int {
	switch {
	case strings.HasPrefix(mbtype, "a"):
		return offCardDAVModseq
	case strings.HasPrefix(mbtype, "c"):
		return offCalDAVModseq
	case strings.HasPrefix(mbtype, "s"):
		return offSubmitModseq
	}
	return offMailModseq
}

// parseCounters checks a counters file's contents as imap/mboxname.c
// mboxname_buf_to_counters does and returns it as a countersLength
// buffer; an empty file is all zeros. Only version 9 is written by Cyrus
// 3.6 and accepted here.
func parseCounters(path string, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return make([]byte, countersLength), nil
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("%s: %d bytes, not a counters file", path, len(b))
	}
	if v := binary.BigEndian.Uint32(b[offVersion:]); v != countersVersion {
		return nil, fmt.Errorf("%s: counters version %d; only %d (Cyrus 3.6) is supported", path, v, countersVersion)
	}
	if len(b) != countersLength {
		return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(b), countersLength)
	}
	if got, want := crc32.ChecksumIEEE(b[:countersCRC]), binary.BigEndian.Uint32(b[countersCRC:]); got != want {
		return nil, fmt.Errorf("%s: checksum %08x, stored %08x", path, got, want)
	}
	return b, nil
}

// ReadModseqCounter returns the counter a change of mailbox name would
// be numbered after (the user's highestmodseq), without locking, as
// Cyrus's readers do (imap/mboxname.c mboxname_read_counters): 0 when
// the file is missing or the mailbox counts in none, and without
// `conversations: yes`, when Cyrus keeps no counter (mboxname_domodseq).
func (s *Spool) ReadModseqCounter(name string) (uint64, error) {
	path, ok, err := s.CountersPath(name)
	if err != nil || !ok || !s.Config.Switch("conversations", false) {
		return 0, err
	}
	f, err := s.Config.Tree().Open(path, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, countersLength+1))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	b, err = parseCounters(path, b)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[offHighestModseq:]), nil
}

// NextModseq is imap/mboxname.c mboxname_nextmodseq for a change of
// mailbox e whose HIGHESTMODSEQ is last, with `conversations: yes`:
// under the exclusive lock of the counters file (created, empty, if
// missing, as Cyrus does), the MODSEQ is one above the higher of last
// and the counter, and the counters (the user's and the one of the
// mailbox's kind) are raised to it, by writing <file>.NEW and renaming
// it, as Cyrus writes them (mboxname_set_fcounters). The MODSEQ is
// reserved: no other change of the user gets it. For a mailbox that
// counts in none, or without `conversations: yes`, last+1.
func (s *Spool) NextModseq(ctx context.Context, e Entry, last uint64, owner Owner) (uint64, error) {
	return s.raiseCounters(ctx, e, last, 1, owner)
}

// SetModseq is imap/mboxname.c mboxname_setmodseq, what Cyrus does when
// it commits a mailbox whose HIGHESTMODSEQ is modseq: the counters are
// raised to at least modseq. It returns the user's counter after it.
func (s *Spool) SetModseq(ctx context.Context, e Entry, modseq uint64, owner Owner) (uint64, error) {
	return s.raiseCounters(ctx, e, modseq, 0, owner)
}

// raiseCounters is imap/mboxname.c mboxname_domodseq for a mailbox's
// change (MBOXMODSEQ, no folder change).
func (s *Spool) raiseCounters(ctx context.Context, e Entry, last, add uint64, owner Owner) (uint64, error) {
	path, ok, err := s.CountersPath(e.Name)
	if err != nil {
		return 0, fmt.Errorf("modseq counters of %s: %w", e.Name, err)
	}
	if !ok || !s.Config.Switch("conversations", false) {
		return last + add, nil
	}
	tree := s.Config.Tree()
	if err := tree.Ensure(path, owner); err != nil {
		return 0, fmt.Errorf("modseq counters of %s: %w", e.Name, err)
	}
	f, err := tree.OpenLocked(ctx, path, os.O_RDWR, true)
	if err != nil {
		return 0, fmt.Errorf("locking %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	old, err := io.ReadAll(io.LimitReader(f, countersLength+1))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	b, err := parseCounters(path, old)
	if err != nil {
		return 0, err
	}
	orig := string(b)
	b = append([]byte(nil), b...)
	get := func(off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }
	set := func(off int, v uint64) { binary.BigEndian.PutUint64(b[off:], v) }
	typ := counterOffset(e.Type)
	// All counters at least last; when adding, the user's counter and the
	// kind's are the next value.
	if get(offHighestModseq) < last {
		set(offHighestModseq, last)
	}
	if get(typ) < last {
		set(typ, last)
	}
	if add > 0 {
		set(offHighestModseq, get(offHighestModseq)+add)
		set(typ, get(offHighestModseq))
	}
	next := get(offHighestModseq)
	if string(b) == orig {
		return next, nil // unchanged: not rewritten, as Cyrus does
	}
	binary.BigEndian.PutUint32(b[offGeneration:], binary.BigEndian.Uint32(b[offGeneration:])+1)
	binary.BigEndian.PutUint32(b[offVersion:], countersVersion)
	binary.BigEndian.PutUint32(b[countersCRC:], crc32.ChecksumIEEE(b[:countersCRC]))
	if err := replaceFile(tree, path, fi, b); err != nil {
		return 0, err
	}
	return next, nil
}
