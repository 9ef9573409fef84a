package repodump

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/repo"
)

// packFiles counts the file literals of every pack of the repository in
// dir, by GUID.
func packFiles(t *testing.T, dir string) map[guid.GUID]int {
	t.Helper()
	n := map[guid.GUID]int{}
	err := filepath.Walk(filepath.Join(dir, "packs"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rd := dlist.NewReader(f)
		for {
			tok, err := rd.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if tok.Kind == dlist.File {
				n[tok.File.GUID]++
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Two dump --repo processes at once whose users overlap (the sixth user
// is in both) each store that user's files: the repository holds them
// twice, every snapshot complete. prune keeps one copy and removes the
// other, although each pack has less than its repack threshold unused:
// a duplicate is always reclaimed.
func TestConcurrentProcessesDuplicate(t *testing.T) {
	ctx := context.Background()
	conf, st, err := gen.Partition(ctx, t.TempDir(), gen.Options{Seed: 11, Messages: 2400, MeanSize: 4000, PerMailbox: 20})
	if err != nil {
		t.Fatal(err)
	}
	if st.Users < 11 {
		t.Fatalf("%d users generated", st.Users)
	}
	s := openSpool(t, conf)
	users, err := s.Users()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := repo.OpenDirRepo(dir, true); err != nil {
		t.Fatal(err)
	}
	// A: users 1-6, the sixth last; B: users 6-11, the sixth first.
	sets := [][]string{users[0:6], users[5:11]}
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, set := range sets {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MBTOOL_KILL_CHILD=users", "MBTOOL_KILL_CONF="+conf, "MBTOOL_KILL_REPO="+dir,
			"MBTOOL_KILL_USERS="+strings.Join(set, ","))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("dump %d: %v: %s", i, err, outs[i])
		}
	}
	r, err := repo.OpenDirRepo(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := r.Snapshots()
	if err != nil || len(ss) != 2 {
		t.Fatalf("%d snapshots, %v", len(ss), err)
	}
	want := map[string][]byte{}
	for _, snap := range ss {
		want[snap.ID] = export(t, r, snap)
	}
	dups := 0
	for _, n := range packFiles(t, dir) {
		if n > 1 {
			dups++
		}
	}
	if dups == 0 {
		t.Fatalf("no file stored twice: the two dumps did not overlap")
	}
	t.Logf("%d files stored twice", dups)
	verifyRepo(t, r, "after the two dumps")
	if _, err := r.Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	for g, n := range packFiles(t, dir) {
		if n != 1 {
			t.Errorf("after prune, file %s is in the packs %d times", g, n)
		}
	}
	sum := verifyRepo(t, r, "after prune")
	if sum.Entries != sum.Files {
		t.Errorf("after prune, the index has %d entries for %d files", sum.Entries, sum.Files)
	}
	for _, snap := range ss {
		if got := export(t, r, snap); !bytes.Equal(got, want[snap.ID]) {
			t.Errorf("snapshot %s writes out differently after prune", snap.ShortID())
		}
	}
}
