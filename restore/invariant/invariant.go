// Package invariant holds the rules that keep IMAP clients right when a
// restore meets a mailbox that exists in the target: when the target's
// mailbox is identical to the dump's (so the restore may leave it alone),
// how the two differ, in words, when it is not, and (replace.go) which
// UIDs and MODSEQs a --replace gives the dump's messages so that no UID is
// used twice under one UIDVALIDITY and no change is hidden from a
// CONDSTORE/QRESYNC client. Both restores use it: offline (package
// restore) and --server (package remote). The policy is written up in
// docs/restore.md, "Invariants".
//
// Everything here streams: records come in ascending UID order from both
// sides and are compared as they pass, so the cost per mailbox is flat in
// memory whatever its size.
package invariant

import (
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/guid"
)

// State is what identifies a mailbox's content to a replica and to an
// IMAP client's cache: the keys Cyrus's sync_server compares.
type State struct {
	UIDValidity   uint32
	LastUID       uint32
	HighestModseq uint64
	SyncCRC       uint32
	SyncCRCAnnot  uint32
}

// Record is what the rules need of one index record, on either side.
type Record struct {
	UID          uint32
	GUID         guid.GUID
	Modseq       uint64
	Expunged     bool
	Size         uint32
	InternalDate int64
	LastUpdated  int64
}

// Diff counts how the records of the dump and of the target differ.
type Diff struct {
	// DumpOnly counts the dump's messages (not expunged) that the target
	// does not hold under the same UID; TargetOnly the target's that the
	// dump does not hold; Changed those both hold whose MODSEQ differs
	// (flags or annotations changed since); Damaged the target's message
	// files that are missing or do not hash to their GUID.
	DumpOnly, TargetOnly, Changed, Damaged int64
}

// Zero reports no difference.
func (d Diff) Zero() bool { return d == Diff{} }

// Compare compares the dump's records, given one by one with Add in
// ascending UID order, with the target's, read with next (ascending UID,
// nil at the end). check, if set, is called for each target message the
// dump holds too (same UID and GUID, not expunged on either side) and
// reports whether its file is intact.
type Compare struct {
	next  func() (*Record, error)
	check func(*Record) bool
	cur   *Record
	diff  Diff
	err   error
}

// NewCompare returns a Compare reading the target's records from next.
func NewCompare(next func() (*Record, error), check func(*Record) bool) *Compare {
	c := &Compare{next: next, check: check}
	c.advance()
	return c
}

func (c *Compare) advance() {
	if c.err != nil {
		c.cur = nil
		return
	}
	c.cur, c.err = c.next()
}

// targetBefore counts the target's records below uid as the target's only.
func (c *Compare) targetBefore(uid uint32) {
	for c.cur != nil && c.cur.UID < uid {
		if !c.cur.Expunged {
			c.diff.TargetOnly++
		}
		c.advance()
	}
}

// Add compares one record of the dump.
func (c *Compare) Add(r Record) {
	c.targetBefore(r.UID)
	t := c.cur
	if t == nil || t.UID != r.UID {
		if !r.Expunged {
			c.diff.DumpOnly++
		}
		return
	}
	defer c.advance()
	switch {
	case r.Expunged && t.Expunged:
	case t.GUID != r.GUID || r.Expunged != t.Expunged:
		if !r.Expunged {
			c.diff.DumpOnly++
		}
		if !t.Expunged {
			c.diff.TargetOnly++
		}
	default:
		if t.Modseq != r.Modseq {
			c.diff.Changed++
		}
		if c.check != nil && !c.check(t) {
			c.diff.Damaged++
		}
	}
}

// End reads the rest of the target's records and returns the difference.
func (c *Compare) End() (Diff, error) {
	c.targetBefore(^uint32(0))
	if c.cur != nil && !c.cur.Expunged { // UID 4294967295
		c.diff.TargetOnly++
	}
	return c.diff, c.err
}

// Differences says in words how the target's mailbox differs from the
// dump's, "" when it is identical: the same state and, if the records
// were compared, the same records with intact files. A mailbox is
// "already present" only when Differences is "".
func Differences(dump, target State, d *Diff) string {
	var out []string
	if d != nil {
		if d.DumpOnly > 0 {
			out = append(out, fmt.Sprintf("%d %s of the dump %s not in the target", d.DumpOnly, plural(d.DumpOnly, "message", "messages"), isAre(d.DumpOnly)))
		}
		if d.TargetOnly > 0 {
			out = append(out, fmt.Sprintf("%d in the target %s not in the dump", d.TargetOnly, isAre(d.TargetOnly)))
		}
		if d.Changed > 0 {
			out = append(out, fmt.Sprintf("%d %s other flags or annotations in the target", d.Changed, plural(d.Changed, "message has", "messages have")))
		}
		if d.Damaged > 0 {
			out = append(out, fmt.Sprintf("%d message %s in the target %s missing or damaged", d.Damaged, plural(d.Damaged, "file", "files"), isAre(d.Damaged)))
		}
	}
	if dump.UIDValidity != target.UIDValidity {
		out = append(out, fmt.Sprintf("UIDVALIDITY %d in the dump, %d in the target (the mailbox was recreated)", dump.UIDValidity, target.UIDValidity))
	}
	if len(out) > 0 {
		return strings.Join(out, ", ")
	}
	// The records agree (or were not compared): say which key differs.
	if dump.LastUID != target.LastUID {
		out = append(out, fmt.Sprintf("LAST_UID %d in the dump, %d in the target", dump.LastUID, target.LastUID))
	}
	if dump.HighestModseq != target.HighestModseq {
		out = append(out, fmt.Sprintf("HIGHESTMODSEQ %d in the dump, %d in the target", dump.HighestModseq, target.HighestModseq))
	}
	if dump.SyncCRC != target.SyncCRC {
		out = append(out, fmt.Sprintf("SYNC_CRC %d in the dump, %d in the target", dump.SyncCRC, target.SyncCRC))
	}
	if dump.SyncCRCAnnot != target.SyncCRCAnnot {
		out = append(out, fmt.Sprintf("SYNC_CRC_ANNOT %d in the dump, %d in the target", dump.SyncCRCAnnot, target.SyncCRCAnnot))
	}
	return strings.Join(out, ", ")
}

// Refusal is the reason a restore gives for leaving alone a mailbox that
// exists in the target and differs from the dump's.
func Refusal(differences string) string {
	return "differs from the dump: " + differences + " (use --replace to replace it)"
}

// Present is the reason given for a mailbox left alone because it is
// identical to the dump's.
const Present = "already present, identical to the dump's"

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func isAre(n int64) string { return plural(n, "is", "are") }
