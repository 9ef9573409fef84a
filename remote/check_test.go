package remote

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/mbtool/mbtool/syncrec"
)

// testBox is a mailbox of a synthetic dump.
type testBox struct {
	mb    syncrec.Mailbox
	recs  []syncrec.Record
	files map[guid.GUID][]byte
}

func message(n int) ([]byte, guid.GUID) {
	b := []byte(fmt.Sprintf("From: a@example.org\r\nSubject: %d\r\n\r\nbody %d\r\n", n, n))
	return b, guid.GUID(sha1.Sum(b))
}

// goodBox is a valid mailbox of three messages.
func goodBox() testBox {
	tb := testBox{files: map[guid.GUID][]byte{}}
	tb.mb = syncrec.Mailbox{UniqueID: "abcdefghijklmnopqrstuvwx", Name: "user.alice", LastUID: 3, HighestModseq: 5,
		UIDValidity: 1700000000, Partition: "default", ACL: "alice\tlrswipkxtecdan\t", Options: "P"}
	for i := 1; i <= 3; i++ {
		b, g := message(i)
		tb.files[g] = b
		tb.recs = append(tb.recs, syncrec.Record{UID: uint32(i), Modseq: uint64(i + 1), LastUpdated: 1700000000,
			Flags: []string{`\Seen`}, InternalDate: 1700000000, Size: uint32(len(b)), GUID: g})
	}
	return tb
}

// buildDump writes boxes as a dump; fix, if set, edits each box first,
// and counts, if set, replaces the trailer's counts.
func buildDump(t *testing.T, boxes []testBox, counts *dumpfile.Counts) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := dumpfile.NewWriter(&buf, dumpfile.Header{Created: time.Unix(1700000000, 0), Host: "test"}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := fw.DL()
	var c dumpfile.Counts
	for _, tb := range boxes {
		if len(tb.files) > 0 {
			w.BeginLine("APPLY", "MESSAGE")
			w.BeginList()
			for _, r := range tb.recs {
				b, ok := tb.files[r.GUID]
				if !ok {
					continue
				}
				delete(tb.files, r.GUID)
				g := guid.GUID(sha1.Sum(b))
				if g != r.GUID {
					g = r.GUID // a damaged file keeps its claimed GUID
				}
				if err := w.File(tb.mb.Partition, g, int64(len(b)), bytes.NewReader(b)); err != nil {
					t.Fatal(err)
				}
				c.Messages++
				c.Bytes += int64(len(b))
			}
			w.EndList()
			w.EndLine()
		}
		crc := syncrec.NewCRC()
		for i := range tb.recs {
			crc.Add(&tb.recs[i])
		}
		mb := tb.mb
		mb.SyncCRC, mb.SyncCRCAnnot = crc.Basic, crc.Annot
		i := 0
		err := syncrec.WriteMailbox(w, "APPLY", &mb, func() (*syncrec.Record, error) {
			if i == len(tb.recs) {
				return nil, nil
			}
			i++
			return &tb.recs[i-1], nil
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Mailboxes++
	}
	if counts != nil {
		c = *counts
	}
	if err := fw.Close(c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var errConnectCalled = errors.New("connect called")

func connectCalled(context.Context) (*syncproto.Client, error) { return nil, errConnectCalled }

// TestCheckRefuses shows that what could crash or corrupt the server is
// refused before connecting, and a good dump gets as far as connecting.
func TestCheckRefuses(t *testing.T) {
	edit := func(f func(tb *testBox)) []testBox {
		tb := goodBox()
		f(&tb)
		return []testBox{tb}
	}
	tests := []struct {
		name  string
		boxes []testBox
		want  error
	}{
		{"good", edit(func(*testBox) {}), errConnectCalled},
		{"file does not match its GUID", edit(func(tb *testBox) {
			for g, b := range tb.files {
				b = append([]byte(nil), b...)
				b[0] ^= 0x20
				tb.files[g] = b
				break
			}
		}), ErrDamaged},
		{"records out of order", edit(func(tb *testBox) { tb.recs[0], tb.recs[1] = tb.recs[1], tb.recs[0] }), ErrDamaged},
		{"duplicate UID", edit(func(tb *testBox) { tb.recs[1].UID = 1 }), ErrDamaged},
		{"UID above LAST_UID", edit(func(tb *testBox) { tb.mb.LastUID = 2 }), ErrDamaged},
		{"SIZE 0", edit(func(tb *testBox) { tb.recs[2].Size = 0; tb.files = nil }), ErrDamaged},
		{"SIZE differs from the file", edit(func(tb *testBox) { tb.recs[2].Size++ }), ErrDamaged},
		{"null GUID", edit(func(tb *testBox) { tb.recs[2].GUID = guid.GUID{}; tb.recs[2].Flags = []string{`\Deleted`, `\Expunged`} }), ErrDamaged},
		{"unknown system flag", edit(func(tb *testBox) { tb.recs[0].Flags = []string{`\Bogus`} }), ErrUnsafeName},
		{"flag with a wildcard", edit(func(tb *testBox) { tb.recs[0].Flags = []string{"a*b"} }), ErrUnsafeName},
		{"name with ..", edit(func(tb *testBox) { tb.mb.Name = "user.alice..x" }), ErrUnsafeName},
		{"name with /", edit(func(tb *testBox) { tb.mb.Name = "user.alice/../x" }), ErrUnsafeName},
		{"partition with /", edit(func(tb *testBox) { tb.mb.Partition = "../default" }), ErrUnsafeName},
		{"deleted MBOXTYPE", edit(func(tb *testBox) { tb.mb.MboxType = "d" }), ErrUnsafeName},
		{"uniqueid with /", edit(func(tb *testBox) { tb.mb.UniqueID = "ab/cd" }), ErrUnsafeName},
		{"ACL id with newline", edit(func(tb *testBox) { tb.mb.ACL = "ali\nce\tlr\t" }), ErrUnsafeName},
		{"duplicate uniqueid", append(edit(func(*testBox) {}), edit(func(tb *testBox) { tb.mb.Name = "user.bob"; tb.files = nil })...), ErrDamaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildDump(t, tt.boxes, nil)
			_, err := Restore(context.Background(), bytes.NewReader(b), connectCalled, RestoreOptions{})
			if !errors.Is(err, tt.want) {
				t.Errorf("Restore: %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("trailer counts", func(t *testing.T) {
		b := buildDump(t, edit(func(*testBox) {}), &dumpfile.Counts{Mailboxes: 1, Messages: 2})
		if _, err := Restore(context.Background(), bytes.NewReader(b), connectCalled, RestoreOptions{}); !errors.Is(err, ErrDamaged) {
			t.Errorf("Restore: %v", err)
		}
	})
	t.Run("bad --map-user", func(t *testing.T) {
		b := buildDump(t, edit(func(*testBox) {}), nil)
		_, err := Restore(context.Background(), bytes.NewReader(b), connectCalled, RestoreOptions{MapUsers: map[string]string{"alice": "a/b"}})
		if !errors.Is(err, ErrUnsafeName) {
			t.Errorf("Restore: %v", err)
		}
	})
}

// TestCheckFixture damages a real dump of the bundled spool.
func TestCheckFixture(t *testing.T) {
	var buf bytes.Buffer
	if _, err := dump.Run(context.Background(), openSpool(t, fixtures.UnpackT(t)), &buf, dump.Options{All: true, Host: "t"}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	body := bytes.Index(good, []byte("\r\n\r\n")) + 10 // inside the first message body
	tests := []struct {
		name string
		edit func([]byte) []byte
		want error
	}{
		{"as dumped", func(b []byte) []byte { return b }, errConnectCalled},
		{"one byte of a message", func(b []byte) []byte { b[body] ^= 1; return b }, ErrDamaged},
		{"truncated", func(b []byte) []byte { return b[:len(b)*2/3] }, ErrDamaged},
		{"no trailer", func(b []byte) []byte { return b[:bytes.LastIndex(b, []byte("MBTOOL TRAILER"))] }, ErrDamaged},
		{"a byte of a record", func(b []byte) []byte {
			i := bytes.Index(b, []byte("LAST_UPDATED ")) + len("LAST_UPDATED ")
			b[i]++ // the digest no longer matches
			return b
		}, ErrDamaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(append([]byte(nil), good...))
			sum, err := Restore(context.Background(), bytes.NewReader(b), connectCalled, RestoreOptions{})
			if !errors.Is(err, tt.want) {
				t.Errorf("Restore: %v, want %v", err, tt.want)
			}
			if tt.want == errConnectCalled && (sum == nil || sum.Dump.Messages == 0) {
				t.Errorf("summary %+v", sum)
			}
		})
	}
}
