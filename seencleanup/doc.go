// Package seencleanup removes dead records from Cyrus IMAP 3.6 seen
// databases: the "seen_cleanup" that Cyrus's own cyr_userseen -d performs.
//
// A user's seen database (seen.db, keyed by mailbox uniqueid) holds the
// user's \Seen state in mailboxes the user does not own. Since cyrus.index
// minor version 12, the owner's own \Seen state lives in the mailbox's
// index, so a record a user holds for a mailbox of their own is a leftover
// of an older Cyrus or of a migration; Cyrus never reads it again. Run lists
// those stale records and, when asked, removes them. Records of mailboxes
// that no longer exist at all (orphans) are listed apart and removed only
// on request. Records for other users' and shared mailboxes are never
// touched: bob's \Seen on alice's shared folder stays.
//
// Run is safe while Cyrus runs. It writes every record it will remove to an
// undo file first (an mbtool dump of APPLY SEEN lines, fsynced), then
// changes each affected seen database under the database's lock through
// the one writer restore uses too: a twoskip database by a transaction in
// place, as Cyrus's own writer makes one, after recovering a file a killed
// writer left unclean (partition.UpdateTwoskipFile); a flat one by a
// complete new file renamed over the old one (partition.UpdateFlatFile).
// ApplyUndo replays an undo file the same way.
//
// Each record's uniqueid is looked up in mailboxes.db by its I record
// (partition.Spool.LookupIDs), O(log n) per record, so a run holds no table
// of mailboxes: its memory is the seen dbs of at most 64 users at a time
// (fewer once their records pass 4,096), whatever the number of mailboxes.
// Those users' seen databases are found under one hold of mailboxes.db's
// shared lock, and their records looked up together, 256 under one hold,
// not one hold each. Like cyr_userseen, Run
// treats mailboxes in the deleted hierarchy (DELETED.user.alice...) as
// their owner's. Unlike it, Run goes on past mailboxes it cannot open and
// seen databases that are damaged (each is reported and left untouched),
// and keeps records of mailboxes whose index is older than version 12,
// whose seen state is still live.
//
// Waits for a seen database's lock are not bounded by the context: Cyrus
// holds those locks for milliseconds.
package seencleanup
