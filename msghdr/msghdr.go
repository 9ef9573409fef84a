// Package msghdr reads RFC 5322 header fields from the first bytes of a
// message file: the one reader of header fields by name that `mbtool
// list` (From, Subject, Message-ID) and restore's --message-id selector
// share. A field's name is compared without case and with blanks before
// the colon ignored; its value runs on over continuation lines (a line
// that begins with a space or a tab), which are joined without their line
// ends (unfolded), and is trimmed of blanks; the first field of a name
// counts. The header ends at the first empty line, or where the bytes
// given end.
package msghdr

import (
	"bytes"
	"io"
	"strings"
)

// MaxValue bounds a value as returned: continuation lines beyond it are
// left out (four times RFC 5322's line limit of 998).
const MaxValue = 998 * 4

// Fields returns the values of the first field of each of names (lower
// case ASCII) in the header at the start of b, "" for a name not found,
// in the order of names.
func Fields(b []byte, names ...string) []string {
	out := make([]string, len(names))
	have := make([]bool, len(names))
	left := len(names)
	for len(b) > 0 && left > 0 {
		line, rest := nextLine(b)
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the empty line ending the header
		}
		val := line
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			var cont []byte
			cont, rest = nextLine(rest)
			if len(val) < MaxValue {
				val = b[:len(val)+len(cont)] // contiguous in b
			}
		}
		b = rest
		colon := bytes.IndexByte(val, ':')
		if colon <= 0 {
			continue
		}
		for i, n := range names {
			if !have[i] && asciiFold(val[:colon], n) {
				have[i], out[i] = true, unfold(val[colon+1:])
				left--
				break
			}
		}
	}
	return out
}

func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], b[i+1:]
	}
	return b, nil
}

// asciiFold reports whether the field name b (blanks after it ignored)
// is lower, without case.
func asciiFold(b []byte, lower string) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// unfold joins a folded value into one line, trimmed.
func unfold(v []byte) string {
	s := string(v)
	s = strings.ReplaceAll(s, "\r\n", "")
	s = strings.ReplaceAll(s, "\n", "")
	return strings.TrimSpace(s)
}

// Ended reports whether head, a message's first bytes, holds the empty
// line that ends its header: one at its start, or "\n\n" or "\n\r\n"
// from offset from on (a caller that adds bytes looks again from just
// before the new ones).
func Ended(head []byte, from int) bool {
	if bytes.HasPrefix(head, []byte("\n")) || bytes.HasPrefix(head, []byte("\r\n")) {
		return true
	}
	h := head[from:]
	return bytes.Contains(h, []byte("\n\n")) || bytes.Contains(h, []byte("\n\r\n"))
}

// Read reads a message's header from r: its bytes up to the empty line
// that ends it (and what came with it in the last read), at most limit
// bytes.
func Read(r io.Reader, limit int) ([]byte, error) {
	var b []byte
	buf := make([]byte, 4<<10)
	for len(b) < limit {
		n, err := r.Read(buf[:min(len(buf), limit-len(b))])
		from := max(len(b)-2, 0)
		b = append(b, buf[:n]...)
		if n > 0 && Ended(b, from) || err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}
