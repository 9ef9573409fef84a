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
// record whose message file neither the dump holds (lost from the spool
// before the dump, which reported it) nor the restore finds in the target
// (restore --server: the server holds no file of the GUID, by its answer
// to APPLY RESERVE; offline restore does not look): the record is kept,
// expunged, with its UID and everything else as dumped but its MODSEQ,
// so that the mailbox keeps the rest of its messages and its UIDNEXT and
// the UID is never given to another message. Its MODSEQ becomes
// LostModseq(highest), where highest is the mailbox's HIGHESTMODSEQ in
// the dump, and the restores raise the mailbox's HIGHESTMODSEQ to it: an
// expunge is a change, which Cyrus numbers above every earlier one, so
// that a client that resynchronises from the dump's HIGHESTMODSEQ (QRESYNC)
// is told the message VANISHED. The mailbox's SYNC_CRC is that of the
// records after this rule: the record no longer counts in it (CRC.Add).
// Cyrus keeps such a record too, marked unlinked: offline restore writes
// it so, and sync_server does the same with an expunged record whose file
// it cannot find (imap/sync_support.c sync_append_copyfile). LoseFile
// returns the problem to report, or nil (and leaves r alone) when r was
// expunged already (the file of an expunged message is removed in time:
// nothing is lost).
func LoseFile(r *Record, highest uint64) *LostFileError {
	if r.Expunged() {
		return nil
	}
	r.Flags = append(r.Flags, FlagExpunged)
	r.Modseq = LostModseq(highest)
	return &LostFileError{UID: r.UID, GUID: r.GUID}
}

// LostModseq is the MODSEQ of every record LoseFile expunges in a mailbox
// whose HIGHESTMODSEQ in the dump is highest, and the mailbox's
// HIGHESTMODSEQ once one is: one change, as Cyrus gives one MODSEQ to
// the changes of one session.
func LostModseq(highest uint64) uint64 { return highest + 1 }

// LostKeptError is the problem both restores report for a mailbox they
// keep as it is (identical to the dump's) some of whose records the dump
// has without their file: the target has them expunged, as an earlier
// run of the restore left them by LoseFile, and the dump still cannot
// bring them back.
type LostKeptError struct {
	Records int64
}

func (e *LostKeptError) Error() string {
	return fmt.Sprintf("%d record(s) without a message file in the dump, expunged in the target as restored before", e.Records)
}
