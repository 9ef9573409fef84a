package cyruslab

import (
	"fmt"
	"strings"
	"time"
)

// Message is what UID FETCH returned for one message. Fields not fetched
// keep their zero value; every item is also in Items.
type Message struct {
	Seq          uint32
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Size         int64  // RFC822.SIZE
	ModSeq       uint64 // MODSEQ (CONDSTORE)
	Body         []byte // BODY[] (also from BODY.PEEK[]) or RFC822
	Digest       string // DIGEST.SHA1: for Cyrus, the message GUID in hex
	// Items holds every fetched item by its upper-case name as the server
	// sent it ("BODY[]", "ANNOTATION", "ENVELOPE", ...).
	Items map[string]Field
}

// HasFlag reports whether m carries flag (compared case-insensitively).
func (m *Message) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// Annotation returns the value of a fetched per-message annotation, e.g.
// Annotation("/comment", "value.shared") after fetching
// `ANNOTATION (/comment (value.shared value.priv))`.
func (m *Message) Annotation(entry, attr string) (string, bool) {
	f, ok := m.Items["ANNOTATION"]
	if !ok || f.Kind != List {
		return "", false
	}
	for i := 0; i+1 < len(f.List); i += 2 {
		if f.List[i].Text != entry || f.List[i+1].Kind != List {
			continue
		}
		kv := f.List[i+1].List
		for j := 0; j+1 < len(kv); j += 2 {
			if strings.EqualFold(kv[j].Text, attr) && kv[j+1].Kind != Nil {
				return kv[j+1].Text, true
			}
		}
	}
	return "", false
}

// UIDFetch runs "UID FETCH set items" on the selected mailbox and returns
// the messages in the order the server reported them. items is an IMAP
// fetch list such as "(FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[])"
// or a single item; UID is always included.
func (c *IMAPClient) UIDFetch(set, items string) ([]Message, error) {
	if !strings.HasPrefix(items, "(") {
		items = "(" + items + ")"
	}
	r, err := c.Command("UID", "FETCH", set, items)
	if err != nil {
		return nil, err
	}
	var out []Message
	bySeq := map[uint32]int{}
	for _, d := range r.Data {
		if d.Name != "FETCH" || len(d.Fields) != 1 || d.Fields[0].Kind != List {
			continue
		}
		i, ok := bySeq[d.Num]
		if !ok {
			i = len(out)
			bySeq[d.Num] = i
			out = append(out, Message{Seq: d.Num, Items: map[string]Field{}})
		}
		if err := out[i].merge(d.Fields[0].List); err != nil {
			return nil, fmt.Errorf("cyruslab: imap UID FETCH %s, message %d: %w", set, d.Num, err)
		}
	}
	// Unsolicited FETCH responses (flag updates without a UID) are not
	// answers to this command.
	kept := out[:0]
	for _, m := range out {
		if m.UID != 0 {
			kept = append(kept, m)
		}
	}
	return kept, nil
}

// merge takes the name/value pairs of one FETCH response.
func (m *Message) merge(kv []Field) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("%w: odd FETCH item list", ErrProtocol)
	}
	for i := 0; i < len(kv); i += 2 {
		name, v := strings.ToUpper(kv[i].Text), kv[i+1]
		m.Items[name] = v
		var err error
		switch {
		case name == "UID":
			var n uint64
			n, err = v.Number()
			m.UID = uint32(n)
		case name == "FLAGS":
			m.Flags = texts(v.List)
		case name == "INTERNALDATE":
			m.InternalDate, err = time.Parse(internalDateLayout, v.Text)
		case name == "RFC822.SIZE":
			var n uint64
			n, err = v.Number()
			m.Size = int64(n)
		case name == "MODSEQ":
			if v.Kind != List || len(v.List) != 1 {
				return fmt.Errorf("%w: MODSEQ %s", ErrProtocol, v)
			}
			m.ModSeq, err = v.List[0].Number()
		case name == "BODY[]" || name == "RFC822":
			m.Body = []byte(v.Text)
		case name == "DIGEST.SHA1":
			m.Digest = v.Text
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
