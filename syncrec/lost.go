package syncrec

import (
	"fmt"

	"github.com/mbtool/mbtool/guid"
)

// LostFileError is the problem both restores report for a record of the
// dump that LoseFile expunged.
type LostFileError struct {
	UID  uint32
	GUID guid.GUID
}

func (e *LostFileError) Error() string {
	return fmt.Sprintf("UID %d: the dump has no message file for GUID %s; restored as expunged", e.UID, e.GUID)
}

// LoseFile is the one rule of offline restore and restore --server for a
// record whose message file the dump does not hold (lost from the spool
// before the dump, which reported it): the record is kept, expunged, with
// its UID, MODSEQ and everything else as dumped, so that the mailbox keeps
// the rest of its messages and its UIDNEXT and the UID is never given to
// another message. The mailbox's SYNC_CRC is that of the records after
// this rule: the record no longer counts in it (CRC.Add). Cyrus
// keeps such a record too, marked unlinked: offline restore writes it so,
// and sync_server does the same with an expunged record whose file it
// cannot find (imap/sync_support.c sync_append_copyfile). LoseFile
// returns the problem to report, or nil when r was expunged already (the
// file of an expunged message is removed in time: nothing is lost).
func LoseFile(r *Record) *LostFileError {
	if r.Expunged() {
		return nil
	}
	r.Flags = append(r.Flags, FlagExpunged)
	return &LostFileError{UID: r.UID, GUID: r.GUID}
}
