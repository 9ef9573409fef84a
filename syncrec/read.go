package syncrec

import (
	"errors"
	"fmt"

	"github.com/mbtool/mbtool/dlist"
)

// Bounds on the memory a reader of a dump (or of a replication server's
// answers) gives to the values it decodes, whatever sizes they declare.
// Message files (file literals) are not values: they stream.
const (
	// MaxValue is the largest single value: a seen set, an ACL, an
	// annotation value, any literal outside a file literal. Larger
	// literals are refused when their size is read, before any memory is
	// set aside (dlist.Limits.MaxLiteral). It is Cyrus 3.6's own bound:
	// sync_server ends the session ("Fatal error: [TOOBIG] Literal size
	// exceeds fixed limit", exit 76) on a literal longer than 131072
	// bytes, its default maxword and maxquoted (observed; see
	// docs/validation.md), so a larger value could not be replicated either.
	MaxValue = 128 << 10
	// MaxHeld is the most that one command's values may take at once: the
	// keys of an APPLY MAILBOX (ACL, annotations, ...) together with the
	// record being read, or the whole of an APPLY SEEN, SUB or QUOTA.
	// Each value, string and list counts its bytes plus nodeCost.
	MaxHeld = 8 << 20
	// nodeCost is what one decoded value costs beyond its bytes.
	nodeCost = 64
)

// ErrTooLarge is wrapped by the error about a command whose values exceed
// MaxHeld.
var ErrTooLarge = errors.New("values larger than the memory bound")

// Limits returns the dlist limits of a reader of dumps: the defaults, but
// for MaxLiteral, which is MaxValue.
func Limits() dlist.Limits {
	l := dlist.DefaultLimits()
	l.MaxLiteral = MaxValue
	return l
}

// budget counts what a reader holds of one command.
type budget struct {
	held int64
	max  int64
}

func (b *budget) take(n int64, off int64, key string) error {
	b.held += n + nodeCost
	if b.held > b.max {
		return &FieldError{Offset: off, Key: key, Err: fmt.Errorf("%w: the command's values take more than %d bytes (syncrec.MaxHeld)", ErrTooLarge, b.max)}
	}
	return nil
}

// ReadValue reads one value, whose first token is read from r, as a tree,
// bounded: the whole tree may take MaxHeld. key names the value in errors.
func ReadValue(r *dlist.Reader, key string) (*dlist.Value, error) {
	t, err := r.Next()
	if err != nil {
		return nil, err
	}
	return readTree(r, t, key, &budget{max: MaxHeld})
}

// readTree builds the value that starts with t. A file literal is refused:
// it is not a value that can be held.
func readTree(r *dlist.Reader, t dlist.Token, key string, b *budget) (*dlist.Value, error) {
	switch t.Kind {
	case dlist.Atom, dlist.Flag, dlist.Literal, dlist.Nil:
		if err := b.take(int64(len(t.Bytes)), t.Offset, key); err != nil {
			return nil, err
		}
		return &dlist.Value{Kind: t.Kind, Data: append([]byte(nil), t.Bytes...), Offset: t.Offset}, nil
	case dlist.List, dlist.KVList:
	default:
		return nil, invalid(t.Offset, key, "expected a value, found %v", t.Kind)
	}
	if err := b.take(0, t.Offset, key); err != nil {
		return nil, err
	}
	v := &dlist.Value{Kind: t.Kind, Offset: t.Offset}
	for {
		kt, err := r.Next()
		if err != nil {
			return nil, err
		}
		if kt.Kind == dlist.End {
			return v, nil
		}
		ck := key
		if v.Kind == dlist.KVList {
			if !scalar(kt) {
				return nil, invalid(kt.Offset, key, "expected a key, found %v", kt.Kind)
			}
			ck = string(kt.Bytes)
			if err := b.take(int64(len(kt.Bytes)), kt.Offset, key); err != nil {
				return nil, err
			}
			if kt, err = r.Next(); err != nil {
				return nil, err
			}
		}
		c, err := readTree(r, kt, ck, b)
		if err != nil {
			return nil, err
		}
		if v.Kind == dlist.KVList {
			c.Key = ck
		}
		v.Children = append(v.Children, c)
	}
}

// MailboxReader reads the value of one APPLY MAILBOX (or * MAILBOX) line:
// the mailbox-level keys first, then the records one at a time, so that a
// mailbox of any size streams. It is the one reader of the mailbox stream:
// restore, `restore --server` and verify all read through it.
//
// The keys may take MaxHeld together with the record being read. Cyrus and
// mbtool write RECORD last; a key after it is refused, since the keys must
// all be known before the first record is used.
type MailboxReader struct {
	// Light makes Next skip each record's annotations and cache record
	// without decoding or checking them (Annotations and Cache stay nil):
	// for a listing, which shows neither.
	Light bool

	r       *dlist.Reader
	mb      *Mailbox
	name    string
	b       budget // the keys
	off     int64  // of the value's %(
	recOff  int64  // of the last record
	records bool   // inside the RECORD list
	done    bool
}

// OpenMailbox reads the opening of the value and every key before RECORD,
// and decodes them. Errors wrap ErrInvalid (the keys do not decode),
// ErrTooLarge, or are the reader's; with an error, the MailboxReader
// returned is good only for Name.
func OpenMailbox(r *dlist.Reader) (*MailboxReader, error) {
	m := &MailboxReader{r: r, b: budget{max: MaxHeld}}
	return m, m.open()
}

func (m *MailboxReader) open() error {
	r := m.r
	t, err := r.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.KVList {
		return invalid(t.Offset, "MAILBOX", "expected %%(, found %v", t.Kind)
	}
	m.off = t.Offset
	keys := dlist.NewKVList()
	keys.Offset = t.Offset
	for {
		kt, err := r.Next()
		if err != nil {
			return err
		}
		if kt.Kind == dlist.End {
			m.done = true
			break
		}
		if !scalar(kt) {
			return invalid(kt.Offset, "MAILBOX", "expected a key, found %v", kt.Kind)
		}
		key := string(kt.Bytes)
		if key == "RECORD" {
			lt, err := r.Next()
			if err != nil {
				return err
			}
			if lt.Kind != dlist.List {
				return invalid(lt.Offset, "RECORD", "expected a list, found %v", lt.Kind)
			}
			m.records = true
			break
		}
		if err := m.b.take(int64(len(kt.Bytes)), kt.Offset, key); err != nil {
			return err
		}
		vt, err := r.Next()
		if err != nil {
			return err
		}
		v, err := readTree(r, vt, key, &m.b)
		if err != nil {
			return err
		}
		keys.Add(key, v)
		if key == "MBOXNAME" && m.name == "" {
			m.name = v.String()
		}
	}
	m.mb, err = DecodeMailbox(keys)
	return err
}

// Name returns the MBOXNAME read so far, also when OpenMailbox failed;
// "" before it was read.
func (m *MailboxReader) Name() string { return m.name }

// Mailbox returns the mailbox-level keys.
func (m *MailboxReader) Mailbox() *Mailbox { return m.mb }

// Offset returns the offset of the value's opening.
func (m *MailboxReader) Offset() int64 { return m.off }

// RecordOffset returns the offset of the record Next returned last.
func (m *MailboxReader) RecordOffset() int64 { return m.recOff }

// Next returns the next record, or nil after the last one, having read the
// closing parenthesis of the value. A record is not kept: the caller may
// keep it.
func (m *MailboxReader) Next() (*Record, error) {
	if m.done {
		return nil, nil
	}
	t, err := m.r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.End {
		m.recOff = t.Offset
		rb := budget{held: m.b.held, max: m.b.max}
		return readRecord(m.r, t, &rb, m.Light)
	}
	// End of RECORD: the value must close right after it.
	m.done = true
	t, err = m.r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.End {
		return nil, invalid(t.Offset, "MAILBOX", "a key after RECORD")
	}
	return nil, nil
}

// Skip reads the rest of the value without decoding it.
func (m *MailboxReader) Skip() error {
	if m.done {
		return nil
	}
	depth := 1
	if m.records {
		depth = 2
	}
	for depth > 0 {
		t, err := m.r.Next()
		if err != nil {
			return err
		}
		switch t.Kind {
		case dlist.List, dlist.KVList:
			depth++
		case dlist.End:
			depth--
		}
	}
	m.done = true
	return nil
}

// ReadMailbox reads the value of an APPLY MAILBOX (or * MAILBOX) line whose
// verb and name have already been read: the %( ... ) through its closing
// parenthesis, not the line end. It calls fn with each RECORD in order as it
// is read; records are not kept.
func ReadMailbox(r *dlist.Reader, fn func(*Record) error) (*Mailbox, error) {
	m, err := OpenMailbox(r)
	if err != nil {
		return nil, err
	}
	for {
		rec, err := m.Next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return m.mb, nil
		}
		if err := fn(rec); err != nil {
			return nil, err
		}
	}
}
