package restore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mbtool/mbtool/lock"
	"github.com/mbtool/mbtool/partition"
)

// groupBox is a box of a commit group as lockGroup sees it: built to be
// created, or refused.
func groupBox(name, owner, uniqueid string, refused bool) *box {
	b := &box{boxData: &boxData{name: name, owner: owner, uniqueid: uniqueid, dir: "staged", res: MailboxResult{Action: ActionCreate}}}
	if refused {
		b.res.Action = ActionRefuse
	}
	return b
}

// nsFree reports whether owner's namespace lock in target is free (it
// takes and lets go of it; OFD locks of two open files conflict within
// one process too).
func nsFree(t *testing.T, target *partition.Spool, owner string) bool {
	t.Helper()
	l, err := target.TryLockNamespace(owner, true)
	if errors.Is(err, lock.ErrWouldBlock) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	return true
}

// A group whose first mailbox was refused after the group was formed
// (its quota root changed) and whose owners run alice, bob, alice: while
// a Cyrus process holds alice's namespace lock (and may be waiting for
// bob's, as a COPY between the two users does), lockGroup must not wait
// for alice's lock while it holds bob's. It waits for bob's, the first
// lock it takes, only tries alice's and ends the group before her box.
func TestLockGroupNoWaitHoldingAnotherOwner(t *testing.T) {
	target := emptyTarget(t, "")
	held, err := target.LockNamespace(context.Background(), "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs := &restorer{ctx: ctx, spool: target}
	group := []*box{
		groupBox("user.alice", "alice", "a0000001", true),
		groupBox("user.bob", "bob", "b0000001", false),
		groupBox("user.alice.Sent", "alice", "a0000002", false),
	}
	type result struct {
		n       int
		release func()
		err     error
	}
	done := make(chan result, 1)
	go func() {
		n, release, err := rs.lockGroup(group, nil)
		done <- result{n, release, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		cancel() // lets the waiting lockGroup return
		r = <-done
		r.release()
		t.Fatal("lockGroup waited 10 s for alice's namespace lock while it held bob's: a deadlock with a Cyrus process holding alice's and waiting for bob's")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.n != 2 {
		t.Errorf("group cut at %d boxes, want 2 (before alice's busy one)", r.n)
	}
	if nsFree(t, target, "bob") {
		t.Error("bob's namespace lock is not held by the group")
	}
	r.release()
	if !nsFree(t, target, "bob") {
		t.Error("bob's namespace lock is still held after release")
	}
}

// A group cut at a box whose name lock is busy lets go of the namespace
// lock it took for that box: the group commits alice's mailbox without
// holding bob's namespace lock, which a Cyrus process of bob may be
// waiting for.
func TestLockGroupCutReleasesNamespace(t *testing.T) {
	target := emptyTarget(t, "")
	bob := groupBox("user.bob", "bob", "b0000001", false)
	held, err := target.LockMailboxName(context.Background(), bob.entry(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	rs := &restorer{ctx: context.Background(), spool: target}
	group := []*box{groupBox("user.alice", "alice", "a0000001", false), bob}
	n, release, err := rs.lockGroup(group, nil)
	defer release()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("group cut at %d boxes, want 1 (before bob's busy one)", n)
	}
	if !nsFree(t, target, "bob") {
		t.Error("the cut group still holds bob's namespace lock")
	}
	if nsFree(t, target, "alice") {
		t.Error("alice's namespace lock is not held by the group")
	}
}
