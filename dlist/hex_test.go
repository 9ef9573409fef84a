package dlist

import (
	"strconv"
	"testing"
)

// HexDigits reads up to 16 digits as strconv.ParseUint(s, 16, 64) does,
// and refuses what is not all hex digits (signs, prefixes, underscores and
// spaces included).
func TestHexDigits(t *testing.T) {
	for _, s := range []string{
		"", "0", "00000000000000ff", "FFFFFFFFFFFFFFFF", "ffffffffffffffff", "abcdefABCDEF0123",
		"1_0", "0x10", "-1", "+1", "g", " 1", "1 ",
	} {
		want, err := strconv.ParseUint(s, 16, 64)
		got, ok := HexDigits([]byte(s))
		if ok != (err == nil) || (ok && got != want) {
			t.Errorf("%q: got %d, %v; strconv says %d, %v", s, got, ok, want, err)
		}
	}
}
