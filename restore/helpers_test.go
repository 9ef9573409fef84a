package restore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
)

// testOwner leaves files to the user running the tests.
var testOwner = partition.Owner{UID: -1, GID: -1}

// openSpool loads an imapd.conf and opens its spool.
func openSpool(t testing.TB, conf string) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// emptyTarget makes a Cyrus layout with no mailbox: an imapd.conf like the
// fixture's, an empty mailboxes.db, a partition and a lock directory.
func emptyTarget(t testing.TB, extra string) *partition.Spool {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"config", "spool", "spool2", "run/lock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := "configdirectory: " + dir + "/config\n" +
		"defaultpartition: default\n" +
		"partition-default: " + dir + "/spool\n" +
		"partition-other: " + dir + "/spool2\n" +
		"mboxname_lockpath: " + dir + "/run/lock\n" +
		"altnamespace: no\nunixhierarchysep: no\nhashimapspool: true\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "imapd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "mailboxes.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return openSpool(t, filepath.Join(dir, "imapd.conf"))
}

// fixtureDump dumps users and mailboxes of the bundled real spool.
func fixtureDump(t testing.TB, users []string, mailboxes ...string) ([]byte, *partition.Spool) {
	t.Helper()
	src := openSpool(t, fixtures.UnpackT(t))
	var buf bytes.Buffer
	sum, err := dump.Run(context.Background(), src, &buf, dump.Options{Users: users, Mailboxes: mailboxes, Host: "test", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("dump problems: %v", sum.Problems)
	}
	return buf.Bytes(), src
}

func run(t testing.TB, target *partition.Spool, dump []byte, opts Options) (*Summary, error) {
	t.Helper()
	if opts.Owner == nil {
		opts.Owner = &testOwner
	}
	return Run(context.Background(), target, bytes.NewReader(dump), opts)
}

// digest maps every file and directory under the target's config
// directory and partitions to its content hash (directories: their sorted
// entry names), so that any change at all shows.
func digest(t testing.TB, s *partition.Spool) map[string]string {
	t.Helper()
	out := make(map[string]string)
	roots := []string{s.Config.ConfigDir}
	for _, p := range s.Config.Partitions {
		roots = append(roots, p)
	}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			h := sha1.New()
			if d.IsDir() {
				ents, err := os.ReadDir(p)
				if err != nil {
					return err
				}
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				sort.Strings(names)
				io.WriteString(h, "dir:"+strings.Join(names, "/"))
			} else {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				h.Write(b)
			}
			out[p] = hex.EncodeToString(h.Sum(nil))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameDigest(t testing.TB, before, after map[string]string) {
	t.Helper()
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// sel returns the selector of mailbox names.
func sel(t testing.TB, mailboxes ...string) *mboxname.Selector {
	t.Helper()
	s, err := mboxname.NewSelector(nil, mailboxes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
