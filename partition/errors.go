package partition

import (
	"errors"
	"fmt"
)

// Sentinel errors, for errors.Is.
var (
	// ErrNoMailbox: the mailbox is not in mailboxes.db, or is not a
	// real local mailbox (deleted, intermediate, remote, moving).
	ErrNoMailbox = errors.New("no such mailbox")
	// ErrBadFormat: a file does not have the structure Cyrus writes.
	ErrBadFormat = errors.New("bad format")
	// ErrChecksum: a stored CRC does not match the bytes it covers.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrVersion: a cyrus.index minor version this package cannot decode.
	ErrVersion = errors.New("unsupported index version")
	// ErrChanged: the mailbox was renamed, deleted or recreated while it
	// was being opened.
	ErrChanged = errors.New("mailbox changed while opening")
	// ErrClosed: the Mailbox has been closed.
	ErrClosed = errors.New("mailbox closed")
)

// FileError reports a problem in one file of the spool, at a byte offset
// and, for index records, a record number and UID.
type FileError struct {
	File string // path of the file
	// Offset is the byte offset of the damaged structure, -1 if unknown.
	Offset int64
	// Record is the 1-based index record number, 0 for the header or
	// for files without records.
	Record int
	// UID is the record's UID as stored (possibly damaged), 0 if none.
	UID uint32
	Err error
}

func (e *FileError) Error() string {
	s := e.File
	if e.Record > 0 {
		s += fmt.Sprintf(": record %d", e.Record)
		if e.UID != 0 {
			s += fmt.Sprintf(" (uid %d)", e.UID)
		}
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(", offset %d", e.Offset)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }
