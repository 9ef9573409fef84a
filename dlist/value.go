package dlist

import (
	"fmt"
	"strconv"

	"github.com/mbtool/mbtool/guid"
)

// Value is a node of a dlist tree.
//
// Parsed values keep their text: a number arrives as an Atom and the
// accessors (Num64, Hex64, GUID, ...) convert it when asked, as Cyrus does.
// The constructors build the Kinds the parser builds, so that NewNum(7) is
// an Atom "7".
type Value struct {
	Kind     Kind
	Key      string   // name when the value is a kvlist child or a line's <NAME>
	Data     []byte   // Atom, Flag, Literal and Text bytes; a File's bytes when read into memory
	Children []*Value // List and KVList items, in order (kvlist children carry Key)
	File     FileInfo // Kind == File
	Offset   int64    // byte offset where the value began in the input (0 for constructed values)
}

// NewAtom returns an Atom; it prints by Cyrus's astring rules: bare when
// it is an atom other than NIL, else quoted when it can be, else as a
// literal.
func NewAtom(s string) *Value { return &Value{Kind: Atom, Data: []byte(s)} }

// NewBytes returns a Literal holding a copy of b, Cyrus's BUF: it prints by
// the astring rules, or as a literal when it contains NUL.
func NewBytes(b []byte) *Value {
	return &Value{Kind: Literal, Data: append([]byte{}, b...)}
}

// NewNum returns an Atom holding n in decimal, as Cyrus prints NUM and
// DATE values.
func NewNum(n uint64) *Value {
	return &Value{Kind: Atom, Data: strconv.AppendUint(nil, n, 10)}
}

// NewHex returns an Atom holding n as 16 lowercase hex digits, as Cyrus
// prints HEX values (the conversation id "thrid").
func NewHex(n uint64) *Value { return &Value{Kind: Atom, Data: appendHex16(nil, n)} }

// NewGUID returns an Atom holding the 40 lowercase hex digits of g.
func NewGUID(g guid.GUID) *Value { return &Value{Kind: Atom, Data: g.AppendHex(nil)} }

// NewFlag returns a Flag, printed verbatim as Cyrus prints flags (system
// flags such as \Seen and user flags such as $Label1 alike). A Writer
// refuses a flag that would not parse back as the same text.
func NewFlag(s string) *Value { return &Value{Kind: Flag, Data: []byte(s)} }

// NewNil returns the NIL value.
func NewNil() *Value { return &Value{Kind: Nil} }

// NewList returns a List of items.
func NewList(items ...*Value) *Value { return &Value{Kind: List, Children: items} }

// NewKVList returns an empty KVList; fill it with Add.
func NewKVList() *Value { return &Value{Kind: KVList} }

// NewFile returns a File value holding data, to be printed as the file
// literal %{partition guid size}. The GUID is not computed or checked.
func NewFile(partition string, g guid.GUID, data []byte) *Value {
	return &Value{Kind: File, File: FileInfo{Partition: partition, GUID: g, Size: int64(len(data))}, Data: data}
}

// Add appends child to v under key and returns v, for chaining:
//
//	dlist.NewKVList().Add("USERID", dlist.NewAtom("fred")).Add("LASTUID", dlist.NewNum(3))
//
// It sets child.Key.
func (v *Value) Add(key string, child *Value) *Value {
	child.Key = key
	v.Children = append(v.Children, child)
	return v
}

// Append appends child to the List v and returns v.
func (v *Value) Append(child *Value) *Value {
	v.Children = append(v.Children, child)
	return v
}

// Get returns the first child of v whose Key is key (byte-exact, as Cyrus
// looks keys up), or nil. It is safe on a nil v, so lookups chain:
// v.Get("A").Get("B").
func (v *Value) Get(key string) *Value {
	if v == nil {
		return nil
	}
	for _, c := range v.Children {
		if c.Key == key {
			return c
		}
	}
	return nil
}

// String returns the raw content of an Atom, Flag, Literal or Text value
// (a Literal's bytes may include NUL). It returns "" for NIL, for nil v and
// for the other kinds; use Atom to tell those apart.
func (v *Value) String() string {
	if v == nil {
		return ""
	}
	switch v.Kind {
	case Atom, Flag, Literal, Text:
		return string(v.Data)
	}
	return ""
}

// Atom returns the text of v as Cyrus's dlist_getatom does: the content
// of an Atom, Flag, or Literal without NUL; "" for NIL. Other kinds and
// literals holding NUL give an error wrapping ErrType; nil v gives
// ErrMissing.
func (v *Value) Atom() (string, error) {
	if err := v.scalar("atom", Atom, Flag, Literal, Nil); err != nil {
		return "", err
	}
	if v.Kind == Literal && indexNUL(v.Data) >= 0 {
		return "", v.typeErr("atom", "contains NUL")
	}
	return string(v.Data), nil
}

// IsNil reports whether v is the NIL value. It is false for a nil v: an
// absent key is not NIL.
func (v *Value) IsNil() bool { return v != nil && v.Kind == Nil }

// Num64 converts an Atom or Literal of 1 or more decimal digits to a
// number, as Cyrus's dlist_getnum64: no sign, no spaces, at most
// 18446744073709551615 (larger is ErrRange).
func (v *Value) Num64() (uint64, error) {
	if err := v.scalar("number", Atom, Literal); err != nil {
		return 0, err
	}
	if len(v.Data) == 0 {
		return 0, v.typeErr("number", "empty")
	}
	var n uint64
	for _, c := range v.Data {
		if c < '0' || c > '9' {
			return 0, v.typeErr("number", "not a decimal number")
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("%s: %w", v.describe("number"), ErrRange)
		}
		n = n*10 + d
	}
	return n, nil
}

// Num32 is Num64 truncated to the low 32 bits, silently, as Cyrus's
// dlist_getnum32 does.
func (v *Value) Num32() (uint32, error) {
	n, err := v.Num64()
	return uint32(n), err
}

// Date is Num64 converted to Unix seconds the way Cyrus stores a time_t:
// numbers above 1<<63-1 wrap to negative.
func (v *Value) Date() (int64, error) {
	n, err := v.Num64()
	return int64(n), err
}

// HexDigits reports whether b is one or more hex digits (either case),
// and the number the last 16 of them make: the digits rule of Hex64, for
// a caller that applies its own limit on their count.
func HexDigits(b []byte) (n uint64, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}

// Hex64 converts an Atom or Literal of 1 to 16 hex digits (either case),
// as Cyrus's dlist_gethex64. More digits give ErrRange.
func (v *Value) Hex64() (uint64, error) {
	if err := v.scalar("hex number", Atom, Literal); err != nil {
		return 0, err
	}
	if len(v.Data) == 0 {
		return 0, v.typeErr("hex number", "empty")
	}
	n, ok := HexDigits(v.Data)
	if !ok {
		return 0, v.typeErr("hex number", "not hex digits")
	}
	if len(v.Data) > 16 {
		return 0, fmt.Errorf("%s: more than 16 digits: %w", v.describe("hex number"), ErrRange)
	}
	return n, nil
}

// GUID converts an Atom or Literal of exactly 40 hex digits (either case).
func (v *Value) GUID() (guid.GUID, error) {
	if err := v.scalar("guid", Atom, Literal); err != nil {
		return guid.Null, err
	}
	g, err := guid.ParseBytes(v.Data)
	if err != nil {
		return guid.Null, v.typeErr("guid", "not 40 hex digits")
	}
	return g, nil
}

// scalar checks that v is not nil and has one of the kinds.
func (v *Value) scalar(what string, kinds ...Kind) error {
	if v == nil {
		return fmt.Errorf("dlist: %s: %w", what, errMissingType)
	}
	for _, k := range kinds {
		if v.Kind == k {
			return nil
		}
	}
	return fmt.Errorf("%s: is a %s: %w", v.describe(what), v.Kind, ErrType)
}

// errMissingType wraps both ErrMissing and ErrType.
var errMissingType = fmt.Errorf("%w (%w)", ErrMissing, ErrType)

func (v *Value) typeErr(what, why string) error {
	return fmt.Errorf("%s: %s: %w", v.describe(what), why, ErrType)
}

// describe names v for an error message: `dlist: number SIZE "12x"`.
func (v *Value) describe(what string) string {
	s := "dlist: " + what
	if v.Key != "" {
		s += " " + v.Key
	}
	if v.Kind == Atom || v.Kind == Literal || v.Kind == Flag {
		s += " " + quoteShort(v.Data)
	}
	return s
}

// appendHex16 appends n as 16 lowercase hex digits.
func appendHex16(dst []byte, n uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[n>>uint(shift)&0xf])
	}
	return dst
}
