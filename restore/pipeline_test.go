package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
)

// noLeak fails t if the goroutines that were running at base are not
// all that run within a second (the read phase's writer must be joined
// on every path).
func noLeak(t *testing.T, base int) {
	t.Helper()
	for i := 0; ; i++ {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if i == 100 {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before the run:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noStaging fails t if a staging directory is left in a partition.
func noStaging(t *testing.T, s *partition.Spool) {
	t.Helper()
	for _, p := range s.Config.Partitions {
		m, _ := filepath.Glob(filepath.Join(p, stagePrefix+"*"))
		if len(m) > 0 {
			t.Errorf("staging directory left: %v", m)
		}
	}
}

// TestWriterErrors: an error of the read phase's writer (pipeline.go) is
// the run's error, not lost: a message file whose write fails in the
// middle of the dump fails the run with an error naming the message and
// the dump offset of its APPLY MESSAGE, as before the pipeline (of its
// mailbox's APPLY MAILBOX, and its UID, when it is written straight into
// that mailbox: the test checks both ways); so does
// a failure of any operation of the writer (a mailbox's directory, index,
// renames, ...), and a run cancelled half way. Each leaves the target as
// it was, no staging directory, and no goroutine behind.
func TestWriterErrors(t *testing.T) {
	dump, _ := fixtureDump(t, []string{"alice", "bob"})
	errFault := errors.New("injected fault")
	// Every message to the writer, none written by the parser when the
	// writer is behind: the same operations, counted alike, every run.
	pipeSteal = false
	defer func() { pipeSteal = true }()

	t.Run("message", func(t *testing.T) {
		// A message no mailbox uses goes to msg/ at the end of the dump,
		// after the one its mailbox holds is written there.
		const d = 1700000000
		unused := heldDump(t, []heldLine{
			{msgs: []int{1, 2}, part: "default"},
			{box: "user.mallory", part: "default", recs: []heldRec{{2, d}}},
		})
		kinds := map[bool]bool{} // to msg/: seen
		for _, c := range []struct {
			dump []byte
			k    int
		}{{dump, 1}, {dump, 3}, {dump, 8}, {unused, 1}, {unused, 2}} {
			target := emptyTarget(t, "")
			before := digest(t, target)
			base := runtime.NumGoroutine()
			n := 0
			var failed guid.GUID
			var at string
			writeFault = func(g guid.GUID, path string) error {
				if n++; n == c.k {
					failed, at = g, path
					return errFault
				}
				return nil
			}
			_, err := run(t, target, c.dump, Options{})
			writeFault = nil
			if n < c.k {
				t.Fatalf("the dump has %d message files, fewer than %d", n, c.k)
			}
			if !errors.Is(err, errFault) {
				t.Fatalf("message %d failing: run's error %v", c.k, err)
			}
			// Written to msg/: its APPLY MESSAGE's error; into its
			// mailbox: the mailbox's, with the UID.
			wants := []string{"message " + failed.String() + ": staging ", "dump offset ", ": APPLY MAILBOX: mailbox ", ": UID "}
			toMsg := filepath.Base(filepath.Dir(at)) == "msg"
			if toMsg {
				wants = append(wants[:2], ": APPLY MESSAGE: ")
			}
			kinds[toMsg] = true
			for _, want := range wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			noLeak(t, base)
			noStaging(t, target)
			sameDigest(t, before, digest(t, target))
		}
		if !kinds[true] || !kinds[false] {
			t.Errorf("failed writes to msg/ and into a mailbox: %v; want both", kinds)
		}
	})

	t.Run("operation", func(t *testing.T) {
		// How many operations a whole run queues.
		total := 0
		pipeTestHook = func() error { total++; return nil }
		if _, err := run(t, emptyTarget(t, ""), dump, Options{}); err != nil {
			pipeTestHook = nil
			t.Fatal(err)
		}
		if total < 20 {
			pipeTestHook = nil
			t.Fatalf("only %d operations queued", total)
		}
		for _, k := range []int{1, 2, total / 3, total / 2, total - 1, total} {
			target := emptyTarget(t, "")
			before := digest(t, target)
			base := runtime.NumGoroutine()
			n := 0
			pipeTestHook = func() error {
				if n++; n == k {
					return fmt.Errorf("operation %d: %w", k, errFault)
				}
				return nil
			}
			_, err := run(t, target, dump, Options{})
			pipeTestHook = nil
			if !errors.Is(err, errFault) || !strings.HasPrefix(err.Error(), "dump offset ") {
				t.Fatalf("operation %d of %d failing: run's error %v", k, total, err)
			}
			noLeak(t, base)
			noStaging(t, target)
			sameDigest(t, before, digest(t, target))
		}
	})

	t.Run("cancel", func(t *testing.T) {
		target := emptyTarget(t, "")
		before := digest(t, target)
		base := runtime.NumGoroutine()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := Run(ctx, target, bytes.NewReader(dump), Options{Owner: &testOwner, Progress: func(p Progress) {
			if p.Messages == 5 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled run: %v", err)
		}
		noLeak(t, base)
		noStaging(t, target)
		sameDigest(t, before, digest(t, target))
	})
}

// TestNoPipeline: the read phase without its writer (every operation on
// the parsing goroutine) restores the same as with it.
func TestNoPipeline(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice"})
	noPipeline = true
	defer func() { noPipeline = false }()
	target := emptyTarget(t, "")
	if _, err := run(t, target, dump, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range fixtureAlice {
		compareMailbox(t, src, name, target, name, same)
	}
}

// TestLaneWaits: an operation that reads what another lane's operation
// made (stageOp.after) runs only once that one has run, however far
// behind its lane is; the operations of one lane run in their order; and
// the run's error is that of the earliest operation that failed (by the
// parser's order), as with one writer, with every operation before it
// run and none after it but those that close.
func TestLaneWaits(t *testing.T) {
	if pipeLanes() < 2 {
		t.Skip("one core: one lane")
	}
	t.Run("after", func(t *testing.T) {
		p := newPipeline(context.Background())
		var made, sawMade atomic.Bool
		var order []int
		slow := p.nextSeq()
		p.send(0, stageOp{fn: func() error {
			time.Sleep(100 * time.Millisecond)
			made.Store(true)
			return nil
		}})
		for i := range 3 {
			p.send(0, stageOp{fn: func() error { order = append(order, i); return nil }})
		}
		p.send(1, stageOp{after: opRef{lane: 0, seq: slow}, fn: func() error {
			sawMade.Store(made.Load())
			return nil
		}})
		if err := p.finish(false); err != nil {
			t.Fatal(err)
		}
		if !sawMade.Load() {
			t.Error("the operation of lane 1 ran before the one of lane 0 it waits for")
		}
		if fmt.Sprint(order) != "[0 1 2]" {
			t.Errorf("lane 0 ran its operations in the order %v", order)
		}
	})
	t.Run("source queued first", func(t *testing.T) {
		// The operation waited for is still in the batch the parser
		// fills for lane 0 when lane 1 gets enough to fill its queue:
		// send hands lane 0 its batch first, or the parser would wait
		// for lane 1, which waits for lane 0's batch, for ever.
		p := newPipeline(context.Background())
		done := make(chan error, 1)
		go func() {
			src := p.nextSeq()
			p.send(0, stageOp{fn: func() error { return nil }})
			for range (pipeDepth + 3) * pipeBatch {
				if err := p.send(1, stageOp{after: opRef{lane: 0, seq: src}, fn: func() error { return nil }}); err != nil {
					done <- err
					return
				}
			}
			done <- p.finish(false)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the parser and lane 1 wait for each other")
		}
	})
	t.Run("earliest error", func(t *testing.T) {
		p := newPipeline(context.Background())
		errA, errB := errors.New("A"), errors.New("B")
		var ranAfter, closed atomic.Bool
		p.send(0, stageOp{fn: func() error {
			time.Sleep(100 * time.Millisecond) // lane 1 fails first
			return errA
		}})
		p.send(1, stageOp{fn: func() error { return errB }})
		p.send(1, stageOp{fn: func() error { ranAfter.Store(true); return nil }})
		p.send(1, stageOp{always: true, fn: func() error { closed.Store(true); return nil }})
		err := p.finish(false)
		if !errors.Is(err, errA) {
			t.Errorf("run's error %v, want the earliest operation's, %v", err, errA)
		}
		if ranAfter.Load() {
			t.Error("an operation after the failed ones ran")
		}
		if !closed.Load() {
			t.Error("a closing operation after the error did not run")
		}
	})
	t.Run("earlier runs after a later error", func(t *testing.T) {
		// The parser stops at the later error; the operations queued
		// before it still run, and the earlier error is the run's.
		p := newPipeline(context.Background())
		errA, errB := errors.New("A"), errors.New("B")
		var ranEarlier atomic.Bool
		p.send(0, stageOp{fn: func() error { time.Sleep(50 * time.Millisecond); return nil }})
		p.send(0, stageOp{fn: func() error { ranEarlier.Store(true); return errA }})
		p.send(1, stageOp{fn: func() error { return errB }})
		p.flushAll()
		for p.failed() == nil {
			time.Sleep(time.Millisecond)
		}
		err := p.finish(true)
		if !ranEarlier.Load() || !errors.Is(err, errA) {
			t.Errorf("ran the earlier operation: %v; run's error %v, want %v", ranEarlier.Load(), err, errA)
		}
	})
}
