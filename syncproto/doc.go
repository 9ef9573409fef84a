// Package syncproto is a client for Cyrus IMAP 3.6's replication protocol
// ("csync"), as sync_client speaks it to sync_server, and for the same
// commands tunnelled through imapd (the X-REPLICATION capability: tagged
// SYNCGET, SYNCAPPLY).
//
// A session is opened with Dial or NewClient: the server's greeting and
// capabilities, STARTTLS when the Config asks for TLS, AUTHENTICATE PLAIN,
// then COMPRESS DEFLATE when offered and wanted, and APPLY CAPABILITIES
// (SIEVE-MAILBOX) when the server offers it, as sync_client does
// (docs/cyrus/replication.md §5).
//
// Commands are dlist lines written through the Client's dlist.Writer,
// between Begin and Send, and answered by zero or more "* NAME value" data
// lines and one status line, read by Receive. Do combines the three.
// Commands may be pipelined: several Sends, then as many Receives.
//
//	err := c.Do("GET USER alice", func(w *dlist.Writer) error {
//		w.BeginLine("GET", "USER")
//		w.Atom("alice")
//		return w.EndLine()
//	}, func(name string, r *dlist.Reader) error {
//		v, err := r.ReadValue() // "* MAILBOX %(...)", "* QUOTA %(...)", ...
//		...
//	})
//
// A NO or BAD answer is an *Error carrying Cyrus's code
// (IMAP_SYNC_CHECKSUM, IMAP_MAILBOX_NONEXISTENT, ...); it leaves the
// session usable. Anything else that goes wrong (the connection drops, the
// server sends what the protocol does not allow, the context ends) breaks
// the Client: every later call returns the same error.
//
// # Keeping the server alive
//
// Cyrus 3.6's sync_server dies (SIGSEGV or SIGABRT) on some input a client
// can send (docs/cyrus/replication.md §5). The Client rules out the two that concern the
// framing:
//
//   - Literals are always non-synchronising ({N+}); a synchronising {N}
//     literal crashes sync_server.
//   - File literals are written with File, which hashes the bytes as they
//     go out and holds back the last byte until the SHA-1 matches the
//     GUID in the literal's header. On a mismatch the connection is closed
//     with the literal one byte short, so the server never sees a complete
//     file whose bytes do not match its GUID (which makes it abort in
//     APPLY MAILBOX).
//
// Checks of the content (records in UID order, every GUID available, ...)
// belong to the caller; see package remote.
package syncproto
