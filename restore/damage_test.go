package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// craft writes a dump holding one message and one mailbox with a record
// of it; edit may change the mailbox, the record and the seen record
// before they are written.
func craft(t *testing.T, edit func(mb *syncrec.Mailbox, r *syncrec.Record, s *syncrec.Seen, part *string)) []byte {
	t.Helper()
	msg := []byte("Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: x\r\n\r\nbody\r\n")
	g, _, _ := guid.Of(bytes.NewReader(msg))
	mb := &syncrec.Mailbox{UniqueID: "abcdefghijklmnopqrstuvwx", Name: "user.mallory", LastUID: 1,
		HighestModseq: 5, UIDValidity: 1700000000, Partition: "default", ACL: "mallory\tlrswipkxtecdan\t"}
	r := &syncrec.Record{UID: 1, Modseq: 5, LastUpdated: 1700000000, Flags: []string{`\Seen`},
		InternalDate: 1700000000, Size: uint32(len(msg)), GUID: g}
	s := &syncrec.Seen{UserID: "bob", UniqueID: mb.UniqueID, SeenUIDs: "1"}
	part := "default"
	if edit != nil {
		edit(mb, r, s, &part)
	}
	var buf bytes.Buffer
	w, err := dumpfile.NewWriter(&buf, dumpfile.Header{Created: time.Unix(1700000000, 0), Host: "h", Version: "v"}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dl := w.DL()
	dl.BeginLine("APPLY", "MESSAGE")
	dl.BeginList()
	if err := dl.File(part, g, int64(len(msg)), bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	dl.EndList()
	if err := dl.EndLine(); err != nil {
		t.Fatal(err)
	}
	done := false
	if err := syncrec.WriteMailbox(dl, "APPLY", mb, func() (*syncrec.Record, error) {
		if done {
			return nil, nil
		}
		done = true
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := syncrec.WriteSeen(dl, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(dumpfile.Counts{Mailboxes: 1, Messages: 1, Bytes: int64(len(msg))}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRefusedDumps feeds damaged and hostile dumps to a restore into a
// real (fixture) spool: each must fail with the right error and leave the
// target byte for byte as it was.
func TestRefusedDumps(t *testing.T) {
	good, _ := fixtureDump(t, []string{"alice"})
	lit := bytes.Index(good, []byte("%{default "))
	body := lit + bytes.Index(good[lit:], []byte("\r\n")) + 2
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x20
		return c
	}
	otherHex := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		if c[at] == '0' { // another hex digit
			c[at] = '1'
		} else {
			c[at] = '0'
		}
		return c
	}
	seenAt := bytes.Index(good, []byte(`\Seen`))
	trailer := bytes.LastIndex(good, []byte("MBTOOL TRAILER"))
	tests := []struct {
		name string
		dump []byte
		want error
	}{
		{"corrupted literal", flip(good, body+10), guid.ErrMismatch},
		{"corrupted metadata", flip(good, seenAt+2), dumpfile.ErrDigest},
		{"bad trailer digest", otherHex(good, len(good)-5), dumpfile.ErrDigest},
		{"truncated in a literal", good[:body+100], io.ErrUnexpectedEOF},
		{"truncated before the trailer", good[:trailer], dumpfile.ErrNoTrailer},
		{"truncated in the trailer", good[:trailer+20], nil},
		{"empty", nil, dumpfile.ErrNotDump},
		{"dot-dot component", craft(t, func(mb *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, _ *string) {
			mb.Name = "user.mallory.^^.^^.^^.etc"
		}), ErrUnsafeName},
		{"slash in name", craft(t, func(mb *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, _ *string) {
			mb.Name = "user.mallory/../../../etc"
		}), ErrUnsafeName},
		{"absolute name", craft(t, func(mb *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, _ *string) {
			mb.Name = "/etc/passwd"
		}), ErrUnsafeName},
		{"NUL in name", craft(t, func(mb *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, _ *string) {
			mb.Name = "user.mallory\x00x"
		}), ErrUnsafeName},
		{"uniqueid with dots", craft(t, func(mb *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, _ *string) {
			mb.UniqueID = "../../../../tmp/x"
		}), ErrUnsafeName},
		{"seen owner with slash", craft(t, func(_ *syncrec.Mailbox, _ *syncrec.Record, s *syncrec.Seen, _ *string) {
			s.UserID = "../../bob"
		}), ErrUnsafeName},
		{"ACL identifier with NUL", craft(t, func(mb *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, _ *string) {
			mb.ACL = "mal\x01lory\tlrs\t"
		}), ErrUnsafeName},
		{"mailbox partition not configured", craft(t, func(mb *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, _ *string) {
			mb.Partition = "nosuch"
		}), ErrPartition},
		{"message partition not configured", craft(t, func(_ *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, part *string) {
			*part = "nosuch"
		}), ErrPartition},
		{"message partition with a path", craft(t, func(_ *syncrec.Mailbox, _ *syncrec.Record, _ *syncrec.Seen, part *string) {
			*part = "../../x"
		}), ErrUnsafeName},
		{"record size differs", craft(t, func(_ *syncrec.Mailbox, r *syncrec.Record, _ *syncrec.Seen, _ *string) {
			r.Size++
		}), ErrDamaged},
	}
	target := openSpool(t, fixtures.UnpackT(t))
	before := digest(t, target)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, target, tt.dump, Options{})
			if err == nil {
				t.Fatal("restore succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			t.Logf("%v", err)
			sameDigest(t, before, digest(t, target))
		})
	}
	// The crafted dump itself is fine.
	sum, err := run(t, target, craft(t, nil), Options{})
	if err != nil || sum.Count(ActionCreate) != 1 {
		t.Fatalf("crafted dump: %v %+v", err, sum)
	}
	if got, err := target.ReadSeen("bob"); err != nil || !strings.Contains(seenKeys(got), "abcdefghijklmnopqrstuvwx") {
		t.Errorf("bob's seen: %v %v", got, err)
	}
}

func seenKeys(recs []partition.SeenRecord) string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.UniqueID)
	}
	return strings.Join(ids, " ")
}

// A dump from a Cyrus with a newer index version than this mbtool writes is
// refused, naming the version, before anything is written.
func TestRefuseNewerIndexVersion(t *testing.T) {
	var buf bytes.Buffer
	w, err := dumpfile.NewWriter(&buf, dumpfile.Header{Created: time.Unix(1795880000, 0), Host: "h", Version: "v", IndexVersion: 20}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(dumpfile.Counts{}); err != nil {
		t.Fatal(err)
	}
	conf := fixtures.UnpackT(t)
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), spool, &buf, Options{})
	if !errors.Is(err, ErrIndexVersion) || !strings.Contains(err.Error(), "cyrus.index version 20") {
		t.Fatalf("restore of an index-version-20 dump: %v", err)
	}
}
