// Package restore writes the mailboxes of an mbtool dump into a Cyrus IMAP
// 3.6 spool, offline: no Cyrus process takes part, and Cyrus may be running
// for mailboxes that do not exist yet.
//
// A restore has two phases. The first reads the whole dump and builds every
// mailbox in a staging directory inside its target partition (the same
// file system, so that a rename publishes it): message files, hashed as
// they are read, written straight into the first mailbox that uses them
// when they are small (else into the staging directory's msg/ first,
// then renamed: pipeline.go, "Held messages") and hard-linked when one
// GUID serves several mailboxes, with their mtime set to the
// INTERNALDATE; cyrus.index version 17 built
// from the RECORDs with UIDs, MODSEQs, flags, dates and GUIDs exactly as
// dumped, no cache (cache fields 0, option NEEDS_REPACK set, so Cyrus
// rebuilds cyrus.cache the first time it opens the mailbox); and
// cyrus.annotations for per-message annotations. Nothing is visible to
// Cyrus yet, and any damage in the dump (a GUID or size mismatch, a
// truncated stream, a BLAKE3 trailer that does not match, a name that could
// escape the target) aborts the run here and removes the staging area.
// The first phase runs on two goroutines (pipeline.go): one parses and
// checks the dump and decides everything, a writer does the staging's
// file-system work in the order it is handed over, within a fixed memory
// budget; an error of either stops both, and both have finished before
// the staging area is removed or the second phase begins.
//
// The second phase starts only after the trailer has verified. It writes
// every staged mailbox's cyrus.header and index header, moves the
// metadata files a metapartition holds into a directory staged there and
// makes the lock files its groups will lock, while what the first phase
// staged is flushed; then it flushes the file systems once more for the
// metadata. Then for each group of up to
// 1,024 mailboxes (commit.go), under Cyrus's namespace locks and an
// exclusive name lock of each (docs/cyrus/locks.md §6), it renames each
// mailbox directory (and that one) into place (swapping each atomically
// with the old one for --replace), flushes the renames, adds the mailbox
// annotations to annotations.db, and registers the group's mailboxes in
// mailboxes.db by one twoskip transaction under its write lock, as
// Cyrus's own writer makes one. Registration is the moment the mailbox
// appears, whole. The per-mailbox file work of this phase runs on one
// goroutine per core, what depends on order on one (pool.go). Then quota roots (limits, and usage recomputed), other
// users' seen records (re-keyed when a mailbox got a new uniqueid) and
// subscriptions are written the way Cyrus's own writers replace those
// files, each root's or user's file on one goroutine per core, the new
// ones joined to one batch of new files and the problems reported in
// order on one (userdata.go, userFiles). Last, Cyrus's own programs derive what only Cyrus writes
// (conversations, archive placement: derivedJobs).
//
// A run killed at any point leaves the target as it was or with whole
// mailboxes registered; a directory renamed into place but not registered
// is invisible to Cyrus and is replaced by the next run, which also removes
// the dead run's staging directory.
package restore
