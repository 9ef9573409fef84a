package cyrusdb

import "bytes"

// KeyLess reports whether a sorts before b in a twoskip file: plain byte
// order (memcmp), a key sorting before every longer key it is a prefix of.
// All Cyrus 3.6 twoskip databases use this order.
func KeyLess(a, b []byte) bool { return bytes.Compare(a, b) < 0 }
