package syncrec

import (
	"bytes"
	"strconv"

	"github.com/mbtool/mbtool/dlist"
)

// WriteUIDRange writes one range of a list of UIDs as an atom, "7" or
// "7:12" (the UIDS of mbtool's MBTOOL BOX lines, docs/format.md).
func WriteUIDRange(w *dlist.Writer, first, last uint32) {
	if first == last {
		w.Num(uint64(first))
		return
	}
	w.Atom(strconv.FormatUint(uint64(first), 10) + ":" + strconv.FormatUint(uint64(last), 10))
}

// ParseUIDRange reads an atom WriteUIDRange writes; ok is false for
// anything else (a UID of 0, a range going down).
func ParseUIDRange(b []byte) (first, last uint32, ok bool) {
	lo, hi, found := bytes.Cut(b, []byte(":"))
	if !found {
		hi = lo
	}
	f, err1 := strconv.ParseUint(string(lo), 10, 32)
	l, err2 := strconv.ParseUint(string(hi), 10, 32)
	if err1 != nil || err2 != nil || f == 0 || l < f {
		return 0, 0, false
	}
	return uint32(f), uint32(l), true
}
