package cyruslab

import (
	"fmt"
	"testing"
)

// Incident helpers: what a user does to her mail that a restore is then
// asked to undo, and mail that keeps arriving meanwhile.

// Purge deletes the messages of mailbox (as user sees it, "INBOX") with
// UIDs in set and removes them for good: \Deleted, UID EXPUNGE, then
// cyr_expire -X 0 (delayed expunge purged).
func (l *Lab) Purge(t testing.TB, user, mailbox, set string) {
	t.Helper()
	c := l.IMAP(t, user)
	if _, err := c.Select(mailbox); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore(set, "+FLAGS.SILENT", `(\Deleted)`); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(set); err != nil {
		t.Fatal(err)
	}
	l.Tool(t, "cyr_expire", "-X", "0")
}

// DeliverInBackground delivers n messages to rcpt over LMTP, one after
// the other, while the caller goes on; each body holds marker and its
// number. The channel gets the first error, or nil once all are
// delivered.
func (l *Lab) DeliverInBackground(rcpt, marker string, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < n && err == nil; i++ {
			err = l.SendLMTP("carol@example.org", rcpt, []byte(fmt.Sprintf("Subject: %s %d\r\n\r\n%s %d\r\n", marker, i, marker, i)))
		}
		done <- err
	}()
	return done
}
