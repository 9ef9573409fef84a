package syncrec

import (
	"strconv"
	"testing"
)

// TestParseHex64 checks parseHex64 against strconv.ParseUint, which the CRC
// of a thrid annotation used before.
func TestParseHex64(t *testing.T) {
	for _, s := range []string{
		"", "0", "00000000000000ff", "FFFFFFFFFFFFFFFF", "ffffffffffffffff", "10000000000000000",
		"000000000000000000001", "1_0", "0x10", "-1", "+1", "g", "abcdefABCDEF0123", " 1", "1 ",
		"0000000000000000000000000000000000ffffffffffffffff",
	} {
		want, err := strconv.ParseUint(s, 16, 64)
		got, ok := parseHex64([]byte(s))
		if ok != (err == nil) || (ok && got != want) {
			t.Errorf("%q: got %d, %v; strconv says %d, %v", s, got, ok, want, err)
		}
	}
}
