package dump

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

func testMessage(i int) []byte {
	return fmt.Appendf(nil, "From: carol@example.org\r\nTo: alice@example.org\r\nSubject: live %d\r\n"+
		"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <live-%d@example.org>\r\n\r\nbody %d\r\n", i, i, i)
}

// Dumps taken while Cyrus delivers over LMTP and flags and expunges over
// IMAP are each internally consistent: every mailbox is one committed
// state (its records give the SYNC_CRC recorded with them, every file is
// in the dump).
func TestDumpWhileCyrusWrites(t *testing.T) {
	lab := cyruslab.Start(t, cyruslab.Options{})
	lab.Populate(t)
	s := openSpool(t, lab.Conf)

	// The same bytes in three folders: one literal.
	c := lab.IMAP(t, "alice")
	same := testMessage(0)
	for _, f := range []string{"INBOX", "INBOX.Sent", "INBOX.Archive"} {
		if _, err := c.Append(f, nil, time.Unix(1704103200, 0), same); err != nil {
			t.Fatal(err)
		}
	}
	data, sum := runDump(t, s, Options{Users: []string{"alice"}})
	st := checkDump(t, data)
	var sameGUID int
	for _, boxes := range st.guidBoxes {
		if len(boxes) == 3 && boxes["user.alice"] && boxes["user.alice.Sent"] && boxes["user.alice.Archive"] {
			sameGUID++
		}
	}
	if sameGUID == 0 || len(sum.Problems) > 0 {
		t.Fatalf("message appended to three folders: %d GUIDs in all three; problems %v", sameGUID, sum.Problems)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	// delivered gets a value after each delivery Cyrus has committed: the
	// dumps wait for deliveries instead of assuming that the writers keep
	// pace with them (on a loaded machine eight dumps can be done before
	// lmtpd has delivered anything).
	const deliveries = 400
	delivered := make(chan struct{}, deliveries)
	wg.Add(2)
	go func() { // deliveries
		defer wg.Done()
		for i := 1; ctx.Err() == nil && i < deliveries; i++ {
			if err := lab.SendLMTP("carol@example.org", "alice", testMessage(i)); err != nil {
				errs <- err
				return
			}
			delivered <- struct{}{}
		}
	}()
	go func() { // flags and expunges on the same INBOX
		defer wg.Done()
		w, err := lab.Login("alice")
		if err != nil {
			errs <- err
			return
		}
		defer w.Close()
		if _, err := w.Select("INBOX"); err != nil {
			errs <- err
			return
		}
		for i := 0; ctx.Err() == nil && i < 400; i++ {
			flag := []string{`\Flagged`, `\Seen`, `$Label1`, `\Answered`}[i%4]
			if err := w.UIDStore("1:*", "+FLAGS", "("+flag+")"); err != nil {
				errs <- err
				return
			}
			if i%10 == 9 {
				if err := w.UIDStore(fmt.Sprint(40+i/10), "+FLAGS", `(\Deleted)`); err != nil {
					errs <- err
					return
				}
				if err := w.UIDExpunge(fmt.Sprint(40 + i/10)); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	// Before each dump, two deliveries that end after the previous dump:
	// the second began after that dump ended, so each dump sees a newer
	// state of INBOX than the one before, while Cyrus goes on writing.
	var last uint64
	for i := 0; i < 8; i++ {
		for len(delivered) > 0 {
			<-delivered
		}
		for range 2 {
			select {
			case <-delivered:
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(2 * time.Minute):
				t.Fatalf("dump %d: Cyrus delivered nothing in two minutes", i)
			}
		}
		data, sum := runDump(t, s, Options{Users: []string{"alice"}})
		for _, p := range sum.Problems {
			t.Errorf("dump %d: %v", i, p)
		}
		st := checkDump(t, data)
		m := st.mailboxes["user.alice"].HighestModseq
		if m <= last {
			t.Errorf("dump %d saw HIGHESTMODSEQ %d of user.alice after %d: not the state after two more deliveries", i, m, last)
		}
		last = m
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
