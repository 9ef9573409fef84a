package msgsel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
)

// UIDMap records how a restore numbered the dump's messages in one
// mailbox of the target, so that what names them by the dump's UIDs
// (other users' seen records, APPLY SEEN) can name them by the target's:
// the messages a --replace or a merge appended with new UIDs (Renumber,
// called in ascending order of the dump's UID, as both number them), and
// up to which UID the others keep theirs (Keep). Consecutive UIDs
// renumbered consecutively are one run, so a map of a mailbox whose lost
// messages are a few ranges is a few runs; beyond maxMapRuns the runs go
// to an unlinked temporary file, so memory stays flat. When the
// mailbox's numbering ends (Finish), a map of more than compactRuns runs
// made by UIDMaps.New moves them all to the run's UIDMaps and keeps
// neither a descriptor nor a buffer: a restore of many mailboxes holds
// one file and a few bytes per mailbox until the seen state is written.
// The zero UIDMap renumbers nothing and keeps nothing; one not made by a
// UIDMaps keeps its runs itself when finished.
type UIDMap struct {
	keep uint32
	runs []uidRun // while numbering, the last runs; once finished, all when few
	f    *os.File // while numbering, runs beyond maxMapRuns, in order, 12 bytes each
	w    *bufio.Writer
	nf   int64 // runs in f
	maps *UIDMaps
	at   int64 // once finished, the offset of the map's runs in maps
	na   int64 // and their number
	done bool
}

type uidRun struct{ old, new, n uint32 }

const (
	maxMapRuns  = 4096
	compactRuns = 64
	runSize     = 12
)

// UIDMaps holds the runs of the finished maps of one restore run, each
// map's in one span of one spill file (spill.Log): the run makes it, makes
// its maps with New, and closes it once the seen state is written, as
// remote's itemLog. It is safe for concurrent use.
type UIDMaps struct {
	mu  sync.Mutex
	log spill.Log
}

// New returns an empty map whose runs go to s when it is finished.
func (s *UIDMaps) New() *UIDMap { return &UIDMap{maps: s} }

// Close removes the file; the maps finished into s are empty after it.
func (s *UIDMaps) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Close()
}

// Keep says that a dump UID up to uid that Renumber is not given names
// the same message in the target (a --replace under the same
// UIDVALIDITY); 0, the default, that none does (a merge, whose messages
// the target keeps are in its own seen state already, or another
// UIDVALIDITY).
func (m *UIDMap) Keep(uid uint32) { m.keep = uid }

// Renumber notes that the dump's message old is the target's new.
func (m *UIDMap) Renumber(old, new uint32) error {
	if m.done {
		return errors.New("UID map: the mailbox's numbering has ended")
	}
	if n := len(m.runs); n > 0 {
		r := &m.runs[n-1]
		if r.old+r.n == old && r.new+r.n == new {
			r.n++
			return nil
		}
		if n == maxMapRuns {
			if err := m.spill(); err != nil {
				return err
			}
		}
	}
	m.runs = append(m.runs, uidRun{old, new, 1})
	return nil
}

func putRun(b []byte, r uidRun) {
	binary.LittleEndian.PutUint32(b[0:], r.old)
	binary.LittleEndian.PutUint32(b[4:], r.new)
	binary.LittleEndian.PutUint32(b[8:], r.n)
}

// spill moves the runs held to the file, all but the last (which may
// still grow).
func (m *UIDMap) spill() error {
	if m.f == nil {
		f, err := guidtable.TempFile("", "mbtool-uidmap-*")
		if err != nil {
			return fmt.Errorf("UID map: %w", err)
		}
		m.f, m.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	var b [runSize]byte
	last := len(m.runs) - 1
	for _, r := range m.runs[:last] {
		putRun(b[:], r)
		if _, err := m.w.Write(b[:]); err != nil {
			return fmt.Errorf("UID map: %w", err)
		}
		m.nf++
	}
	m.runs = append(m.runs[:0], m.runs[last])
	return nil
}

// Finish ends the mailbox's numbering (Renumber is refused after it): a
// map of up to compactRuns runs keeps them in a slice of their size; a
// larger one made by UIDMaps.New moves them to its UIDMaps and releases
// its own file and buffer (one made otherwise keeps them). When it fails,
// the map is left as it was, still usable.
func (m *UIDMap) Finish() error {
	if m == nil || m.done {
		return nil
	}
	if m.nf == 0 && len(m.runs) <= compactRuns {
		m.runs, m.done = slices.Clip(slices.Clone(m.runs)), true
		return nil
	}
	if m.maps == nil {
		m.done = true
		return nil
	}
	if err := m.finishLarge(); err != nil {
		return fmt.Errorf("UID map: %w", err)
	}
	return nil
}

func (m *UIDMap) finishLarge() error {
	if m.w != nil {
		if err := m.w.Flush(); err != nil {
			return err
		}
	}
	s := m.maps
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.log.Size()
	w := s.log.Writer()
	var err error
	if m.nf > 0 {
		_, err = io.Copy(w, io.NewSectionReader(m.f, 0, m.nf*runSize))
	}
	var b [runSize]byte
	for _, r := range m.runs {
		if err != nil {
			break
		}
		putRun(b[:], r)
		_, err = w.Write(b[:])
	}
	if err != nil {
		return err // what was written stays unused in the file
	}
	m.at, m.na = at, m.nf+int64(len(m.runs))
	if m.f != nil {
		m.f.Close()
	}
	m.f, m.w, m.nf, m.runs, m.done = nil, nil, 0, nil, true
	return nil
}

// Renumbered reports whether any message got a new UID.
func (m *UIDMap) Renumbered() bool {
	return m != nil && (len(m.runs) > 0 || m.nf > 0 || m.na > 0)
}

// Close releases the map's file; the map is empty after it (its runs in
// a UIDMaps stay until that is closed).
func (m *UIDMap) Close() {
	if m == nil {
		return
	}
	if m.f != nil {
		m.f.Close()
	}
	*m = UIDMap{}
}

// each calls fn with every run, in ascending order of the dump's UID,
// until fn returns false.
func (m *UIDMap) each(fn func(uidRun) bool) error {
	read := func(br *bufio.Reader, n int64) (bool, error) {
		var b [runSize]byte
		for i := int64(0); i < n; i++ {
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return false, fmt.Errorf("UID map: %w", err)
			}
			r := uidRun{binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])}
			if !fn(r) {
				return false, nil
			}
		}
		return true, nil
	}
	if m.na > 0 {
		m.maps.mu.Lock()
		br, err := m.maps.log.Section(m.at, m.na*runSize)
		m.maps.mu.Unlock()
		if err != nil {
			return fmt.Errorf("UID map: %w", err)
		}
		if more, err := read(br, m.na); !more {
			return err
		}
	}
	if m.nf > 0 {
		if err := m.w.Flush(); err != nil {
			return fmt.Errorf("UID map: %w", err)
		}
		br := bufio.NewReaderSize(io.NewSectionReader(m.f, 0, m.nf*runSize), int(min(m.nf*runSize, 64<<10)))
		if more, err := read(br, m.nf); !more {
			return err
		}
	}
	for _, r := range m.runs {
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// Seen maps the seen set of a seen record (an IMAP sequence set of the
// dump's UIDs, "*" standing for lastUID as in Cyrus's seqset_parse) to
// the target's UIDs: a UID the map renumbered becomes its new one, one up
// to Keep that it did not keeps its number, any other is dropped (it
// names no message of the dump in the target). It returns the set in
// Cyrus's form ("1:5,9") and its largest UID (0 for an empty set).
func (m *UIDMap) Seen(set string, lastUID uint32) (string, uint32, error) {
	in, err := parseSeenSet(set, lastUID)
	if err != nil {
		return "", 0, err
	}
	var pending, out, moved []Range
	for _, r := range in {
		if f, l := r.First, min(r.Last, m.keep); f <= l {
			pending = append(pending, Range{f, l})
		}
	}
	// Runs and ranges both ascend: one pass over the runs, taking the
	// renumbered UIDs out of what keeps its number (pending, consumed
	// from its start into out) and mapping them.
	i := 0
	err = m.each(func(run uidRun) bool {
		end := run.old + (run.n - 1)
		for i < len(in) && in[i].Last < run.old {
			i++
		}
		for j := i; j < len(in) && in[j].First <= end; j++ {
			f, l := max(in[j].First, run.old), min(in[j].Last, end)
			if f <= l {
				moved = append(moved, Range{run.new + (f - run.old), run.new + (l - run.old)})
			}
		}
		// Take [run.old, end] out of pending.
		for len(pending) > 0 && pending[0].First <= end {
			p := &pending[0]
			if p.Last < run.old {
				out = append(out, *p)
				pending = pending[1:]
				continue
			}
			if p.First < run.old {
				out = append(out, Range{p.First, run.old - 1})
			}
			if p.Last > end {
				p.First = end + 1
				break
			}
			pending = pending[1:]
		}
		return true
	})
	if err != nil {
		return "", 0, err
	}
	out = normalize(append(append(out, pending...), moved...))
	if len(out) == 0 {
		return "", 0, nil
	}
	return FormatSet(out), out[len(out)-1].Last, nil
}

// SeenRecord maps s (a record of the dump, of this mailbox) with Seen:
// its seen set, and its LASTUID (the user's \Recent low mark, Cyrus's
// seendata.lastuid) kept where it stays meaningful and raised to the
// largest UID the user has seen.
func (m *UIDMap) SeenRecord(s *syncrec.Seen) error {
	set, top, err := m.Seen(s.SeenUIDs, s.LastUID)
	if err != nil {
		return fmt.Errorf("seen record of %s for %s: %w", s.UserID, s.UniqueID, err)
	}
	s.SeenUIDs, s.LastUID = set, max(min(s.LastUID, m.keep), top)
	return nil
}

// MergeSeen makes s, a record of the dump mapped by SeenRecord, the one
// to write over cur, the user's record of the mailbox a merge added to:
// cur's, with the messages s has seen added (a merge removes nothing);
// cur's LASTREAD, LASTUID and LASTCHANGE stay (the appended messages are
// new mail to the user, \Recent above LASTUID).
func MergeSeen(s, cur *syncrec.Seen) error {
	a, err := parseSeenSet(cur.SeenUIDs, cur.LastUID)
	if err != nil {
		return err
	}
	b, err := parseSeenSet(s.SeenUIDs, s.LastUID)
	if err != nil {
		return err
	}
	s.SeenUIDs = FormatSet(normalize(append(a, b...)))
	s.LastRead, s.LastUID, s.LastChange = cur.LastRead, cur.LastUID, cur.LastChange
	return nil
}

// SeenRule is how a seen record of the dump meets the record the user
// has now of the same mailbox in the target (docs/restore.md, "Other
// users' seen state"): what the user has now is lost only where the
// restore replaced the mailbox's messages wholesale.
type SeenRule int

// Seen rules.
const (
	// SeenIfNone: the dump's record is written only where the user has
	// none; a record the user has (even one that cannot be parsed) stays
	// as it is. A mailbox kept as it is, and one outside the dump.
	SeenIfNone SeenRule = iota
	// SeenOver: the dump's record, mapped, is written over the user's. A
	// mailbox the restore created or replaced, and with --replace one
	// outside the dump.
	SeenOver
	// SeenMerge: the dump's record, mapped, is added to the user's
	// (MergeSeen). A mailbox merged into.
	SeenMerge
)

// SeenRuleFor returns the rule for the seen records of a mailbox that a
// restore dealt with as a (result.Create, Replace, Keep or Merge; "" for
// a mailbox outside the dump), replace being --replace: the one decision
// of restore and restore --server.
func SeenRuleFor(a result.Action, replace bool) SeenRule {
	switch a {
	case result.Merge:
		return SeenMerge
	case result.Create, result.Replace:
		return SeenOver
	case "":
		if replace {
			return SeenOver
		}
	}
	return SeenIfNone
}

// MapSeen makes s, a seen record of the dump, the record to write to the
// user's seen state by rule, and reports whether to write it, the one
// rule of restore and restore --server: its seen set names the messages
// by the UIDs m gave them in the target (SeenRecord; m nil: none
// renumbered), and cur reads the user's current record (has false: the
// user has none; has true with an error: one that cannot be parsed).
// SeenOver writes it over the user's; SeenMerge adds it to the user's
// (MergeSeen), and a merge that appended nothing has nothing of the
// dump's to add (false); SeenIfNone writes it only where the user has
// none. An error concerns this one record only (the user's current record
// unreadable, refused by the server or not parsable, and left as it is):
// the caller reports it as a problem of the mailbox and goes on with the
// user's other records, subscriptions, quotas and annotations.
func MapSeen(rule SeenRule, m *UIDMap, s *syncrec.Seen, cur func() (*syncrec.Seen, bool, error)) (bool, error) {
	if rule == SeenMerge && !m.Renumbered() {
		return false, nil
	}
	if m != nil {
		if err := m.SeenRecord(s); err != nil {
			return false, err
		}
	}
	if rule == SeenOver {
		return true, nil
	}
	c, has, err := cur()
	switch {
	case rule == SeenIfNone && has:
		return false, nil
	case err == nil && has:
		err = MergeSeen(s, c)
	}
	if err != nil {
		return false, fmt.Errorf("seen record of %s for %s: the user's current record: %w (left as it is)", s.UserID, s.UniqueID, err)
	}
	return true, nil
}

// parseSeenSet parses a seen set as Cyrus's seqset_parse does with the
// record's lastuid as "*": "" is the empty set, and UID 0 stands for no
// message (a range ending at 0 is dropped, one starting there begins at 1).
func parseSeenSet(set string, lastUID uint32) ([]Range, error) {
	if set == "" {
		return nil, nil
	}
	rs, err := parseSet(set, lastUID, true)
	if err != nil {
		return nil, fmt.Errorf("seen set %q: %w", set, err)
	}
	out := rs[:0]
	for _, r := range rs {
		if r.Last > 0 {
			out = append(out, Range{max(r.First, 1), r.Last})
		}
	}
	return normalize(out), nil
}

// normalize sorts ranges and joins those that overlap or touch.
func normalize(rs []Range) []Range {
	sort.Slice(rs, func(i, j int) bool { return rs[i].First < rs[j].First })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (r.First <= out[n-1].Last || r.First-1 == out[n-1].Last) {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// FormatSet writes ascending ranges as a sequence set, "1:5,9".
func FormatSet(rs []Range) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(r.First), 10))
		if r.Last != r.First {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(r.Last), 10))
		}
	}
	return b.String()
}
