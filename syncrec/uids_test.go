package syncrec

import (
	"bytes"
	"testing"

	"github.com/mbtool/mbtool/dlist"
)

// A range written reads back; what is not a range is refused.
func TestUIDRange(t *testing.T) {
	for _, r := range [][2]uint32{{1, 1}, {7, 12}, {4294967295, 4294967295}} {
		var buf bytes.Buffer
		w := dlist.NewWriter(&buf)
		w.BeginLine("X", "UIDS")
		WriteUIDRange(w, r[0], r[1])
		w.EndLine()
		w.Flush()
		atom := bytes.TrimSuffix(bytes.TrimPrefix(buf.Bytes(), []byte("X UIDS ")), []byte("\r\n"))
		f, l, ok := ParseUIDRange(atom)
		if !ok || f != r[0] || l != r[1] {
			t.Errorf("%v written as %q reads back as %d:%d %v", r, buf.Bytes(), f, l, ok)
		}
	}
	for _, s := range []string{"", "0", "0:3", "5:4", "a", "1:", ":2", "1:2:3", "4294967296"} {
		if f, l, ok := ParseUIDRange([]byte(s)); ok {
			t.Errorf("%q reads as %d:%d", s, f, l)
		}
	}
}
