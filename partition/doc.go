// Package partition reads a Cyrus IMAP 3.6 installation on disk: the
// imapd.conf that describes it, mailboxes.db, the mailbox directories
// (cyrus.header, cyrus.index, cyrus.annotations and the message files),
// mailbox annotations (annotations.db), and the per-user seen,
// subscription and quota databases. It is the one place in mbtool that
// knows the on-disk rules; it knows nothing of dumps or replication.
//
// # Use
//
//	cfg, err := partition.LoadConfig("/etc/imapd.conf")
//	s, err := partition.Open(cfg)
//	entries, err := s.Mailboxes()
//	m, err := s.OpenMailbox(ctx, entries[0])
//	defer m.Close()
//	err = m.Records(func(r partition.Record) error {
//		f, err := m.OpenMessage(r) // <uid>. in m.DataDir
//		...
//	})
//
// # Live reads
//
// Reading is safe while Cyrus runs. OpenMailbox takes the locks Cyrus's
// own readers take, in Cyrus's order (see docs/cyrus/locks.md §5): the
// owner's namespace lock (*U*user) shared, the mailbox name lock shared,
// a fresh look at mailboxes.db, then cyrus.index shared. Under the index
// lock it copies the index header and records (to memory, or to an
// unlinked temporary file above MemoryLimit, so memory stays flat) and
// reads cyrus.header and the annotations. It then releases the index and
// namespace locks and keeps the shared name lock until Close, which keeps
// Cyrus from replacing the index or unlinking message files meanwhile.
// Every lock is an OFD fcntl lock (package lock); databases
// (mailboxes.db, seen, annotations) are read under their own short shared
// lock and never while a mailbox lock is requested. Nothing is written,
// except the empty lock files Cyrus would create too (owned like the lock
// directory).
//
// # Checks
//
// Every CRC is verified: the index header's when the mailbox is opened,
// each record's as Records returns it, and every record of the twoskip
// databases (package cyrusdb). Damage is reported as an error naming the
// file, the byte offset and, for index records, the record number and UID
// (*FileError), wrapping ErrChecksum, ErrBadFormat or ErrVersion.
// Index minor versions 12 to 17 are read; older ones carry no checksums
// and are refused.
//
// Values are those Cyrus holds in memory after reading: the index header
// gets Cyrus's read-time adjustments (an empty mailbox has option P;
// highestmodseq 0 reads as 1), with the stored values alongside. Where
// the written specs and Cyrus 3.6.1 disagree, this package follows Cyrus
// and says so where it matters.
package partition
