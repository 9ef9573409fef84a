package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

// TestManyLinks restores a mailbox whose 65,100 records share one message
// file (issue 13 finding 8): ext4 allows 65,000 links to a file, and where
// link fails with EMLINK restore copies the file, as Cyrus does, instead
// of failing.
func TestManyLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 65,100 message files")
	}
	const n = 65100
	msg := []byte("Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: many\r\n\r\nbody\r\n")
	g, _, _ := guid.Of(bytes.NewReader(msg))
	var buf bytes.Buffer
	w, err := dumpfile.NewWriter(&buf, dumpfile.Header{Created: time.Unix(1700000000, 0), Host: "h", Version: "v"}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dl := w.DL()
	dl.BeginLine("APPLY", "MESSAGE")
	dl.BeginList()
	if err := dl.File("default", g, int64(len(msg)), bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	dl.EndList()
	if err := dl.EndLine(); err != nil {
		t.Fatal(err)
	}
	mb := &syncrec.Mailbox{UniqueID: "abcdefghijklmnopqrstuvwx", Name: "user.mallory", LastUID: n,
		HighestModseq: n, UIDValidity: 1700000000, Partition: "default", ACL: "mallory\tlrswipkxtecdan\t"}
	uid := uint32(0)
	err = syncrec.WriteMailbox(dl, "APPLY", mb, func() (*syncrec.Record, error) {
		if uid == n {
			return nil, nil
		}
		uid++
		return &syncrec.Record{UID: uid, Modseq: uint64(uid), LastUpdated: 1700000000,
			InternalDate: 1700000000, Size: uint32(len(msg)), GUID: g}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(dumpfile.Counts{Mailboxes: 1, Messages: 1, Bytes: int64(len(msg))}); err != nil {
		t.Fatal(err)
	}
	target := emptyTarget(t, "")
	sum, err := run(t, target, buf.Bytes(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("problems: %v", sum.Problems)
	}
	e, err := target.Lookup("user.mallory")
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := target.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	var st os.FileInfo
	for _, u := range []int{1, 65000, 65001, n} {
		p := filepath.Join(dir, strconv.Itoa(u)+".")
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, msg) {
			t.Errorf("%s: %v", p, err)
		}
		if st, err = os.Stat(p); err != nil || st.ModTime().Unix() != 1700000000 {
			t.Errorf("%s: mtime %v, %v", p, st.ModTime(), err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != n+2 { // the messages, cyrus.header, cyrus.index
		t.Errorf("%d entries in %s, want %d", len(ents), dir, n+2)
	}
}
