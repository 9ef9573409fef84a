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
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { // deliveries
		defer wg.Done()
		for i := 1; ctx.Err() == nil && i < 400; i++ {
			if err := lab.SendLMTP("carol@example.org", "alice", testMessage(i)); err != nil {
				errs <- err
				return
			}
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
	states := map[uint64]bool{}
	for i := 0; i < 8; i++ {
		data, sum := runDump(t, s, Options{Users: []string{"alice"}})
		for _, p := range sum.Problems {
			t.Errorf("dump %d: %v", i, p)
		}
		st := checkDump(t, data)
		states[st.mailboxes["user.alice"].HighestModseq] = true
	}
	cancel()
	if len(states) < 3 {
		t.Errorf("the dumps saw only %d states of user.alice: Cyrus was not writing meanwhile", len(states))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
