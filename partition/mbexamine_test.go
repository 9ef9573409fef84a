package partition

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// examined is what Cyrus's mbexamine prints about one mailbox
// (imap/mbexamine.c do_examine). mbexamine lists only records that are not
// expunged.
type examined struct {
	Path, ACL, UniqueID string
	UserFlags           []string
	Version             uint32
	Exists              uint32
	Used                uint64
	UIDValidity         uint32
	LastUID             uint32
	Deleted, Answered   uint32
	Flagged             uint32
	Options             string
	HighestModseq       uint64
	Records             []examinedRecord
}

type examinedRecord struct {
	UID, InternalDate, SentDate, SaveDate, Size uint32
	HeaderSize, LastUpdated, SysFlags           uint32
	GUID                                        string
	Modseq                                      uint64
	CID                                         uint64
	Internal                                    []string
	UserFlags                                   [4]uint32
}

// parseMbexamine parses the output of `mbexamine NAME...`, one examined
// per "Examining" block, keyed by the name printed.
func parseMbexamine(out string) (map[string]*examined, error) {
	res := make(map[string]*examined)
	var cur *examined
	var rec *examinedRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		fail := func(err error) error { return fmt.Errorf("mbexamine line %d %q: %v", n, line, err) }
		switch {
		case strings.HasPrefix(line, "Examining "):
			name, _, ok := strings.Cut(strings.TrimPrefix(line, "Examining "), "... Mailbox Header Info:")
			if !ok {
				return nil, fail(fmt.Errorf("no header"))
			}
			cur = &examined{}
			res[name] = cur
			rec = nil
		case cur == nil:
		case strings.HasPrefix(line, "  Path to mailbox: "):
			cur.Path = strings.TrimPrefix(line, "  Path to mailbox: ")
		case strings.HasPrefix(line, "  Mailbox ACL: "):
			cur.ACL = strings.TrimPrefix(line, "  Mailbox ACL: ")
		case strings.HasPrefix(line, "  Unique ID: "):
			cur.UniqueID = strings.TrimPrefix(line, "  Unique ID: ")
		case strings.HasPrefix(line, "  User Flags: "):
			f := strings.TrimPrefix(line, "  User Flags: ")
			if f != "[none]" {
				// mbexamine prints the named slots only, each followed
				// by a space.
				cur.UserFlags = strings.Fields(f)
			}
		case strings.HasPrefix(line, "  Minor Version: "):
			if _, err := fmt.Sscanf(line, "  Minor Version: %d", &cur.Version); err != nil {
				return nil, fail(err)
			}
		case strings.HasPrefix(line, "  Number of Messages: "):
			if _, err := fmt.Sscanf(line, "  Number of Messages: %d  Mailbox Size: %d", &cur.Exists, &cur.Used); err != nil {
				return nil, fail(err)
			}
		case strings.HasPrefix(line, "  UIDValidity: "):
			if _, err := fmt.Sscanf(line, "  UIDValidity: %d  Last UID: %d", &cur.UIDValidity, &cur.LastUID); err != nil {
				return nil, fail(err)
			}
		case strings.HasPrefix(line, "  Deleted: "):
			if _, err := fmt.Sscanf(line, "  Deleted: %d  Answered: %d  Flagged: %d", &cur.Deleted, &cur.Answered, &cur.Flagged); err != nil {
				return nil, fail(err)
			}
		case strings.HasPrefix(line, "  Mailbox Options:"):
			cur.Options = strings.TrimSpace(strings.TrimPrefix(line, "  Mailbox Options:"))
		case strings.HasPrefix(line, "  Highest Mod Sequence: "):
			if _, err := fmt.Sscanf(line, "  Highest Mod Sequence: %d", &cur.HighestModseq); err != nil {
				return nil, fail(err)
			}
		case len(line) > 7 && line[6] == '>' && strings.Contains(line, "> UID:"):
			cur.Records = append(cur.Records, examinedRecord{})
			rec = &cur.Records[len(cur.Records)-1]
			if _, err := fmt.Sscanf(line[7:], " UID:%d   INT_DATE:%d SENTDATE:%d SAVEDATE:%d SIZE:%d",
				&rec.UID, &rec.InternalDate, &rec.SentDate, &rec.SaveDate, &rec.Size); err != nil {
				return nil, fail(err)
			}
		case rec != nil && strings.HasPrefix(line, "      > HDRSIZE:"):
			var cid string
			if _, err := fmt.Sscanf(line, "      > HDRSIZE:%d LASTUPD :%d SYSFLAGS:%X      > CACHEVER:%d GUID:%s MODSEQ:%d  THRID: %s",
				&rec.HeaderSize, &rec.LastUpdated, &rec.SysFlags, new(int), &rec.GUID, &rec.Modseq, &cid); err != nil {
				return nil, fail(err)
			}
			v, err := strconv.ParseUint(cid, 16, 64)
			if err != nil {
				return nil, fail(err)
			}
			rec.CID = v
		case rec != nil && strings.HasPrefix(line, "      > INTERNALFLAGS:"):
			f, _, _ := strings.Cut(strings.TrimPrefix(line, "      > INTERNALFLAGS:"), ">")
			rec.Internal = strings.Fields(strings.TrimSuffix(strings.TrimSpace(f), "      "))
		case rec != nil && strings.HasPrefix(line, "      > USERFLAGS:"):
			var w [4]uint32
			if _, err := fmt.Sscanf(line, "      > USERFLAGS: %X %X %X %X", &w[3], &w[2], &w[1], &w[0]); err != nil {
				return nil, fail(err)
			}
			rec.UserFlags = w
		}
	}
	return res, sc.Err()
}

// optionNames renders index options as mbexamine does.
func optionNames(o uint32) string {
	if o == 0 {
		return "NONE"
	}
	var s []string
	for _, x := range []struct {
		bit  uint32
		name string
	}{{OptPOP3NewUIDL, "POP3_NEW_UIDL"}, {OptSharedSeen, "IMAP_SHAREDSEEN"},
		{OptDupDeliver, "IMAP_DUPDELIVER"}, {OptHasAlarms, "IMAP_HAS_ALARMS"}} {
		if o&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	return strings.Join(s, " ")
}

func internalNames(f uint32) []string {
	var s []string
	for _, x := range []struct {
		bit  uint32
		name string
	}{{InternalExpunged, "FLAG_INTERNAL_EXPUNGED"}, {InternalUnlinked, "FLAG_INTERNAL_UNLINKED"},
		{InternalArchived, "FLAG_INTERNAL_ARCHIVED"}, {InternalNeedsCleanup, "FLAG_INTERNAL_NEEDS_CLEANUP"},
		{InternalSnoozed, "FLAG_INTERNAL_SNOOZED"}} {
		if f&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	return s
}

// compareExamined checks an opened mailbox against mbexamine's view.
func compareExamined(t *testing.T, m *Mailbox, x *examined) {
	t.Helper()
	name := m.Entry.Name
	h := m.Index
	if x.Path != m.DataDir {
		t.Errorf("%s: data dir %s, mbexamine %s", name, m.DataDir, x.Path)
	}
	if x.UniqueID != m.Entry.UniqueID || x.UniqueID != m.Header.UniqueID {
		t.Errorf("%s: uniqueid %s / %s, mbexamine %s", name, m.Entry.UniqueID, m.Header.UniqueID, x.UniqueID)
	}
	if got := FormatACL(m.Header.ACL); got != x.ACL {
		t.Errorf("%s: header ACL %q, mbexamine %q", name, got, x.ACL)
	}
	if got := FormatACL(m.Entry.ACL); got != x.ACL {
		t.Errorf("%s: mailboxes.db ACL %q, mbexamine %q", name, got, x.ACL)
	}
	var named []string
	for _, f := range m.Header.UserFlags {
		if f != "" {
			named = append(named, f)
		}
	}
	if strings.Join(named, " ") != strings.Join(x.UserFlags, " ") {
		t.Errorf("%s: user flags %q, mbexamine %q", name, named, x.UserFlags)
	}
	if h.MinorVersion != x.Version || h.Exists != x.Exists || h.QuotaMailboxUsed != x.Used ||
		h.UIDValidity != x.UIDValidity || h.LastUID != x.LastUID || h.Deleted != x.Deleted ||
		h.Answered != x.Answered || h.Flagged != x.Flagged || h.HighestModseq != x.HighestModseq ||
		optionNames(h.Options) != x.Options {
		t.Errorf("%s: index header %+v (options %s), mbexamine %+v", name, h, optionNames(h.Options), x)
	}
	if h.UIDValidity != m.Entry.UIDValidity {
		t.Errorf("%s: index uidvalidity %d, mailboxes.db %d", name, h.UIDValidity, m.Entry.UIDValidity)
	}
	var got []examinedRecord
	err := m.Records(func(r Record) error {
		if r.Expunged() {
			return nil
		}
		got = append(got, examinedRecord{UID: r.UID, InternalDate: r.InternalDate, SentDate: r.SentDate,
			SaveDate: r.SaveDate, Size: r.Size, HeaderSize: r.HeaderSize, LastUpdated: r.LastUpdated,
			SysFlags: r.SystemFlags & 0xffff, GUID: r.GUID.String(), Modseq: r.Modseq, CID: r.CID,
			Internal: internalNames(r.SystemFlags), UserFlags: r.UserFlags})
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(got) != len(x.Records) {
		t.Fatalf("%s: %d live records, mbexamine %d", name, len(got), len(x.Records))
	}
	for i := range got {
		if fmt.Sprint(got[i]) != fmt.Sprint(x.Records[i]) {
			t.Errorf("%s: record %d\n got %+v\nwant %+v", name, i, got[i], x.Records[i])
		}
	}
}

// checkSpoolWithMbexamine opens every mailbox of s and compares it with
// examine(names...), Cyrus's own view, after checking that reading changed
// no byte under dirs. The mailboxes stay open (shared name locks, which
// mbexamine's own shared locks do not conflict with) until the test ends.
func checkSpoolWithMbexamine(t *testing.T, s *Spool, examine func(names ...string) string, dirs ...string) []Entry {
	t.Helper()
	before := digestTrees(t, dirs...)
	entries, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no mailboxes")
	}
	var opened []*Mailbox
	for _, e := range entries {
		m, err := s.OpenMailbox(context.Background(), e)
		if err != nil {
			t.Fatalf("open %s: %v", e.Name, err)
		}
		defer m.Close()
		opened = append(opened, m)
		if err := m.Records(func(Record) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	after := digestTrees(t, dirs...)
	diffDigests(t, before, after)

	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	ex, err := parseMbexamine(examine(names...))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range opened {
		x, ok := ex[m.Entry.Name]
		if !ok {
			t.Errorf("mbexamine did not print %s", m.Entry.Name)
			continue
		}
		compareExamined(t, m, x)
	}
	return entries
}
