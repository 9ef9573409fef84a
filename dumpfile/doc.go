// Package dumpfile reads and writes mbtool's dump files: a header line, a
// sequence of Cyrus replication commands, and a self-checking trailer line.
//
// A dump is plain dlist text (Cyrus 3.6 replication protocol), optionally
// compressed with zstd as a whole:
//
//	MBTOOL HEADER %(FORMAT 1 CREATED 1795877546 HOST mail1.example.org MBTOOL v1.0.0 INDEXVERSION 17)
//	APPLY MESSAGE (%{default 9a0b...c3 2211}<2211 bytes> %{default ...})
//	APPLY MAILBOX %(UNIQUEID ... MBOXNAME user.alice ... RECORD (%(UID 1 ...) ...))
//	APPLY QUOTA %(ROOT user.alice LIMIT 512000 STORAGE 512000 MODSEQ 68)
//	APPLY SUB %(USERID alice MBOXNAME user.alice.Sent)
//	APPLY SEEN %(USERID bob UNIQUEID ... LASTREAD ... SEENUIDS 1:2)
//	MBTOOL TRAILER %(MAILBOXES 9 MESSAGES 57 BYTES 2014216 BLAKE3 <64 hex digits>)
//
// Every line ends in CRLF. The header and trailer are dlist lines too, with
// the verb MBTOOL, which no Cyrus server knows: a replay to a sync_server
// skips them. The trailer counts the APPLY MAILBOX lines, the file literals
// and their bytes, and carries the BLAKE3-256 digest of every byte of the
// (uncompressed) stream before the trailer line, header included. Nothing
// may follow the trailer. A file whose first four bytes are the zstd magic
// (28 B5 2F FD) is decompressed first; the digest is over the dlist text.
//
// See docs/format.md for the whole format and the order of commands.
package dumpfile
