package remote

import (
	"fmt"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

// mailboxReader reads the value of an APPLY MAILBOX line, the mailbox
// keys first and then one RECORD at a time, so that a mailbox of any size
// streams from the dump to the server.
type mailboxReader struct {
	r       *dlist.Reader
	mb      *syncrec.Mailbox
	records bool // inside the RECORD list
	done    bool
}

// openMailbox reads the opening of the value and every key before RECORD.
// Cyrus and mbtool write RECORD last; a key after it is refused, because
// the mailbox keys must all be known before the first record is sent.
func openMailbox(r *dlist.Reader) (*mailboxReader, error) {
	t, err := r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.KVList {
		return nil, fmt.Errorf("%w: offset %d: APPLY MAILBOX value is a %v, not %%(", ErrDamaged, t.Offset, t.Kind)
	}
	keys := dlist.NewKVList()
	keys.Offset = t.Offset
	m := &mailboxReader{r: r}
	for {
		kt, err := r.Next()
		if err != nil {
			return nil, err
		}
		if kt.Kind == dlist.End {
			m.done = true
			break
		}
		if kt.Kind != dlist.Atom {
			return nil, fmt.Errorf("%w: offset %d: expected a key, found %v", ErrDamaged, kt.Offset, kt.Kind)
		}
		key := string(kt.Bytes)
		if key == "RECORD" {
			lt, err := r.Next()
			if err != nil {
				return nil, err
			}
			if lt.Kind != dlist.List {
				return nil, fmt.Errorf("%w: offset %d: RECORD is not a list", ErrDamaged, lt.Offset)
			}
			m.records = true
			break
		}
		v, err := r.ReadValue()
		if err != nil {
			return nil, err
		}
		keys.Add(key, v)
	}
	m.mb, err = syncrec.DecodeMailbox(keys)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// next returns the next record, or nil after the last one (having read
// the closing parenthesis of the value).
func (m *mailboxReader) next() (*syncrec.Record, error) {
	if m.done {
		return nil, nil
	}
	t, err := m.r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.End {
		return syncrec.ReadRecord(m.r, t)
	}
	// End of RECORD: the value must close right after it.
	m.done = true
	t, err = m.r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.End {
		return nil, fmt.Errorf("%w: offset %d: key after RECORD", ErrDamaged, t.Offset)
	}
	return nil, nil
}

// item is one record of a mailbox as the first pass saw it: what the
// second pass must find again, and what the server must have.
type item struct {
	guid     guid.GUID
	expunged bool
	inDump   bool // the dump holds the file, before this mailbox
}

// recordChecker validates the records of one mailbox against what
// sync_server asserts or aborts on (sync_support.c sync_apply_mailbox,
// mailbox.c mailbox_append_index_record): UIDs from 1, ascending, not past
// LAST_UID; a SIZE; a GUID; flags it can read; at most 128 user flags.
type recordChecker struct {
	name    string
	lastUID uint32
	prev    uint32
	flags   map[string]bool
}

func newRecordChecker(mb *syncrec.Mailbox) *recordChecker {
	return &recordChecker{name: mb.Name, lastUID: mb.LastUID, flags: make(map[string]bool)}
}

func (c *recordChecker) check(r *syncrec.Record) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: mailbox %s UID %d: %s", ErrDamaged, c.name, r.UID, fmt.Sprintf(format, args...))
	}
	switch {
	case r.UID == 0:
		return bad("UID 0")
	case r.UID <= c.prev:
		return bad("after UID %d (records must ascend)", c.prev)
	case r.UID > c.lastUID:
		return bad("above the mailbox's LAST_UID %d", c.lastUID)
	case r.Size == 0:
		return bad("SIZE 0")
	case r.GUID.IsNull():
		return bad("null GUID")
	}
	c.prev = r.UID
	for _, f := range r.Flags {
		if err := dumpcheck.CheckFlag(f); err != nil {
			return fmt.Errorf("mailbox %s UID %d: %w", c.name, r.UID, err)
		}
		if f[0] != '\\' && !c.flags[f] {
			if len(c.flags) == maxUserFlags {
				return bad("more than %d user flags in the mailbox", maxUserFlags)
			}
			c.flags[f] = true
		}
	}
	for _, a := range r.Annotations {
		if err := dumpcheck.CheckEntry(a.Entry); err != nil {
			return fmt.Errorf("mailbox %s UID %d: %w", c.name, r.UID, err)
		}
		if a.UserID != "" {
			if err := dumpcheck.CheckUserID(a.UserID); err != nil {
				return fmt.Errorf("mailbox %s UID %d: annotation: %w", c.name, r.UID, err)
			}
		}
	}
	return nil
}
