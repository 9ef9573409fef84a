package repodump

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/internal/cyruslab"
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

// Nights on a live Cyrus whose INBOXes change between them (new,
// expunged and flagged messages through IMAP): an unchanged mailbox keeps
// its box (nothing of it is read), a changed one gets a delta box on the
// first night's, and every user written out is byte for byte the
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
	r := newRepo(t)
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
			for _, bs := range now {
				for _, e := range bs {
					if e.Base != "" {
						t.Errorf("night 1: %s is a delta", e.Name)
					}
				}
			}
			continue
		}
		for user, bs := range now {
			for name, e := range bs {
				was := first[user][name]
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
			if n == 2 {
				for name, e := range boxes(t, r, u) {
					if e.Base != "" {
						t.Errorf("night 2: %s is a delta on the box of before the repack", name)
					}
				}
			}
		}
	}
}
