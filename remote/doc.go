// Package remote moves mbtool dumps to and from a running Cyrus IMAP 3.6
// server over its replication protocol (package syncproto), where the
// offline packages restore and dump work on a partition on disk.
//
// Restore replays a dump to a server. It reads the dump twice: first
// offline, checking everything a damaged or hostile dump could use to crash
// or corrupt Cyrus (every file literal against its GUID, records in UID
// order and within LAST_UID, sizes, names, the BLAKE3 trailer), and refusing
// it before connecting; then, after asking the server what exists (GET
// USER, GET MAILBOXES, GET UNIQUEIDS) and which messages it already holds
// (APPLY RESERVE), sending the missing message files and the mailboxes
// (APPLY MESSAGE, APPLY MAILBOX), each literal and record checked again as it
// goes, then seen state, subscriptions and quotas. See docs/server.md for
// the rules, and for what Cyrus 3.6's sync_server cannot survive.
//
// Dump pulls users and mailboxes (GET USER, GET FULLMAILBOX, GET FETCH,
// GET QUOTA) and writes them in exactly the form and order of an offline
// dump of the same state, so the two can be compared byte for byte.
//
// Like restore, the package maps users (--map-user), selects mailboxes,
// and never overwrites an existing mailbox unless asked to replace it.
// Its memory grows with the number of records in the dump (24 bytes each,
// to check the second reading against the first), not with their sizes.
package remote
