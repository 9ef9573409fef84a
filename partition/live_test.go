package partition

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// checkSnapshot verifies that a snapshot is one committed state: the
// header's counters equal what its records add up to, every record CRC is
// good, the records fill num_records, and every live record's message file
// exists (files are linked before their record and unlinked only under the
// exclusive name lock, which the open Mailbox excludes).
func checkSnapshot(m *Mailbox) error {
	h := m.Index
	var n, exists, deleted, answered, flagged, unseen uint32
	var used, maxModseq uint64
	var maxUID uint32
	err := m.Records(func(r Record) error {
		n++
		maxUID = r.UID
		maxModseq = max(maxModseq, r.Modseq)
		if r.Expunged() {
			return nil
		}
		exists++
		used += uint64(r.Size)
		if r.Has(FlagDeleted) {
			deleted++
		}
		if r.Has(FlagAnswered) {
			answered++
		}
		if r.Has(FlagFlagged) {
			flagged++
		}
		if !r.Has(FlagSeen) {
			unseen++
		}
		if fi, err := os.Stat(m.MessagePath(r)); err != nil || fi.Size() != int64(r.Size) {
			return fmt.Errorf("uid %d: message file: %v", r.UID, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n != h.NumRecords || exists != h.Exists || deleted != h.Deleted || answered != h.Answered ||
		flagged != h.Flagged || unseen != h.Unseen || used != h.QuotaMailboxUsed ||
		maxModseq > h.HighestModseq || maxUID > h.LastUID {
		return fmt.Errorf("records: n %d exists %d deleted %d answered %d flagged %d unseen %d used %d modseq %d uid %d; header %+v",
			n, exists, deleted, answered, flagged, unseen, used, maxModseq, maxUID, h)
	}
	if m.Header.FileCRC != h.HeaderFileCRC {
		return fmt.Errorf("cyrus.header CRC %08x, index says %08x", m.Header.FileCRC, h.HeaderFileCRC)
	}
	return nil
}

// liveConsistency reads user.alice over and over for d while Cyrus
// delivers to it over LMTP and toggles flags over IMAP: every snapshot
// must be internally consistent. It changes the lab's content.
func liveConsistency(t *testing.T, lab *cyruslab.Lab, s *Spool, d time.Duration) {

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var delivered, stored atomic.Int64
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			msg := fmt.Sprintf("From: carol@example.org\r\nTo: alice@example.org\r\n"+
				"Subject: live %d\r\nMessage-ID: <live-%d@example.org>\r\n"+
				"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody %d\r\n", i, i, i)
			if err := lab.SendLMTP("carol@example.org", "alice", []byte(msg)); err != nil {
				errs <- err
				return
			}
			delivered.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		c, err := lab.Login("alice")
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		if _, err := c.Select("INBOX"); err != nil {
			errs <- err
			return
		}
		for i := 0; ctx.Err() == nil; i++ {
			op := "+FLAGS"
			if i%2 == 1 {
				op = "-FLAGS"
			}
			if err := c.UIDStore("1:*", op, `(\Flagged \Seen)`); err != nil {
				errs <- err
				return
			}
			stored.Add(1)
		}
	}()

	e, err := s.Lookup("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	states := map[uint64]bool{}
	snapshots := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); snapshots++ {
		octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := s.OpenMailbox(octx, e)
		ocancel()
		if err != nil {
			t.Fatal(err)
		}
		err = checkSnapshot(m)
		states[m.Index.HighestModseq] = true
		m.Close()
		if err != nil {
			t.Fatalf("snapshot %d: %v", snapshots, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d snapshots, %d distinct states; meanwhile %d deliveries, %d stores",
		snapshots, len(states), delivered.Load(), stored.Load())
	if len(states) < 5 {
		t.Errorf("only %d distinct states in %d snapshots: the writers did not run", len(states), snapshots)
	}
}
