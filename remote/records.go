package remote

import (
	"github.com/mbtool/mbtool/guid"
)

// item is one record of a mailbox as the first pass saw it: what the
// second pass must find again, and what the server must have.
type item struct {
	guid     guid.GUID
	uid      uint32
	modseq   uint64
	expunged bool
	inDump   bool // the dump holds the file, before this mailbox
	// unselected: the message selectors leave the record out.
	unselected bool
}
