package seencleanup

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/syncrec"
)

func TestToSeen(t *testing.T) {
	tests := []struct {
		value string
		want  *syncrec.Seen
		err   error
	}{
		{"1 0 36 0 1:36", &syncrec.Seen{UserID: "alice", UniqueID: "k", LastUID: 36, SeenUIDs: "1:36"}, nil},
		{"1 1795877655 3 1795877655 1,3", &syncrec.Seen{UserID: "alice", UniqueID: "k", LastRead: 1795877655, LastUID: 3, LastChange: 1795877655, SeenUIDs: "1,3"}, nil},
		{"1 0 0 0 ", &syncrec.Seen{UserID: "alice", UniqueID: "k"}, nil},
		{"1 0 0 0", nil, ErrNotUndoable},            // no trailing space: Cyrus reads it, writes it back with one
		{"1  0 0 0 1", nil, ErrNotUndoable},         // extra blank
		{"1 -5 0 0 1", nil, ErrNotUndoable},         // negative time does not survive APPLY SEEN
		{"2 0 0 0 1", nil, ErrNotUndoable},          // version
		{"garbage", nil, ErrNotUndoable},            // not a seen record
		{"1 0 4294967296 0 1", nil, ErrNotUndoable}, // lastuid overflows
	}
	for _, tc := range tests {
		got, err := toSeen("alice", []byte("k"), []byte(tc.value))
		if !errors.Is(err, tc.err) {
			t.Errorf("%q: error %v, want %v", tc.value, err, tc.err)
			continue
		}
		if err == nil {
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%q: got %+v, want %+v", tc.value, got, tc.want)
			}
			if v := string(seenValue(got)); v != tc.value {
				t.Errorf("%q: formats back as %q", tc.value, v)
			}
		}
	}
}

func TestUndoFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "undo.dlist")
	want := []*syncrec.Seen{
		{UserID: "alice", UniqueID: "vw3sfxre0defjcl8n2w5277y", LastUID: 36, SeenUIDs: "1:36"},
		{UserID: "alice", UniqueID: "zzzz", LastRead: 1, LastUID: 2, LastChange: 3},
		{UserID: "bob@example.com", UniqueID: "b78vfn8nho0w4jopsrsocac0", LastRead: 1795878201, LastUID: 4, LastChange: 1795878201, SeenUIDs: "1:2,4"},
	}
	u, err := createUndo(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range want {
		if err := u.add(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := createUndo(path, "test"); !errors.Is(err, ErrUndoExists) {
		t.Fatalf("second create: %v, want ErrUndoExists", err)
	}
	var got []*syncrec.Seen
	if _, err := readUndoPath(path, func(s *syncrec.Seen) error { got = append(got, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n got %+v\nwant %+v", got, want)
	}
	// It is a dump that dumpfile reads to its verified trailer.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := dumpfile.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		verb, name, _, err := d.Next()
		if err != nil {
			if d.Trailer() == nil {
				t.Fatalf("no trailer: %v", err)
			}
			break
		}
		if verb != "APPLY" || name != "SEEN" {
			t.Errorf("command %s %s", verb, name)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("%d commands, want %d", n, len(want))
	}

	// A damaged undo file is refused as a whole.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.dlist")
	b[len(b)/2] ^= 1
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readUndoPath(bad, func(*syncrec.Seen) error { return nil }); err == nil {
		t.Error("damaged undo file read without error")
	}
}

// testTree is the tree of a database file in a test: its nearest existing
// directory.
func testTree(path string) *cyrusfs.Tree {
	dir := filepath.Dir(path)
	for {
		if _, err := os.Stat(dir); err == nil || dir == "/" {
			return cyrusfs.NewTree(dir)
		}
		dir = filepath.Dir(dir)
	}
}

// readUndoPath is readUndo of the file at path.
func readUndoPath(path string, fn func(*syncrec.Seen) error) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return readUndo(f, path, fn)
}
