package msgsel

import (
	"fmt"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
)

// The decisions of an additive restore (--undelete) that both restores
// make, offline and with --server, in a real run and in a dry run alike,
// so that a dry run counts what the real run adds and refuses what it
// refuses: which target a merge refuses (NewMerge), and which records of
// the dump it brings back (Candidate.Merges); the Appender NewMerge
// returns then leaves out what the target holds and numbers the rest.

// Target is what a merge read of its target mailbox: offline its
// cyrus.index header, under the index's lock; with --server the keys GET
// FULLMAILBOX answered.
type Target struct {
	// Planned is the uniqueid the restore planned the merge into;
	// UniqueID the target's now.
	Planned, UniqueID string
	LastUID           uint32
	HighestModseq     uint64
	// Counter is the modseq counter of the mailbox's owner, which the
	// appended records' MODSEQ must be above too (with `conversations:
	// yes`: imap/mboxname.c mboxname_nextmodseq); 0 when there is none.
	Counter uint64
	// Index is the path of an offline target's cyrus.index, whose minor
	// version and options follow; "" with --server (sync_server writes
	// its own index).
	Index        string
	IndexVersion uint32
	Options      uint32
}

// RefusedError is why a merge refuses its target: that mailbox is
// reported and the run goes on.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// NewMerge returns the Appender of a merge into t (numbering from its
// LAST_UID and the higher of its HIGHESTMODSEQ and Counter, now the LAST_UPDATED of what it appends),
// or a *RefusedError: the target is not the mailbox planned, or, offline,
// its index is of a version the merge does not write or marked deleted.
func NewMerge(t Target, now int64) (*Appender, error) {
	if t.UniqueID != t.Planned {
		return nil, &RefusedError{fmt.Sprintf("changed in the target meanwhile (uniqueid %s, now %s)", t.Planned, t.UniqueID)}
	}
	if t.Index != "" {
		if t.IndexVersion != partition.IndexVersion {
			return nil, &RefusedError{fmt.Sprintf("%s is cyrus.index version %d; merging writes version %d only (run reconstruct -V max first)",
				t.Index, t.IndexVersion, partition.IndexVersion)}
		}
		if t.Options&partition.OptMailboxDeleted != 0 {
			return nil, &RefusedError{"the target's index is marked deleted"}
		}
	}
	return NewAppender(t.LastUID, max(t.HighestModseq, t.Counter), now), nil
}

// Candidate is one record of the dump as a merge sees it.
type Candidate struct {
	UID                  uint32
	GUID                 guid.GUID
	Unselected, Expunged bool
	// File: its message file is at hand, in the dump (offline), or in
	// the dump or on the server's partition (--server); Where says
	// where it was looked for.
	File  bool
	Where string
}

// Merges says whether a merge brings c back to its target: a record the
// message selectors chose, not expunged, whose message file is at hand.
// missing, when not nil, is the problem to report for a record left out
// for want of its file.
func (c Candidate) Merges() (ok bool, missing error) {
	switch {
	case c.Unselected || c.Expunged:
		return false, nil
	case !c.File:
		return false, fmt.Errorf("UID %d: no message file of GUID %s in %s; not restored", c.UID, c.GUID, c.Where)
	}
	return true, nil
}
