// Package cyruslab runs a private, throw-away Cyrus IMAP 3.6 instance for tests.
//
// An instance (a Lab) lives entirely under one directory: imapd.conf,
// cyrus.conf, sasldb2, config/ (the configdirectory), spool/ (the default
// partition) and run/ (sockets, locks, proc files, the master's pid file and
// log). Nothing of the system's Cyrus (/etc/imapd.conf, /var/lib/cyrus,
// /var/spool/cyrus) is used or changed. IMAP (and optionally sync_server)
// listen on free loopback ports and LMTP on a Unix socket, so tests in
// several packages can run their own labs at the same time.
//
// A test starts one with Start, fills it with Populate and talks to it with
// IMAP, Deliver and Tool:
//
//	lab := cyruslab.Start(t, cyruslab.Options{})
//	lab.Populate(t)
//	out := lab.Tool(t, "mbexamine", "user.alice")
//
// Start skips the test, saying why, when Cyrus is not installed (or the test
// is not running as root, which Cyrus's master needs to switch to the user
// cyrus), unless the environment sets MBTOOL_REAL_CYRUS=1, in which case the
// test fails instead. The lab is stopped and removed when the test ends; set
// MBTOOL_KEEP_LAB=1 to keep the directory of a failed test.
//
// The same operations exist without a testing.TB, returning errors (Create,
// Open, Launch, Shutdown, Fill, RunTool, Login, SendLMTP); the command
// internal/cyruslab/cmd/cyruslab uses them to run a lab for humans and scripts.
//
// The IMAP and LMTP clients are small and written for tests: they speak just
// enough of each protocol to create and inspect content, and they do not try
// to be general mail clients.
package cyruslab
