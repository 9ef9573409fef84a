package cyruslab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// internalDateLayout is IMAP's date-time (RFC 3501 date-time).
const internalDateLayout = "_2-Jan-2006 15:04:05 -0700"

// Mailbox is what SELECT or EXAMINE reports about a mailbox.
type Mailbox struct {
	Name           string
	ReadOnly       bool
	Exists         uint32
	UIDValidity    uint32
	UIDNext        uint32
	HighestModSeq  uint64
	Flags          []string
	PermanentFlags []string
}

// Select opens mailbox read-write (with CONDSTORE when offered).
func (c *IMAPClient) Select(mailbox string) (*Mailbox, error) {
	return c.open("SELECT", mailbox)
}

// Examine opens mailbox read-only: it changes no flags (not even \Recent).
func (c *IMAPClient) Examine(mailbox string) (*Mailbox, error) {
	return c.open("EXAMINE", mailbox)
}

func (c *IMAPClient) open(verb, mailbox string) (*Mailbox, error) {
	args := []any{verb, Quote(mailbox)}
	if c.Caps["CONDSTORE"] {
		args = append(args, "(CONDSTORE)")
	}
	r, err := c.Command(args...)
	if err != nil {
		return nil, err
	}
	m := &Mailbox{Name: mailbox, ReadOnly: strings.HasPrefix(r.Code, "READ-ONLY")}
	for _, d := range r.Data {
		switch d.Name {
		case "EXISTS":
			m.Exists = d.Num
		case "FLAGS":
			if len(d.Fields) == 1 {
				m.Flags = texts(d.Fields[0].List)
			}
		case "OK":
			code := strings.Fields(d.Code)
			if len(code) < 2 {
				continue
			}
			switch strings.ToUpper(code[0]) {
			case "UIDVALIDITY":
				n, _ := strconv.ParseUint(code[1], 10, 32)
				m.UIDValidity = uint32(n)
			case "UIDNEXT":
				n, _ := strconv.ParseUint(code[1], 10, 32)
				m.UIDNext = uint32(n)
			case "HIGHESTMODSEQ":
				m.HighestModSeq, _ = strconv.ParseUint(code[1], 10, 64)
			case "PERMANENTFLAGS":
				rest := strings.TrimSpace(d.Code[len(code[0]):])
				m.PermanentFlags = strings.Fields(strings.Trim(rest, "()"))
			}
		}
	}
	return m, nil
}

func texts(fs []Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Text
	}
	return out
}

// Create creates a mailbox.
func (c *IMAPClient) Create(mailbox string) error {
	_, err := c.Command("CREATE", Quote(mailbox))
	return err
}

// Subscribe subscribes to a mailbox.
func (c *IMAPClient) Subscribe(mailbox string) error {
	_, err := c.Command("SUBSCRIBE", Quote(mailbox))
	return err
}

// SetACL grants rights (such as "lrswi") on mailbox to identifier.
func (c *IMAPClient) SetACL(mailbox, identifier, rights string) error {
	_, err := c.Command("SETACL", Quote(mailbox), Quote(identifier), Quote(rights))
	return err
}

// SetQuota sets the limits of a quota root, e.g. "STORAGE 512000".
func (c *IMAPClient) SetQuota(root, limits string) error {
	_, err := c.Command("SETQUOTA", Quote(root), "("+limits+")")
	return err
}

// SetMetadata sets one mailbox annotation (RFC 5464), e.g. entry
// "/shared/comment". An empty mailbox sets a server annotation.
func (c *IMAPClient) SetMetadata(mailbox, entry, value string) error {
	_, err := c.Command("SETMETADATA", Quote(mailbox), "("+Quote(entry)+" "+Quote(value)+")")
	return err
}

// GetMetadata returns the values of entries of mailbox; entries without a
// value are left out.
func (c *IMAPClient) GetMetadata(mailbox string, entries ...string) (map[string]string, error) {
	q := make([]string, len(entries))
	for i, e := range entries {
		q[i] = Quote(e)
	}
	r, err := c.Command("GETMETADATA", Quote(mailbox), "("+strings.Join(q, " ")+")")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range r.Data {
		if d.Name != "METADATA" || len(d.Fields) != 2 || d.Fields[1].Kind != List {
			continue
		}
		kv := d.Fields[1].List
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1].Kind != Nil {
				out[kv[i].Text] = kv[i+1].Text
			}
		}
	}
	return out, nil
}

// Append appends msg to mailbox with flags (such as `\Seen`) and the
// internal date date (the zero time for "now"), and returns the UID it got
// (0 if the server does not report APPENDUID).
func (c *IMAPClient) Append(mailbox string, flags []string, date time.Time, msg []byte) (uint32, error) {
	args := []any{"APPEND", Quote(mailbox)}
	if len(flags) > 0 {
		args = append(args, "("+strings.Join(flags, " ")+")")
	}
	if !date.IsZero() {
		args = append(args, Quote(date.Format(internalDateLayout)))
	}
	r, err := c.Command(append(args, Literal(msg))...)
	if err != nil {
		return 0, err
	}
	if w := strings.Fields(r.Code); len(w) == 3 && strings.EqualFold(w[0], "APPENDUID") {
		n, _ := strconv.ParseUint(w[2], 10, 32)
		return uint32(n), nil
	}
	return 0, nil
}

// UIDStore runs "UID STORE set item value", e.g. UIDStore("4:6", "+FLAGS",
// `(\Answered)`) or UIDStore("3", "ANNOTATION", `(/comment (value.shared
// "note"))`).
func (c *IMAPClient) UIDStore(set, item, value string) error {
	_, err := c.Command("UID", "STORE", set, item, value)
	return err
}

// UIDCopy copies the messages set of the selected mailbox to mailbox.
func (c *IMAPClient) UIDCopy(set, mailbox string) error {
	_, err := c.Command("UID", "COPY", set, Quote(mailbox))
	return err
}

// UIDExpunge expunges those of set that are \Deleted (UIDPLUS).
func (c *IMAPClient) UIDExpunge(set string) error {
	_, err := c.Command("UID", "EXPUNGE", set)
	return err
}

// ListEntry is one LIST response.
type ListEntry struct {
	Attrs []string // such as \HasNoChildren
	Delim string
	Name  string
}

// List runs LIST ref pattern.
func (c *IMAPClient) List(ref, pattern string) ([]ListEntry, error) {
	r, err := c.Command("LIST", Quote(ref), Quote(pattern))
	if err != nil {
		return nil, err
	}
	var out []ListEntry
	for _, d := range r.Data {
		if d.Name != "LIST" || len(d.Fields) != 3 {
			continue
		}
		out = append(out, ListEntry{Attrs: texts(d.Fields[0].List), Delim: d.Fields[1].Text, Name: d.Fields[2].Text})
	}
	return out, nil
}

// Status returns the numeric STATUS items (MESSAGES, UIDNEXT, UIDVALIDITY,
// UNSEEN, HIGHESTMODSEQ, ...) of mailbox.
func (c *IMAPClient) Status(mailbox string, items ...string) (map[string]uint64, error) {
	r, err := c.Command("STATUS", Quote(mailbox), "("+strings.Join(items, " ")+")")
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, d := range r.Data {
		if d.Name != "STATUS" || len(d.Fields) != 2 {
			continue
		}
		kv := d.Fields[1].List
		for i := 0; i+1 < len(kv); i += 2 {
			n, err := kv[i+1].Number()
			if err != nil {
				return nil, fmt.Errorf("cyruslab: imap STATUS %s: %w", mailbox, err)
			}
			out[strings.ToUpper(kv[i].Text)] = n
		}
	}
	return out, nil
}
