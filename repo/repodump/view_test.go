package repodump

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/restore"
)

// adminSession logs the lab's admin in over IMAP; the caller closes the
// session when done with it (not when the test ends: the lab's imapd
// serves at most 20 sessions at once, and a scenario of many nights opens
// one or more a night).
func adminSession(tb testing.TB, lab *cyruslab.Lab) *cyruslab.IMAPClient {
	tb.Helper()
	c, err := lab.Login(cyruslab.Admin)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// grantAdmin gives the lab's admin read rights on every mailbox of the
// spool, so that imapViews can read them (Cyrus's admins may LIST every
// mailbox but read only where an ACL lets them). It runs before the
// first night: the ACLs are part of every night's state.
func grantAdmin(tb testing.TB, lab *cyruslab.Lab, spool *partition.Spool) {
	tb.Helper()
	boxes, err := spool.Mailboxes()
	if err != nil {
		tb.Fatal(err)
	}
	c := adminSession(tb, lab)
	defer c.Close()
	for _, b := range boxes {
		if err := c.SetACL(b.Name, cyruslab.Admin, "lrswitedi"); err != nil {
			tb.Fatalf("SETACL %s: %v", b.Name, err)
		}
	}
}

// imapViews is what the lab's admin is served over IMAP
// (internal/imapcompare: LIST, ACLs, quota roots, STATUS, metadata, and
// every mailbox's EXAMINE, FETCH of every message with its bytes, SORT,
// THREAD and SEARCH), each section reduced to its SHA-256 so that the
// views of several nights of a large partition fit in memory.
func imapViews(tb testing.TB, lab *cyruslab.Lab) imapcompare.Snapshot {
	tb.Helper()
	snap, err := imapcompare.Take(lab, imapcompare.Options{NoTools: true})
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range snap {
		snap[k] = fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(v)))
	}
	return snap
}

// restoredViews writes snapshot s out whole, restores it into a fresh,
// running Cyrus and returns what IMAP shows there (imapViews); the lab
// is stopped and removed before it returns.
func (nr *nightsRun) restoredViews(tb testing.TB, s *repo.Snapshot) imapcompare.Snapshot {
	tb.Helper()
	ctx := context.Background()
	dst := cyruslab.Start(tb, cyruslab.Options{})
	defer dst.Stop(tb)
	idx, err := nr.r.LoadIndex()
	if err != nil {
		tb.Fatal(err)
	}
	defer idx.Close()
	// As restore --repo reads it (commands/repo.go).
	dr := nr.r.OpenDump(ctx, idx, s, repo.ExportOptions{ReaderRehashes: true, Unsealed: true})
	sum, err := restore.Run(ctx, openSpool(tb, dst.Conf), dr, restore.Options{Unsealed: true})
	if cerr := dr.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		tb.Fatalf("restore of snapshot %s: %v", s.ShortID(), sum.Problems)
	}
	return imapViews(tb, dst)
}

// sameViews reports every section of the view that differs between got
// and want.
func sameViews(tb testing.TB, what string, got, want imapcompare.Snapshot) bool {
	tb.Helper()
	diff := imapcompare.Diff(got, want)
	for i, d := range diff {
		if i == 10 {
			tb.Errorf("%s: and %d more sections differ", what, len(diff)-i)
			break
		}
		if d.Missing != "" {
			tb.Errorf("%s: %s", what, d)
		} else {
			tb.Errorf("%s: %s differs over IMAP", what, d.Section)
		}
	}
	return len(diff) == 0
}
