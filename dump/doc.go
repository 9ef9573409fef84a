// Package dump serialises whole Cyrus mailboxes from a live partition into
// an mbtool dump (see package dumpfile and docs/format.md).
//
// Each mailbox is read as one committed state while Cyrus keeps running
// (partition.Spool.OpenMailbox takes the locks Cyrus's own readers take),
// every message file is re-hashed as it is read and embedded once per dump,
// before the first mailbox that references it. A file that is missing or
// whose SHA-1 is not its GUID is reported by mailbox and UID, is not
// embedded, and the run goes on; Run returns the problems in its Summary.
//
// Hashing runs on all cores while the output stays one sequential stream:
// workers read and hash message files ahead of the writer, within a fixed
// memory budget, and the writer emits them in order. The read-ahead spans
// mailboxes: a prefetcher opens the next mailboxes (locks, index, header,
// annotations) and has their files read while the current one is written,
// so that a partition of many small mailboxes keeps both cores busy too.
package dump
