// Package verify checks an mbtool dump, on its own or against the live
// Cyrus partition it was taken from.
//
// Run reads a dump (plain or zstd) in one sequential pass and reports every
// problem it finds as a Finding, naming the mailbox, UID, GUID and the byte
// offset in the (uncompressed) dump where the problem lies:
//
//   - the stream parses to its end, the trailer's BLAKE3 digest matches and
//     nothing follows it, and its counts are those of the dump;
//   - every file literal's bytes hash to its GUID (SHA-1);
//   - every RECORD that is not expunged names a GUID whose file literal is
//     in the dump, and its SIZE is that literal's size;
//   - per mailbox, SYNC_CRC and SYNC_CRC_ANNOT recomputed from the records
//     (package syncrec) equal the recorded values; UIDs ascend strictly and
//     none exceeds LAST_UID; no MODSEQ exceeds HIGHESTMODSEQ;
//   - every command decodes, and no mailbox or file literal appears twice.
//
// With Options.Spool set, Run also compares the dump with the live
// partition, read-only and with shared locks only (package partition): per
// dumped mailbox, messages missing, added, with another GUID or with flags or
// MODSEQ changed; message files whose bytes no longer hash to their GUID
// (bit rot); UIDVALIDITY changed; dumped mailboxes that no longer exist, and
// mailboxes of the dumped users that are not in the dump. The live entries
// of the dumped mailboxes are found by one walk of mailboxes.db from the
// first dumped mailbox on (a dump of whole users lists its mailboxes in
// mailboxes.db order), not by a search of the skip list per mailbox; a
// name the walk does not find is looked up.
//
// Memory stays flat in the size of the dump except for one map of the GUIDs
// and sizes of the file literals seen so far (records come after their
// literals), about 40 bytes per message, and the names of the mailboxes.
// Hashing runs on all cores while reading stays sequential: the dump is
// read in 256 KiB chunks, which package dumpfile hashes (BLAKE3) on a
// goroutine of its own; the dlist reader parses them in place, and worker
// goroutines hash (SHA-1) the file literals' bytes where they lie in them,
// holding each chunk until they are done with it (dlist.Lender): no byte
// of the dump is copied in the process. The chunks held are bounded (2
// MiB); bytes that are not lent are copied into a bounded set of pooled
// buffers.
package verify
