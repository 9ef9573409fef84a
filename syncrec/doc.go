// Package syncrec maps Cyrus IMAP 3.6 mailboxes to and from the dlist
// records of its replication protocol, and computes the SYNC_CRC and
// SYNC_CRC_ANNOT checksums that replication uses to prove two copies equal.
//
// It is the one place where the rules of an APPLY MAILBOX live: which keys
// Cyrus sends and in what order, how a RECORD is spelled, how flags are
// named and ordered, which index fields travel as virtual annotations, and
// how the two CRCs are computed (docs/cyrus/replication.md §3, §4).
// dump writes through it, and restore and verify read through it, so a dump
// and its checks cannot disagree about the format.
//
// The package knows dlist but no disk layout: the types here are plain
// values, filled from a Cyrus index by the dump and written to one by the
// restore.
package syncrec
