package restore

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/s3lab"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/repo/repodump"
	"github.com/mbtool/mbtool/s3store"
)

// s3TestRepo makes a repository on a SeaweedFS store started for the test
// (or skips without one, unless MBTOOL_REAL_S3=1), reached as mbtool
// reaches it: credentials and endpoint from the AWS_* environment.
func s3TestRepo(t *testing.T) *repo.Repo {
	t.Helper()
	m := s3lab.StartMini(t, s3lab.Options{})
	m.Setenv(t)
	c, err := s3store.New(t.Context(), s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s3store.ParseURL(m.URL("nights"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.OpenS3Repo(t.Context(), c, u, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRealCyrusRepositoryNights backs alice and bob up into a repository
// on two nights with mail delivered, flagged and expunged in between, and
// restores each night from the repository into a fresh Cyrus: IMAP clients
// see exactly what they saw on that night. Both mailbox layouts, and the
// repository in a directory and on a real object store (SeaweedFS).
func TestRealCyrusRepositoryNights(t *testing.T) {
	for _, tc := range []struct {
		legacy bool
		s3     bool
	}{{false, false}, {true, false}, {false, true}} {
		legacy := tc.legacy
		name := fmt.Sprintf("legacy=%v", legacy)
		if tc.s3 {
			name += ",s3"
		}
		t.Run(name, func(t *testing.T) {
			var r *repo.Repo
			if tc.s3 {
				r = s3TestRepo(t)
			}
			src := cyruslab.Start(t, cyruslab.Options{LegacyDirs: legacy})
			src.Populate(t)
			if !tc.s3 {
				var err error
				if r, err = repo.OpenDirRepo(filepath.Join(t.TempDir(), "repo"), true); err != nil {
					t.Fatal(err)
				}
			}
			views := func() map[string]map[string]imapView {
				return map[string]map[string]imapView{
					"alice": userViews(t, src, "alice"),
					"bob":   userViews(t, src, "bob", "user.alice.team"),
				}
			}
			night := func(at time.Time) *repodump.Summary {
				sum, err := repodump.Run(context.Background(), openSpool(t, src.Conf), r,
					repodump.Options{Users: []string{"alice", "bob"}, Now: at, Host: "lab", Version: "test"})
				if err != nil {
					t.Fatal(err)
				}
				if len(sum.Problems) > 0 || len(sum.Skipped) > 0 {
					t.Fatalf("dump --repo: %v %v", sum.Problems, sum.Skipped)
				}
				return sum
			}
			want1 := views()
			n1 := night(time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC))

			// The day: new mail, a flag, an expunge.
			c := src.IMAP(t, "alice")
			inbox := view(t, c, "INBOX")
			if _, err := c.Select("INBOX"); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				msg := fmt.Sprintf("From: x@example.org\r\nSubject: day 2 message %d\r\n\r\nnew %d\r\n", i, i)
				if _, err := c.Append("INBOX", nil, time.Time{}, []byte(msg)); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.UIDStore(fmt.Sprint(inbox.Messages[0].UID), "+FLAGS", `(\Flagged)`); err != nil {
				t.Fatal(err)
			}
			gone := fmt.Sprint(inbox.Messages[1].UID)
			if err := c.UIDStore(gone, "+FLAGS", `(\Deleted)`); err != nil {
				t.Fatal(err)
			}
			if err := c.UIDExpunge(gone); err != nil {
				t.Fatal(err)
			}
			want2 := views()
			n2 := night(time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC))
			if n2.NewFiles != 2 {
				t.Errorf("night 2 stored %d message files, want the 2 new ones", n2.NewFiles)
			}

			sum, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
			if err != nil || len(sum.Findings) > 0 {
				t.Fatalf("verify --repo --read-data: %v %v", err, sum.Findings)
			}
			for i, tc := range []struct {
				snap *repo.Snapshot
				want map[string]map[string]imapView
			}{{n1.Snapshot, want1}, {n2.Snapshot, want2}} {
				idx, err := r.LoadIndex()
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				_, err = r.WriteDump(context.Background(), idx, tc.snap, &buf, repo.ExportOptions{})
				idx.Close()
				if err != nil {
					t.Fatal(err)
				}
				dst := cyruslab.Start(t, cyruslab.Options{LegacyDirs: legacy})
				if rs := labRestore(t, dst, buf.Bytes(), Options{}); len(rs.Problems) > 0 {
					t.Fatalf("night %d: restore: %v", i+1, rs.Problems)
				}
				who := fmt.Sprintf("night %d: ", i+1)
				compareAll(t, who+"alice", userViews(t, dst, "alice"), tc.want["alice"])
				compareAll(t, who+"bob", userViews(t, dst, "bob", "user.alice.team"), tc.want["bob"])
			}
		})
	}
}
