// Package result holds what a restore reports, the same for an offline
// restore into a partition (package restore) and `restore --server`
// (package remote): what became of each mailbox of the dump, what was
// written, and what went wrong. The command line renders it (commands);
// nothing here prints.
package result

import (
	"fmt"

	"github.com/mbtool/mbtool/dumpfile"
)

// Action is what a restore does, or would do, with one mailbox of the
// dump.
type Action string

// Actions.
const (
	Create  Action = "create"  // the mailbox does not exist in the target
	Replace Action = "replace" // it exists and --replace was given
	Refuse  Action = "refuse"  // it exists (or conflicts) and is left alone
	Skip    Action = "skip"    // not selected
	// Keep: the mailbox is in the target already, identical to the dump's
	// (same UIDVALIDITY, LAST_UID, HIGHESTMODSEQ, SYNC_CRC, SYNC_CRC_ANNOT:
	// an earlier run of the same restore); it is left alone, and its seen
	// and subscription records are completed. A mailbox that differs in
	// any of these is refused, the difference in Reason.
	Keep Action = "keep"
	// Merge: the mailbox exists in the target and the restore is additive
	// (--undelete): the messages of the dump the target does not have
	// (by GUID) are appended with new UIDs; nothing is removed.
	Merge Action = "merge"
)

// Mailbox reports one mailbox of the dump.
type Mailbox struct {
	Action Action
	Name   string // in the target
	Source string // in the dump
	// UniqueID is the uniqueid (MAILBOXID) in the target, and IDFrom where
	// it comes from.
	UniqueID  string
	IDFrom    IDFrom
	Partition string
	Records   int64 // index records, expunged ones included
	Messages  int64 // records not expunged
	Bytes     int64 // their sizes (restore --server; 0 offline)
	Reason    string
	// Added counts the messages a merge appends (or would append);
	// AlreadyThere those of the dump the target has already (by GUID);
	// Unselected those the message selectors left out.
	Added, AlreadyThere, Unselected int64
	// Applied reports that the mailbox is in the target: registered by an
	// offline restore, accepted by the server. Always false for a dry run.
	Applied bool
	// Err is why a mailbox to create or replace was not applied, or the
	// warning it was applied with.
	Err error
}

// IDFrom says where a restored mailbox's uniqueid comes from.
type IDFrom string

// Origins of a uniqueid (the policy is in docs/restore.md, "Invariants").
const (
	IDDump   IDFrom = ""       // the dump's
	IDTarget IDFrom = "target" // the target mailbox's, which stays (--replace, keep)
	IDNew    IDFrom = "new"    // a new one: the dump's is used by another mailbox
)

// Problem is an item that was not restored as dumped, or restored with a
// warning.
type Problem struct {
	Item string // a mailbox name, or "APPLY SEEN alice ...", ...
	Err  error
}

// String returns "item: error".
func (p Problem) String() string { return fmt.Sprintf("%s: %v", p.Item, p.Err) }

// Summary is what a restore did, or would do.
type Summary struct {
	// Dump is what the dump's trailer counts.
	Dump      dumpfile.Counts
	Mailboxes []Mailbox
	// Messages and Bytes count the message files written to the target:
	// staged into the partition offline, uploaded with --server.
	Messages, Bytes int64
	// Present counts the message files the target had already (APPLY
	// RESERVE, with --server).
	Present int64
	// Seen, Subs, Quotas and ServerAnnotations count the records the
	// server accepted (with --server).
	Seen, Subs, Quotas, ServerAnnotations int
	Problems                              []Problem
	// Target names what was restored to: the server's protocol with
	// --server ("sync_server", "imapd"), "" offline.
	Target string
	// Began reports that the run began to change the target (offline:
	// its commit began; with --server: it connected). A run that stops
	// on an error after that still reports every mailbox, so that what
	// was applied before the stop is said.
	Began bool
}

// Count returns how many mailboxes got action a.
func (s *Summary) Count(a Action) int {
	n := 0
	for _, m := range s.Mailboxes {
		if m.Action == a {
			n++
		}
	}
	return n
}

// Applied returns how many mailboxes got one of the actions (any, when
// none is given) and were applied.
func (s *Summary) Applied(as ...Action) int {
	n := 0
	for _, m := range s.Mailboxes {
		if !m.Applied {
			continue
		}
		if len(as) == 0 {
			n++
			continue
		}
		for _, a := range as {
			if m.Action == a {
				n++
				break
			}
		}
	}
	return n
}

// Present reports whether the mailbox of the dump that m reports is in the
// target once the restore is done, as both restores count it when they
// decide the missing parents of a mailbox below it
// (usermap.MissingParents): it is created, replaced, merged into or kept,
// and was not refused (offline its action is then Refuse; with --server
// Err says why the plan or the server refused it). A refused mailbox is
// not there: its child's missing parent is made as any other.
func (m *Mailbox) Present() bool {
	if m.Err != nil {
		return false
	}
	switch m.Action {
	case Create, Replace, Merge, Keep:
		return true
	}
	return false
}

// ParentError is why a mailbox to create was not restored: a missing
// parent of it could not be created (docs/restore.md, "Missing parent
// folders"), the same words in both restores.
type ParentError struct {
	Parent string // the parent's name
	Err    error  // why it could not be created
}

func (e *ParentError) Error() string {
	return fmt.Sprintf("not restored: its missing parent %s could not be created (%v)", e.Parent, e.Err)
}

func (e *ParentError) Unwrap() error { return e.Err }

// MissingParentError is the problem reported under the name of a missing
// parent that could not be created for the mailbox child.
func MissingParentError(child string, err error) error {
	return fmt.Errorf("the missing parent of %s was not created: %w", child, err)
}
