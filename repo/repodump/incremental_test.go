package repodump

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/repo"
)

// boxes returns the mailbox entries of a user's state, by name.
func boxes(t *testing.T, r *repo.Repo, u repo.UserEntry) map[string]repo.BoxEntry {
	t.Helper()
	m := map[string]repo.BoxEntry{}
	if err := r.Boxes(u, func(e repo.BoxEntry) error { m[e.Name] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

// header returns the index header of a mailbox of the spool.
func header(t *testing.T, s *partition.Spool, name string) partition.IndexHeader {
	t.Helper()
	e, err := s.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.OpenMailboxIf(context.Background(), e, func(*partition.Mailbox) (bool, error) { return false, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return m.Index
}

func generation(t *testing.T, s *partition.Spool, name string) uint32 {
	return header(t, s, name).Generation
}

func indexVersion(t *testing.T, s *partition.Spool, name string) uint32 {
	return header(t, s, name).MinorVersion
}

// inboxBytes adds up the sizes of the box files of the users' INBOXes in
// a snapshot.
func inboxBytes(t *testing.T, dir string, r *repo.Repo, s *repo.Snapshot) int64 {
	t.Helper()
	var n int64
	for _, u := range s.Users {
		if e, ok := boxes(t, r, u)["user."+u.Name]; ok {
			fi, err := os.Stat(filepath.Join(dir, "states", e.Box[:2], e.Box))
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
	}
	return n
}

// Nights on a live Cyrus whose INBOXes change between them (new,
// expunged and flagged messages through IMAP, then cyr_expire, which
// purges the expunged records and repacks the index: a new generation):
// an unchanged mailbox keeps its box (nothing of it is read), a changed
// one gets a delta box on the first night's, which had every record's
// cache record (CACHED), and every user written out is byte for byte the
// standalone dump of that night, before and after a prune.
func TestIncrementalNights(t *testing.T) {
	ctx := context.Background()
	lab := cyruslab.Start(t, cyruslab.Options{})
	spool := openSpool(t, lab.Conf)
	if _, err := gen.Restore(ctx, spool, gen.Options{Seed: 3, Messages: 3000, PerMailbox: 150}); err != nil {
		t.Fatal(err)
	}
	// The INBOXes that will change are read once before the first
	// night, as a live server's have been (see warm).
	warm(t, lab, spool)
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := repo.OpenDirRepo(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var first map[string]map[string]repo.BoxEntry
	var last *repo.Snapshot
	for n := 1; n <= 3; n++ {
		if n > 1 {
			day(t, lab, spool, 3000, 2, rng, n)
		}
		s := openSpool(t, lab.Conf)
		at := night.AddDate(0, 0, n)
		sum, err := Run(ctx, s, r, Options{All: true, Host: "h", Version: "v", Now: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Problems) > 0 || len(sum.Skipped) > 0 || sum.Users < 2 {
			t.Fatalf("night %d: %+v", n, sum)
		}
		last = sum.Snapshot
		t.Logf("night %d: the repository grew to %d bytes; INBOX boxes %d bytes", n, dirBytes(dir), inboxBytes(t, dir, r, sum.Snapshot))
		now := map[string]map[string]repo.BoxEntry{}
		for _, u := range sum.Snapshot.Users {
			if u.Name == repo.SharedName {
				continue // TestExportGenerated
			}
			now[u.Name] = boxes(t, r, u)
			if got, want := export(t, r, sum.Snapshot, u.Name), standaloneAt(t, s, at, u.Name); !bytes.Equal(got, want) {
				os.WriteFile("/tmp/incr-got", got, 0o644)
				os.WriteFile("/tmp/incr-want", want, 0o644)
				t.Fatalf("night %d: user %s writes out differently from its standalone dump (%d bytes, %d)", n, u.Name, len(got), len(want))
			}
		}
		if n == 1 {
			first = now
			for user, bs := range now {
				for _, e := range bs {
					if e.Base != "" {
						t.Errorf("night 1: %s is a delta", e.Name)
					}
					// warm had Cyrus give the INBOXes their cache records.
					if e.Name == "user."+user && e.Cached != indexVersion(t, s, e.Name) {
						t.Errorf("night 1: %s: CACHED %d, want its index version", e.Name, e.Cached)
					}
				}
			}
			continue
		}
		for user, bs := range now {
			for name, e := range bs {
				was := first[user][name]
				if inbox := name == "user."+user; inbox && generation(t, s, name) == uint32(was.Generation) {
					t.Errorf("night %d: %s: still generation %d: the day's cyr_expire did not repack it", n, name, was.Generation)
				}
				switch inbox := name == "user."+user; {
				case inbox && (e.Base != was.Box || e.Delta == 0 || e.Delta > e.Records/4):
					t.Errorf("night %d: %s: box %s base %s, %d of %d records; want a small delta on %s",
						n, name, e.Box[:8], e.Base, e.Delta, e.Records, was.Box[:8])
				case !inbox && e != was:
					t.Errorf("night %d: %s changed its entry: %+v, was %+v", n, name, e, was)
				}
			}
		}
	}
	cs, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || len(cs.Findings) > 0 {
		t.Fatalf("verify --repo: %v %v", err, cs.Findings)
	}
	want := export(t, r, last)
	if _, err := r.Prune(ctx, repo.PruneOptions{Policy: repo.Policy{Last: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := export(t, r, last); !bytes.Equal(got, want) {
		t.Errorf("the last night writes out differently after a prune")
	}
	cs, err = r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil || len(cs.Findings) > 0 || cs.UnreferencedStates > 0 {
		t.Fatalf("verify --repo after prune: %v %v, %d unreferenced", err, cs.Findings, cs.UnreferencedStates)
	}
}

// A mailbox whose records had no cache records on a night (generated, or
// restored by mbtool, and not opened by Cyrus since) gets them when Cyrus
// first opens it: a repack, which gives the records their cache records
// without new MODSEQs and the index a new generation. The next night
// stores it whole, not as an empty delta on a base without the cache
// records: written out, every user is that night's standalone dump.
func TestCacheAddedByRepack(t *testing.T) {
	ctx := context.Background()
	lab := cyruslab.Start(t, cyruslab.Options{})
	spool := openSpool(t, lab.Conf)
	if _, err := gen.Restore(ctx, spool, gen.Options{Seed: 6, Messages: 400, PerMailbox: 100}); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	for n := 1; n <= 2; n++ {
		if n == 2 {
			warm(t, lab, spool) // Cyrus opens the INBOXes: repack
		}
		s := openSpool(t, lab.Conf)
		at := night.AddDate(0, 0, n)
		sum, err := Run(ctx, s, r, Options{All: true, Host: "h", Version: "v", Now: at})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range sum.Snapshot.Users {
			if u.Name == repo.SharedName {
				continue
			}
			if got, want := export(t, r, sum.Snapshot, u.Name), standaloneAt(t, s, at, u.Name); !bytes.Equal(got, want) {
				t.Errorf("night %d: user %s writes out differently from its standalone dump (%d bytes, %d)", n, u.Name, len(got), len(want))
			}
			for name, e := range boxes(t, r, u) {
				if n == 1 && e.Cached != 0 {
					t.Errorf("night 1: %s: CACHED %d, but its records had no cache records", name, e.Cached)
				}
				if n == 2 && e.Base != "" {
					t.Errorf("night 2: %s is a delta on the box of before the repack", name)
				}
			}
		}
	}
}

// Archiving (archive_enabled, cyr_expire -A) moves a record's file and
// cache record to the archive partition without a new MODSEQ, and
// repacks the index (imap/mailbox.c mailbox_archive): a dump carries no
// cache record for an archived record. A mailbox whose base had every
// record's cache record is then stored whole, not as a delta that would
// keep the base's cache records: written out, every user is that
// night's standalone dump.
func TestCacheLostByArchive(t *testing.T) {
	ctx := context.Background()
	arch := cyruslab.TempDir(t)
	if err := cyruslab.Chown(arch); err != nil {
		t.Fatal(err)
	}
	// archive_after far off: restore archives nothing (restore/derived.go),
	// the cyr_expire -A 0 of the second day everything.
	lab := cyruslab.Start(t, cyruslab.Options{ExtraConfig: "archive_enabled: 1\narchive_after: 36500d\narchivepartition-default: " + arch})
	spool := openSpool(t, lab.Conf)
	if _, err := gen.Restore(ctx, spool, gen.Options{Seed: 7, Messages: 400, PerMailbox: 100}); err != nil {
		t.Fatal(err)
	}
	warm(t, lab, spool)
	r := newRepo(t)
	var first map[string]repo.BoxEntry
	for n := 1; n <= 2; n++ {
		if n == 2 {
			lab.Tool(t, "cyr_expire", "-A", "0")
		}
		s := openSpool(t, lab.Conf)
		at := night.AddDate(0, 0, n)
		sum, err := Run(ctx, s, r, Options{All: true, Host: "h", Version: "v", Now: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Problems) > 0 || len(sum.Skipped) > 0 {
			t.Fatalf("night %d: %+v", n, sum)
		}
		inboxes := 0
		now := map[string]repo.BoxEntry{}
		for _, u := range sum.Snapshot.Users {
			if u.Name == repo.SharedName {
				continue
			}
			if got, want := export(t, r, sum.Snapshot, u.Name), standaloneAt(t, s, at, u.Name); !bytes.Equal(got, want) {
				t.Errorf("night %d: user %s writes out differently from its standalone dump (%d bytes, %d)", n, u.Name, len(got), len(want))
			}
			e, ok := boxes(t, r, u)["user."+u.Name]
			if !ok {
				continue
			}
			inboxes++
			now[e.Name] = e
			switch {
			case n == 1 && e.Cached == 0:
				t.Errorf("night 1: %s: no CACHED after warm", e.Name)
			case n == 2 && generation(t, s, e.Name) == uint32(first[e.Name].Generation):
				t.Errorf("night 2: %s: still generation %d: nothing archived", e.Name, e.Generation)
			case n == 2 && e.Base != "":
				t.Errorf("night 2: %s is a delta on a base with the cache records of its archived records", e.Name)
			}
		}
		if inboxes == 0 {
			t.Fatalf("night %d: no INBOX", n)
		}
		first = now
	}
}

// Archiving in the same index generation: cyr_expire -A moves the cache
// records of the records it archives without a new MODSEQ and commits the
// index; the repack that gives it a new generation comes at its close,
// once it has the exclusive name lock (imap/mailbox.c mailbox_close),
// which it waits for while a reader holds it. A cyr_expire stopped then
// (a time limit, a shutdown) leaves the mailbox archived in the same
// generation. Night 1 stores an INBOX whose unflagged records are
// archived already (no cache records: the box is not CACHED); then a
// message is appended and the flagged records are archived too
// (archive_keepflagged off) by a cyr_expire stopped before its repack.
// Night 2 sees the same generation: a delta would keep the flagged
// records' cache records of night 1 (before the fix: written out 16 KB
// larger than the standalone dump), so the INBOX is stored whole and
// written out is that night's standalone dump.
func TestCacheLostSameGeneration(t *testing.T) {
	ctx := context.Background()
	arch := cyruslab.TempDir(t)
	if err := cyruslab.Chown(arch); err != nil {
		t.Fatal(err)
	}
	lab := cyruslab.Start(t, cyruslab.Options{ExtraConfig: "archive_enabled: 1\narchive_after: 36500d\narchive_keepflagged: 1\narchivepartition-default: " + arch})
	spool := openSpool(t, lab.Conf)
	if _, err := gen.Restore(ctx, spool, gen.Options{Seed: 7, Messages: 200, PerMailbox: 100}); err != nil {
		t.Fatal(err)
	}
	warm(t, lab, spool)
	users, err := spool.Users()
	if err != nil {
		t.Fatal(err)
	}
	var user string
	for _, u := range users {
		if _, err := spool.Lookup("user." + u); err == nil {
			user = u
			break
		}
	}
	if user == "" {
		t.Fatal("no INBOX")
	}
	inbox := "user." + user
	c := adminSession(t, lab)
	defer c.Close()
	if _, err := c.Select(inbox); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1:10", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command("UNSELECT"); err != nil {
		t.Fatal(err)
	}
	lab.Tool(t, "cyr_expire", "-A", "0") // the unflagged records

	r := newRepo(t)
	run := func(n int) (*repo.Snapshot, repo.BoxEntry) {
		t.Helper()
		s := openSpool(t, lab.Conf)
		at := night.AddDate(0, 0, n)
		sum, err := Run(ctx, s, r, Options{All: true, Host: "h", Version: "v", Now: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Problems) > 0 || len(sum.Skipped) > 0 {
			t.Fatalf("night %d: %+v", n, sum)
		}
		if got, want := export(t, r, sum.Snapshot, user), standaloneAt(t, s, at, user); !bytes.Equal(got, want) {
			t.Errorf("night %d: user %s writes out differently from its standalone dump (%d bytes, %d)", n, user, len(got), len(want))
		}
		for _, u := range sum.Snapshot.Users {
			if u.Name == user {
				return sum.Snapshot, boxes(t, r, u)[inbox]
			}
		}
		t.Fatalf("night %d: no user %s", n, user)
		return nil, repo.BoxEntry{}
	}
	_, first := run(1)
	if first.Cached != 0 || first.Base != "" {
		t.Fatalf("night 1: %s: %+v; want a full box without CACHED (its archived records have no cache records)", inbox, first)
	}

	// A new message, then the flagged records archived too, by a
	// cyr_expire that ends before its repack: it waits for the exclusive
	// name lock a reader holds (as a backup's does), and is stopped, as a
	// nightly job with a time limit would be.
	if _, err := c.Append(inbox, nil, night, []byte("From: a@example.org\r\nSubject: new\r\n\r\nnew\r\n")); err != nil {
		t.Fatal(err)
	}
	held, err := spool.Lookup(inbox)
	if err != nil {
		t.Fatal(err)
	}
	hm, err := spool.OpenMailboxIf(ctx, held, func(*partition.Mailbox) (bool, error) { return false, nil })
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(cyruslab.TempDir(t), "imapd.conf")
	b, err := os.ReadFile(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, bytes.Replace(b, []byte("archive_keepflagged: 1"), []byte("archive_keepflagged: 0"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, err := cyruslab.ToolCommand(conf, "cyr_expire", "-A", "0")
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // runuser and cyr_expire
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		hm.Close()
		t.Fatalf("cyr_expire did not wait for the name lock: %v", err)
	case <-time.After(5 * time.Second):
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	hm.Close()
	s := openSpool(t, lab.Conf)
	if g := generation(t, s, inbox); g != uint32(first.Generation) {
		t.Fatalf("%s: generation %d, night 1's %d: Cyrus repacked it (the case needs the same generation)", inbox, g, first.Generation)
	}
	_, second := run(2)
	if second.Base != "" {
		t.Errorf("night 2: %s is a delta on a base without CACHED in the same generation", inbox)
	}
}
