package repodump

import (
	"context"
	"encoding/binary"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/restore"
	"github.com/zeebo/blake3"
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

// imapViews is what the lab's admin sees over IMAP of every mailbox, one
// digest per mailbox: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and each
// message's UID, flags (but \Recent, which is per session), INTERNALDATE,
// RFC822.SIZE, MODSEQ and bytes. One mailbox's messages are held at a
// time.
func imapViews(tb testing.TB, lab *cyruslab.Lab) map[string][32]byte {
	tb.Helper()
	c := adminSession(tb, lab)
	defer c.Close()
	list, err := c.List("", "*")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][32]byte{}
	for _, e := range list {
		if hasAttr(e.Attrs, `\Noselect`) || hasAttr(e.Attrs, `\NonExistent`) {
			continue
		}
		m, err := c.Examine(e.Name)
		if err != nil {
			tb.Fatalf("EXAMINE %s: %v", e.Name, err)
		}
		h := blake3.New()
		num := func(x uint64) { h.Write(binary.BigEndian.AppendUint64(nil, x)) }
		str := func(s string) { num(uint64(len(s))); io.WriteString(h, s) }
		num(uint64(m.UIDValidity))
		num(uint64(m.UIDNext))
		num(m.HighestModSeq)
		if m.Exists > 0 {
			msgs, err := c.UIDFetch("1:*", "(FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[])")
			if err != nil {
				tb.Fatalf("FETCH %s: %v", e.Name, err)
			}
			for _, msg := range msgs {
				var flags []string
				for _, f := range msg.Flags {
					if !strings.EqualFold(f, `\Recent`) {
						flags = append(flags, f)
					}
				}
				sort.Strings(flags)
				num(uint64(msg.UID))
				str(strings.Join(flags, " "))
				str(msg.InternalDate.UTC().String())
				num(uint64(msg.Size))
				num(msg.ModSeq)
				str(string(msg.Body))
			}
		}
		out[e.Name] = [32]byte(h.Sum(nil))
	}
	return out
}

func hasAttr(attrs []string, a string) bool {
	for _, x := range attrs {
		if strings.EqualFold(x, a) {
			return true
		}
	}
	return false
}

// restoredViews writes snapshot s out whole, restores it into a fresh,
// running Cyrus and returns what IMAP shows there (imapViews); the lab
// is stopped and removed before it returns.
func (nr *nightsRun) restoredViews(tb testing.TB, s *repo.Snapshot) map[string][32]byte {
	tb.Helper()
	ctx := context.Background()
	dst := cyruslab.Start(tb, cyruslab.Options{})
	defer dst.Stop(tb)
	idx, err := nr.r.LoadIndex()
	if err != nil {
		tb.Fatal(err)
	}
	defer idx.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := nr.r.WriteDump(ctx, idx, s, pw, repo.ExportOptions{})
		pw.CloseWithError(err)
	}()
	sum, err := restore.Run(ctx, openSpool(tb, dst.Conf), pr, restore.Options{})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		tb.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		tb.Fatalf("restore of snapshot %s: %v", s.ShortID(), sum.Problems)
	}
	return imapViews(tb, dst)
}

// sameViews reports every mailbox whose view differs between got and want.
func sameViews(tb testing.TB, what string, got, want map[string][32]byte) bool {
	tb.Helper()
	ok := true
	for name, w := range want {
		if g, found := got[name]; !found {
			tb.Errorf("%s: mailbox %s missing", what, name)
			ok = false
		} else if g != w {
			tb.Errorf("%s: mailbox %s differs over IMAP", what, name)
			ok = false
		}
	}
	for name := range got {
		if _, found := want[name]; !found {
			tb.Errorf("%s: mailbox %s not there on that night", what, name)
			ok = false
		}
	}
	return ok
}
