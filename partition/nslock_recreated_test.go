package partition

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mbtool/mbtool/lock"
)

// The owner's namespace lock file is removed and
// created anew (the lock directory emptied: a tmpfs, an administrator's
// clean-up) between two mailboxes of one owner. A Cyrus process holding the
// new file's lock exclusively must still exclude OpenMailbox.
func TestNamespaceLockFileRecreated(t *testing.T) {
	s, _ := openFixture(t)
	boxes := aliceBoxes(t, s)
	m, err := s.OpenMailbox(context.Background(), boxes[0])
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	path := s.Config.lockPath(namespaceLockName("alice"))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lock.TryExclusive(f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err = s.OpenMailbox(ctx, boxes[1])
	if err == nil {
		m.Close()
		t.Fatalf("%s opened while another holder has %s exclusively (stale kept descriptor)", boxes[1].Name, path)
	}
	t.Logf("refused as it should: %v", err)
	// Once the holder lets go, the new file is the one locked and kept.
	f.Close()
	for _, e := range boxes[:2] {
		m, err = s.OpenMailbox(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
}
