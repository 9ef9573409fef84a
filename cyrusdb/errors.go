package cyrusdb

import (
	"errors"
	"strconv"
)

// ErrCorrupt is wrapped by every *CorruptError: the file is not a valid
// database of the expected format.
var ErrCorrupt = errors.New("cyrusdb: corrupt database")

// ErrKeyOrder is returned by the writers when keys are not in strictly
// ascending order, which includes duplicate keys.
var ErrKeyOrder = errors.New("cyrusdb: keys not in ascending order")

// ErrEmptyKey is returned by WriteTwoskip for an empty key, which twoskip
// cannot store.
var ErrEmptyKey = errors.New("cyrusdb: empty key")

// ErrClosed is returned by a Twoskip or TwoskipWriter used after Close.
var ErrClosed = errors.New("cyrusdb: use after close")

// CorruptError reports a database that violates its format, naming the file
// and the byte offset of the offending record, line or field.
type CorruptError struct {
	Path   string // file name as given to the reader
	Offset int64  // byte offset of the problem
	Reason string // what is wrong, lower case
}

// Error returns "cyrusdb: <path>: offset <n>: <reason>".
func (e *CorruptError) Error() string {
	return "cyrusdb: " + e.Path + ": offset " + strconv.FormatInt(e.Offset, 10) + ": " + e.Reason
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
