package restore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/restore"
)

// TestUserFilesManyUsers restores a generated dump of more users than
// one look-up serves (userRuns, writeQuotas' sets of roots), each with
// a quota root, a seen db and a subscription file, and checks that
// those files are what one look-up per user writes: byte for byte, the
// seen dbs record for record.
func TestUserFilesManyUsers(t *testing.T) {
	var dump bytes.Buffer
	if _, err := gen.WriteDump(&dump, gen.Options{Seed: 7, Users: 150, Messages: 900, SmallOnly: true, MeanSize: 1_000}); err != nil {
		t.Fatal(err)
	}
	restoreFiles := func() map[string]string {
		_, target, err := gen.OpenEmpty(filepath.Join(t.TempDir(), "target"))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := restore.Run(context.Background(), target, bytes.NewReader(dump.Bytes()), restore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Problems) > 0 {
			t.Fatalf("problems: %v", sum.Problems)
		}
		files := map[string]string{}
		dir := target.Config.ConfigDir
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == "mailboxes.db" || rel == "annotations.db" {
				return nil // their times are the run's
			}
			b, err := os.ReadFile(p)
			if filepath.Base(p) == "seen.db" || filepath.Ext(p) == ".seen" {
				// A twoskip file changed by a transaction has its
				// records' levels drawn at random: its records are
				// compared.
				recs, err := target.ReadSeenAt("", p)
				if err != nil {
					return err
				}
				b = nil
				for _, r := range recs {
					b = fmt.Appendf(b, "%s %s\n", r.UniqueID, r.Raw)
				}
			}
			files[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	got := restoreFiles()
	defer restore.SetUserBatches(1, 1, 1)()
	want := restoreFiles()
	n := map[string]int{}
	for p := range want {
		switch {
		case filepath.Base(p) == "seen.db" || filepath.Ext(p) == ".seen":
			n["seen"]++
		case filepath.Base(p) == "sub.db" || filepath.Ext(p) == ".sub":
			n["sub"]++
		case filepath.Base(filepath.Dir(filepath.Dir(p))) == "quota":
			n["quota"]++
		}
	}
	t.Logf("files: %v", n)
	if n["quota"] < 150 || n["sub"] < 100 || n["seen"] < 100 {
		t.Errorf("the dump gave too few user files to test: %v", n)
	}
	if !reflect.DeepEqual(got, want) {
		for p, h := range want {
			if got[p] != h {
				t.Errorf("%s differs (or is missing): %q, want %q", p, got[p], h)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("%s is extra", p)
			}
		}
	}
}

// TestQuotaUsageProblemNamesItsMailbox: a mailbox whose index cannot be
// read when its quota root's usage is summed (on writeQuotas' workers)
// is a problem of that mailbox, and of no other; the other roots are
// written.
func TestQuotaUsageProblemNamesItsMailbox(t *testing.T) {
	var dump bytes.Buffer
	if _, err := gen.WriteDump(&dump, gen.Options{Seed: 7, Users: 40, Messages: 200, SmallOnly: true, MeanSize: 1_000}); err != nil {
		t.Fatal(err)
	}
	_, target, err := gen.OpenEmpty(filepath.Join(t.TempDir(), "target"))
	if err != nil {
		t.Fatal(err)
	}
	victim := ""
	restore.SetPhaseHook(func(p string) {
		if p != "grouped" {
			return
		}
		mbs, err := target.Mailboxes()
		if err != nil || len(mbs) < 10 {
			t.Errorf("%d mailboxes registered: %v", len(mbs), err)
			return
		}
		e := mbs[len(mbs)/2]
		path, err := target.MetaPath(e, "cyrus.index")
		if err != nil {
			t.Error(err)
			return
		}
		if err := os.Remove(path); err != nil {
			t.Error(err)
			return
		}
		victim = e.Name
	})
	defer restore.SetPhaseHook(nil)
	sum, err := restore.Run(context.Background(), target, bytes.NewReader(dump.Bytes()), restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if victim == "" {
		t.Fatal("no index removed")
	}
	found := false
	for _, p := range sum.Problems {
		if p.Item == victim && bytes.Contains([]byte(p.Err.Error()), []byte("quota usage of")) {
			found = true
		} else {
			t.Errorf("problem %s: %v; want only one of %s's quota usage", p.Item, p.Err, victim)
		}
	}
	if !found {
		t.Errorf("the unreadable index of %s was not reported (a worker's problem lost): %v", victim, sum.Problems)
	}
}
