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

	offGeneration        = 0   // MV_OFF_GENERATION, 32 bits
	offVersion           = 4   // MV_OFF_VERSION, 32 bits
	offHighestModseq     = 8   // MV_OFF_HIGHESTMODSEQ, 64 bits, big-endian
	offMailModseq        = 16  // MV_OFF_MAILMODSEQ
	offCalDAVModseq      = 24  // MV_OFF_CALDAVMODSEQ
	offCardDAVModseq     = 32  // MV_OFF_CARDDAVMODSEQ
	offMailFoldersModseq = 48  // MV_OFF_MAILFOLDERSMODSEQ
	offSubmitModseq      = 96  // MV_OFF_SUBMISSIONMODSEQ
	offUIDValidity       = 288 // MV_OFF_UIDVALIDITY, 32 bits
)

// CountersPath returns the path of the modseq counters file that the
// changes of mailbox name count in (imap/mboxname.c mboxname_conf_getpath
// with suffix "counters"), and false for a mailbox that counts in none (a
// deleted one: Cyrus's commit skips them, imap/mailbox.c mailbox_commit).
// The file need not exist.
func (s *Spool) CountersPath(name string) (string, bool, error) {
	return s.countersPath(name, s.lookupAny)
}

// CountersPath is Spool.CountersPath in the view: the counters of many
// mailboxes with one hold of mailboxes.db's lock.
func (v *MailboxesView) CountersPath(name string) (string, bool, error) {
	return v.s.countersPath(name, v.Lookup)
}

func (s *Spool) countersPath(name string, lookup func(name string) (Entry, bool, error)) (string, bool, error) {
	user, domain, deleted := mboxname.ModseqCounter(name)
	if deleted {
		return "", false, nil
	}
	if user != "" {
		p, err := s.userFilePathBy(user, "counters", lookup)
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

// countersLengths is the length of each version of the file that Cyrus
// 3.6 reads (imap/mboxname.c mboxname_buf_to_counters, versions 0 to 9):
// in each, the CRC32 of the bytes before it is the last 4 bytes, the
// 32-bit UIDVALIDITY counter the 4 before it, and the 64-bit counters
// from offset 8 up to that sit where version 9 has them (each version
// added counters at the end).
var countersLengths = [...]int{48, 56, 64, 88, 104, 120, 200, 232, 264, countersLength}

// parseCounters reads a counters file's contents as imap/mboxname.c
// mboxname_buf_to_counters does and returns them as a version 9 buffer
// (countersLength bytes, its CRC not set), which is what Cyrus writes
// back whatever version it read (mboxname_counters_to_buf). A file of
// fewer than 8 bytes is all zeros (Cyrus reads nothing of it); a file of
// 48 bytes is version 0 whatever its version field says (version 0 did
// not store it reliably); any version is checked against its own length
// and CRC; an unknown version is refused. Version 2 is read as Cyrus reads
// it on a little-endian host (amd64, arm64): its folder counter at 48 is
// read as 32 bits and byte-swapped as 64, which keeps the upper half of
// the stored value and zeroes the lower.
func parseCounters(path string, b []byte) ([]byte, error) {
	out := make([]byte, countersLength)
	if len(b) < 8 {
		return out, nil
	}
	v := binary.BigEndian.Uint32(b[offVersion:])
	if len(b) == countersLengths[0] {
		v = 0
	}
	if v >= uint32(len(countersLengths)) {
		return nil, fmt.Errorf("%s: counters version %d, which Cyrus 3.6 does not know", path, v)
	}
	n := countersLengths[v]
	if len(b) != n {
		return nil, fmt.Errorf("%s: %d bytes, but counters version %d has %d", path, len(b), v, n)
	}
	if got, want := crc32.ChecksumIEEE(b[:n-4]), binary.BigEndian.Uint32(b[n-4:]); got != want {
		return nil, fmt.Errorf("%s: checksum %08x, stored %08x (counters version %d)", path, got, want, v)
	}
	copy(out, b[:n-8])
	copy(out[offUIDValidity:offUIDValidity+4], b[n-8:n-4])
	if v == 2 {
		clear(out[offMailFoldersModseq+4 : offMailFoldersModseq+8])
	}
	binary.BigEndian.PutUint32(out[offVersion:], countersVersion)
	return out, nil
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
	f, err := s.tree().Open(path, os.O_RDONLY)
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
	next, _, err := s.raiseCounters(ctx, e, last, 1, false, owner)
	return next, err
}

// SetModseq is imap/mboxname.c mboxname_setmodseq, what Cyrus does when
// it commits a mailbox whose HIGHESTMODSEQ is modseq: the counters are
// raised to at least modseq. It returns the user's counter after it.
func (s *Spool) SetModseq(ctx context.Context, e Entry, modseq uint64, owner Owner) (uint64, error) {
	next, _, err := s.raiseCounters(ctx, e, modseq, 0, false, owner)
	return next, err
}

// ReserveModseq reserves modseq for the changes of mailbox e, numbered
// earlier above the user's counter as it was then (a --replace numbers
// them while the dump is read, and reserves the MODSEQ at its commit):
// under the counters file's lock, if the user's counter is still below
// modseq, the counters are raised to it as SetModseq does, and true; if
// it is not (a change of the user was numbered at or above modseq
// meanwhile), false, and the file is left as it is. True without
// `conversations: yes` or for a mailbox that counts in none.
func (s *Spool) ReserveModseq(ctx context.Context, e Entry, modseq uint64, owner Owner) (bool, error) {
	_, ok, err := s.raiseCounters(ctx, e, modseq, 0, true, owner)
	return ok, err
}

// raiseCounters is imap/mboxname.c mboxname_domodseq for a mailbox's
// change (MBOXMODSEQ, no folder change); with onlyBelow, it changes
// nothing, and says false, when the user's counter is at least last.
func (s *Spool) raiseCounters(ctx context.Context, e Entry, last, add uint64, onlyBelow bool, owner Owner) (uint64, bool, error) {
	if !s.Config.Switch("conversations", false) {
		// No counters file is kept: nothing to look up (a hold of
		// mailboxes.db's lock per owner of a restore group).
		return last + add, true, nil
	}
	path, ok, err := s.CountersPath(e.Name)
	if err != nil {
		return 0, false, fmt.Errorf("modseq counters of %s: %w", e.Name, err)
	}
	if !ok {
		return last + add, true, nil
	}
	tree := s.tree()
	if err := tree.Ensure(path, owner); err != nil {
		return 0, false, fmt.Errorf("modseq counters of %s: %w", e.Name, err)
	}
	f, err := tree.OpenLocked(ctx, path, os.O_RDWR, true)
	if err != nil {
		return 0, false, fmt.Errorf("locking %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	old, err := io.ReadAll(io.LimitReader(f, countersLength+1))
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", path, err)
	}
	b, err := parseCounters(path, old)
	if err != nil {
		return 0, false, err
	}
	orig := string(b)
	get := func(off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }
	if onlyBelow && get(offHighestModseq) >= last {
		return get(offHighestModseq), false, nil
	}
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
		return next, true, nil // unchanged: not rewritten, as Cyrus does
	}
	binary.BigEndian.PutUint32(b[offGeneration:], binary.BigEndian.Uint32(b[offGeneration:])+1)
	binary.BigEndian.PutUint32(b[offVersion:], countersVersion)
	binary.BigEndian.PutUint32(b[countersCRC:], crc32.ChecksumIEEE(b[:countersCRC]))
	if err := replaceFile(tree, path, fi, b); err != nil {
		return 0, false, err
	}
	return next, true, nil
}
