package cyrusdb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Flat files (lib/cyrusdb_flat.c, Cyrus 3.6.1): one line per record,
// enc(key) TAB enc(value) LF, where enc writes NUL, TAB, LF and CR as 0xFF
// followed by the byte ORed with 0x80, and 0xFF as 0xFF 0xFF.
const flatEscape = 0xFF

// flatOrder is Cyrus's mailbox-order table (lib/bsearch.c
// convert_to_compare): TAB and LF map to 1, '.' to 2, bytes 1..8 move up by
// 2; everything else, NUL included, maps to itself.
var flatOrder = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for i := 1; i <= 8; i++ {
		t[i] = byte(i + 2)
	}
	t['\t'], t['\n'], t['.'] = 1, 1, 2
	return t
}()

// flatEncCompare compares two encoded keys as Cyrus's binary search does:
// enc(key) followed by TAB, byte by byte through flatOrder. Encoded keys
// hold no TAB, LF or NUL, so a key sorts before every longer key it is a
// prefix of.
func flatEncCompare(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if c := int(flatOrder[a[i]]) - int(flatOrder[b[i]]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// flatEncoder yields the encoded bytes of a raw key one at a time.
type flatEncoder struct {
	s       []byte
	pending int // second byte of an escape, or -1
}

func (e *flatEncoder) next() (byte, bool) {
	if e.pending >= 0 {
		c := byte(e.pending)
		e.pending = -1
		return c, true
	}
	if len(e.s) == 0 {
		return 0, false
	}
	c := e.s[0]
	e.s = e.s[1:]
	switch c {
	case 0, '\t', '\n', '\r':
		e.pending = int(0x80 | c)
		return flatEscape, true
	case flatEscape:
		e.pending = flatEscape
		return flatEscape, true
	}
	return c, true
}

// flatCompare is FlatLess as a three-way comparison.
func flatCompare(a, b []byte) int {
	ea, eb := flatEncoder{s: a, pending: -1}, flatEncoder{s: b, pending: -1}
	for {
		ca, oka := ea.next()
		cb, okb := eb.next()
		switch {
		case !oka && !okb:
			return 0
		case !oka:
			return -1
		case !okb:
			return 1
		}
		if c := int(flatOrder[ca]) - int(flatOrder[cb]); c != 0 {
			return c
		}
	}
}

// FlatLess reports whether key a sorts before key b in a Cyrus flat file:
// the escaped keys compared byte by byte in mailbox order, where '.' sorts
// below every other byte and a key before every longer key it is a prefix
// of; otherwise plain byte order. So "a" < "a.b" < "a b" < "a-b" < "ab".
func FlatLess(a, b []byte) bool { return flatCompare(a, b) < 0 }

// appendFlatEnc appends enc(s) to b.
func appendFlatEnc(b, s []byte) []byte {
	for _, c := range s {
		switch c {
		case 0, '\t', '\n', '\r':
			b = append(b, flatEscape, 0x80|c)
		case flatEscape:
			b = append(b, flatEscape, flatEscape)
		default:
			b = append(b, c)
		}
	}
	return b
}

// flatDecode decodes s in place. It accepts exactly what Cyrus's encoder
// writes: 0xFF 0xFF for 0xFF, 0xFF then 0x80, 0x89, 0x8A or 0x8D for NUL,
// TAB, LF and CR, which never appear raw. On anything else it returns the
// index of the offending byte. (Cyrus's own decoder is laxer: it takes any
// byte after 0xFF without its high bit and drops a lone trailing 0xFF. Such
// bytes come only from damage, and accepting them would let two spellings
// of one key sort apart.)
func flatDecode(s []byte) ([]byte, int) {
	j := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case 0, '\t', '\n', '\r':
			return nil, i
		case flatEscape:
			if i+1 == len(s) {
				return nil, i
			}
			i++
			switch s[i] {
			case flatEscape:
			case 0x80, 0x80 | '\t', 0x80 | '\n', 0x80 | '\r':
				c = s[i] &^ 0x80
			default:
				return nil, i
			}
		}
		s[j] = c
		j++
	}
	return s[:j], -1
}

// flatReaders are ReadFlat's buffers: a dump reads a flat subscription
// file for every user, and a fresh 64 KiB buffer each time was a fifth of
// what a dump of many small mailboxes allocated.
var flatReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// ReadFlat reads a flat database from r and calls fn for each record in
// file order, which is key order (FlatLess). key and value are valid only
// during the call; if fn returns an error, ReadFlat stops and returns it
// unchanged. An empty input is an empty database. name is used in errors.
//
// ReadFlat accepts what Cyrus writes and nothing else, so that WriteFlat
// of the records read gives back the same bytes. A line without a TAB, a
// last line without LF, a byte not escaped as Cyrus escapes it (a raw NUL,
// CR or second TAB, a bad 0xFF sequence), or a key not strictly after the
// previous one in Cyrus's order (Cyrus finds keys by binary search, so such
// a file loses records) is a *CorruptError.
func ReadFlat(name string, r io.Reader, fn func(key, value []byte) error) error {
	br := flatReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		flatReaders.Put(br)
	}()
	var line, prev []byte
	var off int64
	for n := 0; ; n++ {
		line = line[:0]
		for {
			chunk, err := br.ReadSlice('\n')
			line = append(line, chunk...)
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err == io.EOF {
				if len(line) == 0 {
					return nil
				}
				return &CorruptError{name, off, "last line does not end in a newline"}
			}
			return fmt.Errorf("cyrusdb: reading %s at offset %d: %w", name, off+int64(len(line)), err)
		}
		tab := bytes.IndexByte(line, '\t')
		if tab < 0 {
			return &CorruptError{name, off, "line has no tab"}
		}
		encKey := line[:tab]
		if n > 0 && flatEncCompare(prev, encKey) >= 0 {
			return &CorruptError{name, off, fmt.Sprintf("key %q out of order", encKey)}
		}
		prev = append(prev[:0], encKey...)
		key, bad := flatDecode(encKey)
		if bad >= 0 {
			return &CorruptError{name, off + int64(bad), fmt.Sprintf("byte %#x not escaped as Cyrus escapes it", line[bad])}
		}
		value, bad := flatDecode(line[tab+1 : len(line)-1])
		if bad >= 0 {
			bad += tab + 1
			return &CorruptError{name, off + int64(bad), fmt.Sprintf("byte %#x not escaped as Cyrus escapes it", line[bad])}
		}
		if err := fn(key, value); err != nil {
			return err
		}
		off += int64(len(line))
	}
}

// WriteFlat writes records as a flat database: sorted with FlatLess (a
// sorted copy; records itself is not reordered), escaped, one line each.
// Duplicate keys are an error wrapping ErrKeyOrder.
func WriteFlat(w io.Writer, records [][2][]byte) error {
	sorted := slices.Clone(records)
	slices.SortFunc(sorted, func(a, b [2][]byte) int { return flatCompare(a[0], b[0]) })
	for i := 1; i < len(sorted); i++ {
		if flatCompare(sorted[i-1][0], sorted[i][0]) == 0 {
			return fmt.Errorf("%w: duplicate key %q", ErrKeyOrder, sorted[i][0])
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for _, rec := range sorted {
		line = appendFlatEnc(line[:0], rec[0])
		line = append(line, '\t')
		line = appendFlatEnc(line, rec[1])
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("cyrusdb: writing flat: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cyrusdb: writing flat: %w", err)
	}
	return nil
}
