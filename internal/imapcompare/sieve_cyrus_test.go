package imapcompare_test

import (
	"strings"
	"testing"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/restore"
)

// sieveScript files mail whose subject says so into alice's Archive.
const sieveScript = "require [\"fileinto\"];\r\nif header :contains \"Subject\" \"archive me\" {\r\n  fileinto \"INBOX.Archive\";\r\n}\r\n"

// filtered delivers a message the script files into INBOX.Archive and
// says where it landed.
func filtered(t *testing.T, lab *cyruslab.Lab) string {
	t.Helper()
	msg := "From: d@example.org\r\nSubject: please archive me\r\nMessage-ID: <sieve-1@x>\r\n\r\nx\r\n"
	if err := lab.SendLMTP("d@example.org", "alice", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	c := lab.IMAP(t, "alice")
	for _, m := range []string{"INBOX.Archive", "INBOX"} {
		if _, err := c.Examine(m); err != nil {
			t.Fatal(err)
		}
		r, err := c.Command("UID", "SEARCH", "HEADER", "Message-ID", `"<sieve-1@x>"`)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 1 && len(r.Data[0].Fields) > 0 {
			return m
		}
	}
	return "nowhere"
}

// TestRealCyrusSieve: Cyrus 3.6 keeps a user's sieve scripts in the
// #sieve mailbox, as rows of the user's dav.db and as bytecode in
// sievedir. restore --server (sync_server) brings back all three, as
// Cyrus's own sync_client does: the script is listed, active, and files
// mail as on the source. Offline
// restore refuses the #sieve mailbox, in the dry run too, saying to use
// --server, and restores the rest.
func TestRealCyrusSieve(t *testing.T) {
	users := []string{"alice", "bob"}
	rep := cyruslab.Start(t, cyruslab.Options{Sieve: true, SyncPort: true})
	src := cyruslab.Start(t, cyruslab.Options{Sieve: true, ExtraConfig: syncConfig(rep)})
	src.Populate(t)
	if err := src.PutSieve("alice", "filters", sieveScript); err != nil {
		t.Fatal(err)
	}
	listed, err := src.ListSieve("alice")
	if err != nil || strings.Join(listed, "\n") != `"filters" ACTIVE` {
		t.Fatalf("source: LISTSCRIPTS %q %v", listed, err)
	}
	dumped := offlineDump(t, src)
	want := take(t, src, users...)
	if !strings.Contains(strings.Join(keys(want), "\n"), "#sieve") {
		t.Fatalf("source: no #sieve mailbox in the view")
	}

	srv := cyruslab.Start(t, cyruslab.Options{Sieve: true, SyncPort: true})
	restoreServer(t, srv, dumped)
	syncClient(t, src)
	for _, r := range []struct {
		what string
		lab  *cyruslab.Lab
	}{{"--server", srv}, {"sync_client", rep}} {
		for _, d := range imapcompare.Diff(take(t, r.lab, users...), want) {
			t.Errorf("%s: %s", r.what, d)
		}
		if got, err := r.lab.ListSieve("alice"); err != nil || strings.Join(got, "\n") != `"filters" ACTIVE` {
			t.Errorf("%s: LISTSCRIPTS %q %v", r.what, got, err)
		}
	}

	off := cyruslab.Start(t, cyruslab.Options{Sieve: true})
	dry := restoreRun(t, off, dumped, true)
	real := restoreRun(t, off, dumped, false)
	if plan(dry) != plan(real) || real.Count(restore.ActionRefuse) != 1 ||
		!strings.Contains(plan(real), "#sieve") || !strings.Contains(plan(real), "restore --server") {
		t.Errorf("offline: the dry run said\n%s\nthe restore did\n%s", plan(dry), plan(real))
	}
	// The rest is as on the source.
	withoutSieve := func(s imapcompare.Snapshot) imapcompare.Snapshot {
		out := imapcompare.Snapshot{}
		for k, v := range s {
			if strings.Contains(k, "#sieve") {
				continue
			}
			var keep []string
			for _, l := range strings.Split(v, "\n") {
				if !strings.Contains(l, "#sieve") {
					keep = append(keep, l)
				}
			}
			out[k] = strings.Join(keep, "\n")
		}
		return out
	}
	for _, d := range imapcompare.Diff(withoutSieve(take(t, off, users...)), withoutSieve(want)) {
		t.Errorf("offline: %s", d)
	}

	// The filter files mail after --server as on the source.
	for _, l := range []*cyruslab.Lab{src, srv, rep} {
		if got := filtered(t, l); got != "INBOX.Archive" {
			t.Errorf("%s: the filtered message landed in %s", l.Dir, got)
		}
	}
}

func keys(s imapcompare.Snapshot) []string {
	var out []string
	for k := range s {
		out = append(out, k)
	}
	return out
}
