// Package cyrusdb reads and writes the key-value database files of Cyrus
// IMAP 3.6: the twoskip format (mailboxes.db, seen databases,
// annotations.db, cyrus.annotations) and the flat format (subscriptions).
//
// # Twoskip
//
// A twoskip file is an append-only skip list: a 64-byte header, a DUMMY
// record at offset 64 that heads every level, then records appended by
// transactions. Each record carries a CRC-32 of its head and of its key and
// value. Newer data wins by rewriting pointers in place; level 0 keeps two
// pointer slots so that the committed one survives an interrupted
// transaction. A reader takes the header's current_size as the logical end
// and ignores every pointer at or beyond it, which yields the last
// committed state even of a file a crashed writer left dirty.
//
// Twoskip reads through an io.ReaderAt and never maps the file, so a Cyrus
// recovery that truncates the file cannot fault the reader. OpenTwoskip
// takes the shared fcntl lock Cyrus readers take and holds it until Close;
// ReadTwoskip reads any io.ReaderAt without locking. Every walk checks
// every CRC it relies on, checks that keys strictly increase, and bounds
// its steps by the file size, so a corrupt file yields a *CorruptError
// naming the offset, never a panic or an endless loop.
//
// WriteTwoskip produces a fresh, clean file like a Cyrus checkpoint: records
// in key order, deterministic levels, BLANK padding where Cyrus puts it, one
// COMMIT. Real Cyrus (cyr_dbtool consistent, show, set, repack) accepts and
// updates these files.
//
// # Flat
//
// A flat file is text: one line per record, the escaped key, a TAB, the
// escaped value, LF, sorted in Cyrus's mailbox order (FlatLess). ReadFlat
// streams it; WriteFlat sorts and encodes records.
//
// Key order in twoskip files is plain byte order with a prefix sorting
// first (KeyLess); flat files use a different order (FlatLess).
package cyrusdb
