package cyruslab

import (
	"os"
	"testing"
)

// EnvRequire is the environment variable that turns "skip without Cyrus"
// into a test failure when set to 1 (CI sets it).
const EnvRequire = "MBTOOL_REAL_CYRUS"

// EnvKeep is the environment variable that, set to 1, keeps the directory
// of a lab whose test failed, for inspection.
const EnvKeep = "MBTOOL_KEEP_LAB"

// Require skips the test, saying why, when this machine cannot run a lab,
// unless MBTOOL_REAL_CYRUS=1, in which case the test fails.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%v (and %s=1)", err, EnvRequire)
		}
		t.Skip(err)
	}
}

// Start creates a lab in a fresh directory and starts it, or skips the test
// as Require does. The directory is made under os.TempDir (or /var/tmp, or
// /tmp: the first one the user cyrus can reach), because t.TempDir may sit
// below a directory only root can enter. When the test ends the lab is
// stopped and its directory removed (kept for a failed test if
// MBTOOL_KEEP_LAB=1).
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	Require(t)
	l, err := Create(TempDir(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	l.Start(t)
	return l
}

// TempDir returns a fresh, empty 0755 directory that the user cyrus can
// reach, made as Start makes a lab's, and removes it when the test ends
// (kept for a failed test if MBTOOL_KEEP_LAB=1). It fails the test if no
// such directory can be made, and skips it as Require does.
func TempDir(t testing.TB) string {
	t.Helper()
	Require(t)
	dir, err := NewTempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv(EnvKeep) == "1" {
			t.Logf("cyruslab: keeping %s (%s=1)", dir, EnvKeep)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cyruslab: %v", err)
		}
	})
	return dir
}

// Start starts the lab's master again (after Stop, or a lab from Open) and
// stops it when the test ends.
func (l *Lab) Start(t testing.TB) {
	t.Helper()
	if err := l.Launch(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Shutdown(); err != nil {
			t.Error(err)
		}
	})
}

// Stop stops the lab's master and waits until every Cyrus process of the
// lab has exited, so its files are quiescent.
func (l *Lab) Stop(t testing.TB) {
	t.Helper()
	if err := l.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// Tool runs a Cyrus tool as the user cyrus with -C Conf and returns its
// stdout; it fails the test if the tool fails. See RunTool.
func (l *Lab) Tool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := l.RunTool(nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Populate fills the lab with the standard content (see Fill), failing the
// test on error.
func (l *Lab) Populate(t testing.TB) {
	t.Helper()
	if err := l.Fill(); err != nil {
		t.Fatal(err)
	}
}

// IMAP returns a client logged in as user (Admin for the admin) with the
// lab's password, logged out when the test ends.
func (l *Lab) IMAP(t testing.TB, user string) *IMAPClient {
	t.Helper()
	c, err := l.Login(user)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Deliver delivers msg to rcpt (a user name such as "alice", or
// "alice+Sent") over LMTP, failing the test on error.
func (l *Lab) Deliver(t testing.TB, rcpt string, msg []byte) {
	t.Helper()
	if err := l.SendLMTP("carol@example.org", rcpt, msg); err != nil {
		t.Fatal(err)
	}
}
