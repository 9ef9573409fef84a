// Package msgsel selects the messages of a dumped mailbox that a restore
// brings back: by UID range, GUID, Message-ID and INTERNALDATE range. The
// offline restore (package restore) and `restore --server` (package
// remote) select with the same Filter, so that both restore the same
// messages of the same dump; for an additive restore (--undelete) both
// also take from here which targets a merge refuses and which records it
// brings back (merge.go), and how it numbers them (Appender).
package msgsel

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/msghdr"
	"github.com/mbtool/mbtool/syncrec"
)

// ErrSyntax reports a selector that cannot be parsed.
var ErrSyntax = errors.New("bad message selector")

// Range is an inclusive UID range.
type Range struct{ First, Last uint32 }

// Filter selects messages. A record is selected when it matches every
// kind of selector that is set (UIDs, GUIDs, Message-IDs, dates), and
// within a kind any of its values. The zero Filter selects every message.
type Filter struct {
	UIDs       []Range
	GUIDs      map[guid.GUID]bool
	MessageIDs map[string]bool // normalised: see NormalizeMessageID
	// Since and Before bound the INTERNALDATE: Since <= date < Before;
	// zero values do not bound.
	Since, Before time.Time
}

// Empty reports whether f selects every message.
func (f *Filter) Empty() bool {
	return f == nil || (len(f.UIDs) == 0 && len(f.GUIDs) == 0 && len(f.MessageIDs) == 0 &&
		f.Since.IsZero() && f.Before.IsZero())
}

// NeedsHeader reports whether Match needs the message's Message-ID.
func (f *Filter) NeedsHeader() bool { return f != nil && len(f.MessageIDs) > 0 }

// Match reports whether r is selected; messageID is called only when a
// Message-ID selector is set, and returns the message's Message-ID header
// ("" when it has none).
func (f *Filter) Match(r *syncrec.Record, messageID func() (string, error)) (bool, error) {
	if f.Empty() {
		return true, nil
	}
	if len(f.UIDs) > 0 {
		in := false
		for _, u := range f.UIDs {
			if r.UID >= u.First && r.UID <= u.Last {
				in = true
				break
			}
		}
		if !in {
			return false, nil
		}
	}
	if len(f.GUIDs) > 0 && !f.GUIDs[r.GUID] {
		return false, nil
	}
	if !f.Since.IsZero() && r.InternalDate < f.Since.Unix() {
		return false, nil
	}
	if !f.Before.IsZero() && r.InternalDate >= f.Before.Unix() {
		return false, nil
	}
	if len(f.MessageIDs) > 0 {
		id, err := messageID()
		if err != nil {
			return false, err
		}
		if id == "" || !f.MessageIDs[NormalizeMessageID(id)] {
			return false, nil
		}
	}
	return true, nil
}

// String describes f for a report ("UIDs 1:40, since 2026-01-02").
func (f *Filter) String() string {
	if f.Empty() {
		return "all messages"
	}
	var parts []string
	if len(f.UIDs) > 0 {
		var us []string
		for _, u := range f.UIDs {
			if u.First == u.Last {
				us = append(us, strconv.FormatUint(uint64(u.First), 10))
			} else {
				us = append(us, fmt.Sprintf("%d:%d", u.First, u.Last))
			}
		}
		parts = append(parts, "UIDs "+strings.Join(us, ","))
	}
	if n := len(f.GUIDs); n > 0 {
		parts = append(parts, fmt.Sprintf("%d GUIDs", n))
	}
	if n := len(f.MessageIDs); n > 0 {
		parts = append(parts, fmt.Sprintf("%d Message-IDs", n))
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Before.IsZero() {
		parts = append(parts, "before "+f.Before.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}

// ParseUIDs parses an IMAP sequence set of UIDs ("1:40,55,60:*"); "*"
// stands for the largest UID.
func ParseUIDs(s string) ([]Range, error) {
	rs, err := parseSet(s, 1<<32-1, false)
	if err != nil {
		return nil, fmt.Errorf("%w: UIDs %q: %w", ErrSyntax, s, err)
	}
	return rs, nil
}

// parseSet is the one parser of an IMAP sequence set of UIDs, for
// selectors and seen sets alike: "*" is star, a range may be written
// either way round, and 0 is a UID only where zero allows it.
func parseSet(s string, star uint32, zero bool) ([]Range, error) {
	var out []Range
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), ":")
		first, err := parseUID(a, star, zero)
		if err != nil {
			return nil, err
		}
		last := first
		if isRange {
			if last, err = parseUID(b, star, zero); err != nil {
				return nil, err
			}
		}
		if last < first {
			first, last = last, first
		}
		out = append(out, Range{first, last})
	}
	return out, nil
}

func parseUID(s string, star uint32, zero bool) (uint32, error) {
	if s == "*" {
		return star, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 && !zero {
		return 0, fmt.Errorf("%q is not a UID", s)
	}
	return uint32(n), nil
}

// ParseGUID parses a GUID in hex (40 digits).
func ParseGUID(s string) (guid.GUID, error) {
	g, err := guid.Parse(strings.TrimSpace(s))
	if err != nil {
		return g, fmt.Errorf("%w: GUID %q: %w", ErrSyntax, s, err)
	}
	return g, nil
}

// ParseDate parses a date for Since or Before: RFC 3339
// ("2026-01-02T15:04:05Z"), or a day ("2026-01-02", midnight UTC).
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: date %q: use 2006-01-02 or 2006-01-02T15:04:05Z", ErrSyntax, s)
}

// NormalizeMessageID returns the comparable form of a Message-ID: without
// surrounding white space and angle brackets.
func NormalizeMessageID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	return strings.TrimSpace(s)
}

// maxHeaderBytes bounds what MessageID reads of a message.
const maxHeaderBytes = 1 << 20

// MessageID returns the value of the first Message-ID header of the
// message read from r, unfolded ("" when there is none), as package
// msghdr reads header fields (for `mbtool list` too). It reads at most
// the header, and never more than maxHeaderBytes.
func MessageID(r io.Reader) (string, error) {
	head, err := msghdr.Read(r, maxHeaderBytes)
	if err != nil {
		return "", err
	}
	return msghdr.Fields(head, "message-id")[0], nil
}
