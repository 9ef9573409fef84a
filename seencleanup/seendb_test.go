package seencleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/lock"
)

// writeDB writes a seen database of the given backend at path.
func writeDB(t *testing.T, path, backend string, recs [][2]string) {
	t.Helper()
	var kv [][2][]byte
	for _, r := range recs {
		kv = append(kv, [2][]byte{[]byte(r[0]), []byte(r[1])})
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	switch backend {
	case "twoskip":
		slices.SortFunc(kv, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
		i := 0
		err = cyrusdb.WriteTwoskip(f, 7, func() ([]byte, []byte, bool) {
			if i == len(kv) {
				return nil, nil, false
			}
			i++
			return kv[i-1][0], kv[i-1][1], true
		})
	case "flat":
		err = cyrusdb.WriteFlat(f, kv)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// readDB returns every record of the database at path as "key=value".
func readDB(t *testing.T, path, backend string) []string {
	t.Helper()
	var out []string
	if err := readSeen(context.Background(), testTree(path), path, backend, func(k, v []byte) error {
		out = append(out, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestRewriteSeen(t *testing.T) {
	base := [][2]string{
		{"aaaa", "1 0 36 0 1:36"},
		{"bbbb", "1 5 3 5 1,3"},
		{"cccc", "1 0 0 0 "},
		{"dd.d", "1 1 1 1 1"},
	}
	tests := []struct {
		name    string
		changes []change
		applied int
		want    []string
		found   map[string]string // key -> found value of a change not applied
	}{
		{
			name:    "delete two",
			changes: []change{{key: []byte("cccc"), want: []byte("1 0 0 0 ")}, {key: []byte("aaaa"), want: []byte("1 0 36 0 1:36")}},
			applied: 2,
			want:    []string{"bbbb=1 5 3 5 1,3", "dd.d=1 1 1 1 1"},
		},
		{
			name:    "changed value is kept",
			changes: []change{{key: []byte("bbbb"), want: []byte("1 5 3 5 1")}, {key: []byte("dd.d"), want: []byte("1 1 1 1 1")}},
			applied: 1,
			want:    []string{"aaaa=1 0 36 0 1:36", "bbbb=1 5 3 5 1,3", "cccc=1 0 0 0 "},
			found:   map[string]string{"bbbb": "1 5 3 5 1,3"},
		},
		{
			name:    "missing key",
			changes: []change{{key: []byte("zzzz"), want: []byte("1 0 0 0 ")}},
			applied: 0,
			want:    []string{"aaaa=1 0 36 0 1:36", "bbbb=1 5 3 5 1,3", "cccc=1 0 0 0 ", "dd.d=1 1 1 1 1"},
		},
		{
			name: "set new, replace, delete",
			changes: []change{
				{key: []byte("0000"), value: []byte("1 9 9 9 9")},
				{key: []byte("bbbb"), value: []byte("1 6 6 6 1:6")},
				{key: []byte("zzzz"), value: []byte("1 1 2 3 4")},
				{key: []byte("cccc"), want: []byte("1 0 0 0 ")},
			},
			applied: 4,
			want:    []string{"0000=1 9 9 9 9", "aaaa=1 0 36 0 1:36", "bbbb=1 6 6 6 1:6", "dd.d=1 1 1 1 1", "zzzz=1 1 2 3 4"},
		},
	}
	for _, backend := range []string{"twoskip", "flat"} {
		for _, tc := range tests {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "seen.db")
				writeDB(t, path, backend, base)
				before, _ := os.Stat(path)
				n, err := rewriteSeen(context.Background(), testTree(path), path, backend, tc.changes)
				if err != nil {
					t.Fatal(err)
				}
				if n != tc.applied {
					t.Errorf("applied %d, want %d", n, tc.applied)
				}
				if got := readDB(t, path, backend); !slices.Equal(got, tc.want) {
					t.Errorf("records\n got %q\nwant %q", got, tc.want)
				}
				for _, c := range tc.changes {
					if f, ok := tc.found[string(c.key)]; ok != (c.found != nil) || string(c.found) != f {
						t.Errorf("change %s: found %q, want %q", c.key, c.found, f)
					}
				}
				after, _ := os.Stat(path)
				if after.Mode() != before.Mode() {
					t.Errorf("mode %v, was %v", after.Mode(), before.Mode())
				}
				if _, err := os.Stat(path + ".NEW"); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s.NEW left behind: %v", path, err)
				}
				if backend == "twoskip" {
					db, err := cyrusdb.OpenTwoskip(path)
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					if err := db.Check(); err != nil {
						t.Error(err)
					}
					// Changed in place, as Cyrus's writer does: the
					// generation changes only at a checkpoint.
					if g := db.Generation(); g != 7 {
						t.Errorf("generation %d, want 7", g)
					}
				}
			})
		}
	}
}

func TestRewriteSeenMissingAndEmpty(t *testing.T) {
	ctx := context.Background()
	for _, backend := range []string{"twoskip", "flat"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "u", "uuid", "x", "seen.db")
			// Deleting from a missing database creates nothing.
			n, err := rewriteSeen(ctx, testTree(path), path, backend, []change{{key: []byte("k"), want: []byte("v")}})
			if err != nil || n != 0 {
				t.Fatalf("delete from missing db: %d, %v", n, err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("missing db was created: %v", err)
			}
			// A set creates it, and its directories.
			n, err = rewriteSeen(ctx, testTree(path), path, backend, []change{{key: []byte("k1"), value: []byte("1 0 0 0 ")}})
			if err != nil || n != 1 {
				t.Fatalf("set into missing db: %d, %v", n, err)
			}
			if got := readDB(t, path, backend); !slices.Equal(got, []string{"k1=1 0 0 0 "}) {
				t.Errorf("records %q", got)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode())
			}
			// An empty file is an empty database.
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			n, err = rewriteSeen(ctx, testTree(path), path, backend, []change{{key: []byte("k2"), value: []byte("1 2 2 2 2")}})
			if err != nil || n != 1 {
				t.Fatalf("set into empty db: %d, %v", n, err)
			}
			if got := readDB(t, path, backend); !slices.Equal(got, []string{"k2=1 2 2 2 2"}) {
				t.Errorf("records %q", got)
			}
		})
	}
}

// TestRewriteSeenDamaged checks that a damaged database is reported and
// left byte for byte as it was.
func TestRewriteSeenDamaged(t *testing.T) {
	recs := [][2]string{{"aaaa", "1 0 36 0 1:36"}, {"bbbb", "1 5 3 5 1,3"}}
	tests := []struct {
		name    string
		backend string
		damage  func([]byte) []byte
		want    error
	}{
		{"twoskip value byte", "twoskip", func(b []byte) []byte { b[len(b)-50] ^= 0x40; return b }, cyrusdb.ErrCorrupt},
		{"twoskip header crc", "twoskip", func(b []byte) []byte { b[40] ^= 1; return b }, cyrusdb.ErrCorrupt},
		{"twoskip configured, not twoskip", "twoskip", func(b []byte) []byte { return []byte("aaaa\t1 0 0 0 \n") }, cyrusdb.ErrCorrupt},
		{"flat no newline", "flat", func(b []byte) []byte { return b[:len(b)-1] }, cyrusdb.ErrCorrupt},
		{"flat no tab", "flat", func(b []byte) []byte { return append(b, "zzzz\n"...) }, cyrusdb.ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seen.db")
			writeDB(t, path, tc.backend, recs)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b = tc.damage(b)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = rewriteSeen(context.Background(), testTree(path), path, tc.backend, []change{{key: []byte("aaaa"), want: []byte("1 0 36 0 1:36")}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err := readSeen(context.Background(), testTree(path), path, tc.backend, func(_, _ []byte) error { return nil }); !errors.Is(err, tc.want) {
				t.Errorf("readSeen: error %v, want %v", err, tc.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, b) {
				t.Error("damaged database was changed")
			}
		})
	}
}

// A twoskip seen database that a killed writer left unclean (bytes past
// current_size) is listed as of its last commit, and rewritten after Cyrus's recovery, under the same lock, by the one twoskip
// writer restore uses (partition.UpdateTwoskipFile), as Cyrus itself does
// on its next write.
func TestRewriteSeenRecoversDirty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen.db")
	writeDB(t, path, "twoskip", [][2]string{{"aaaa", "1 0 36 0 1:36"}, {"bbbb", "1 5 3 5 1,3"}})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, make([]byte, 8)...), 0o600); err != nil {
		t.Fatal(err)
	}
	var before []string
	if err := readSeen(context.Background(), testTree(path), path, "twoskip", func(k, v []byte) error {
		before = append(before, string(k)+"="+string(v))
		return nil
	}); err != nil || len(before) != 2 {
		t.Fatalf("readSeen of the unclean file: %q, %v; want its 2 committed records", before, err)
	}
	n, err := rewriteSeen(context.Background(), testTree(path), path, "twoskip", []change{{key: []byte("aaaa"), want: []byte("1 0 36 0 1:36")}})
	if err != nil || n != 1 {
		t.Fatalf("rewrite: %d, %v", n, err)
	}
	if got := readDB(t, path, "twoskip"); !slices.Equal(got, []string{"bbbb=1 5 3 5 1,3"}) {
		t.Errorf("records %q", got)
	}
}

// TestRewriteSeenWaitsForLock checks that the rewrite waits while another
// holder (as a Cyrus writer would) has the database locked, and that a
// holder that reopens after the rename sees the new file.
func TestRewriteSeenWaitsForLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen.db")
	writeDB(t, path, "twoskip", [][2]string{{"aaaa", "1 0 0 0 "}})
	held, err := lock.OpenLocked(path, os.O_RDWR, true)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := rewriteSeen(context.Background(), testTree(path), path, "twoskip", []change{{key: []byte("bbbb"), value: []byte("1 1 1 1 1")}})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("rewrite finished while the lock was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := lock.Unlock(held); err != nil {
		t.Fatal(err)
	}
	held.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := readDB(t, path, "twoskip"); !slices.Equal(got, []string{"aaaa=1 0 0 0 ", "bbbb=1 1 1 1 1"}) {
		t.Errorf("records %q", got)
	}
}

func TestMergeOrderManyKeys(t *testing.T) {
	// Keys in byte order with prefixes, more than one output buffer.
	path := filepath.Join(t.TempDir(), "seen.db")
	var recs [][2]string
	for i := range 3000 {
		recs = append(recs, [2]string{fmt.Sprintf("k%d", i), fmt.Sprintf("1 %d %d %d 1:%d", i, i, i, i)})
	}
	writeDB(t, path, "twoskip", recs)
	var changes []change
	for i := 0; i < 3000; i += 3 {
		changes = append(changes, change{key: []byte(fmt.Sprintf("k%d", i)), want: []byte(fmt.Sprintf("1 %d %d %d 1:%d", i, i, i, i))})
	}
	n, err := rewriteSeen(context.Background(), testTree(path), path, "twoskip", changes)
	if err != nil || n != 1000 {
		t.Fatalf("%d, %v", n, err)
	}
	if got := readDB(t, path, "twoskip"); len(got) != 2000 {
		t.Errorf("%d records left, want 2000", len(got))
	}
}

// TestLockWaitCancelled checks that reading and rewriting a seen db that
// another holder keeps locked give up when the context is cancelled (a
// SIGINT), instead of waiting for the lock.
func TestLockWaitCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen.db")
	writeDB(t, path, "twoskip", [][2]string{{"aaaa", "1 0 0 0 "}})
	held, err := lock.OpenLocked(path, os.O_RDWR, true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"read", func(ctx context.Context) error {
			return readSeen(ctx, testTree(path), path, "twoskip", func(_, _ []byte) error { return nil })
		}},
		{"rewrite", func(ctx context.Context) error {
			_, err := rewriteSeen(ctx, testTree(path), path, "twoskip", []change{{key: []byte("aaaa"), want: []byte("1 0 0 0 ")}})
			return err
		}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tc.fn(ctx) }()
		time.Sleep(30 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v, want context.Canceled", tc.name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still waiting for the lock after cancel", tc.name)
		}
	}
	held.Close()
	if got := readDB(t, path, "twoskip"); !slices.Equal(got, []string{"aaaa=1 0 0 0 "}) {
		t.Errorf("records %q", got)
	}
}
