package partition

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
)

// readAll opens name and walks its records, returning the first error.
func readAll(s *Spool, name string) error {
	e, err := s.Lookup(name)
	if err != nil {
		return err
	}
	m, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Records(func(Record) error { return nil })
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += int64(len(b))
	}
	b[off] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDamage damages one file of the real spool at a time and checks that
// reading user.alice fails with an error naming the file (and the record),
// wrapping the right sentinel, and never panics.
func TestDamage(t *testing.T) {
	const mbox = "user.alice"
	tests := []struct {
		name   string
		file   string // FileIndex or FileHeader
		damage func(t *testing.T, path string)
		is     error
		want   []string // substrings of the error
	}{
		{"index record 1 uid", FileIndex, func(t *testing.T, p string) { flipByte(t, p, 160+3) },
			ErrChecksum, []string{"record 1 (uid 33)", "offset 160", "record CRC"}},
		{"index record 2 flags", FileIndex, func(t *testing.T, p string) { flipByte(t, p, 160+112+32) },
			ErrChecksum, []string{"record 2 (uid 2)", "offset 272"}},
		{"index record 36 guid", FileIndex, func(t *testing.T, p string) { flipByte(t, p, 160+35*112+70) },
			ErrChecksum, []string{"record 36 (uid 36)"}},
		{"index record 36 crc", FileIndex, func(t *testing.T, p string) { flipByte(t, p, 160+36*112-1) },
			ErrChecksum, []string{"record 36"}},
		{"index header uidvalidity", FileIndex, func(t *testing.T, p string) { flipByte(t, p, 44) },
			ErrChecksum, []string{"offset 0", "header CRC"}},
		{"index header crc", FileIndex, func(t *testing.T, p string) { flipByte(t, p, 157) },
			ErrChecksum, []string{"header CRC"}},
		{"index version", FileIndex, func(t *testing.T, p string) { flipByte(t, p, 11) },
			ErrVersion, []string{"minor version 49 (supported: 12 to 17)"}},
		{"index truncated", FileIndex, func(t *testing.T, p string) { os.Truncate(p, 160+35*112+50) },
			ErrBadFormat, []string{"record 36", "file has 4130 bytes, header needs 4192"}},
		{"index header truncated", FileIndex, func(t *testing.T, p string) { os.Truncate(p, 100) },
			ErrBadFormat, []string{"header truncated"}},
		{"header magic", FileHeader, func(t *testing.T, p string) { flipByte(t, p, 5) },
			ErrBadFormat, []string{"no cyrus.header magic"}},
		{"header dlist", FileHeader, func(t *testing.T, p string) { flipByte(t, p, int64(len(HeaderMagic))+1) },
			ErrBadFormat, nil},
		{"header truncated", FileHeader, func(t *testing.T, p string) { os.Truncate(p, int64(len(HeaderMagic))+20) },
			ErrBadFormat, []string{"not terminated"}},
		{"header uniqueid", FileHeader, func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), " I uogf", " I xogf", 1)), 0o644)
		}, ErrBadFormat, []string{"mailboxes.db says"}},
		{"index missing", FileIndex, func(t *testing.T, p string) { os.Remove(p) }, os.ErrNotExist, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openFixture(t)
			e, err := s.Lookup(mbox)
			if err != nil {
				t.Fatal(err)
			}
			path, _ := s.MetaPath(e, tt.file)
			tt.damage(t, path)
			err = readAll(s, mbox)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q: want %v naming %s", err, tt.is, path)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var fe *FileError
			if tt.file == FileIndex && tt.is != os.ErrNotExist && !errors.As(err, &fe) {
				t.Errorf("error %q is no *FileError", err)
			}
		})
	}
}

// TestDamageIndexEveryByte flips every byte of every record of a mailbox:
// each flip must be reported for exactly that record.
func TestDamageIndexEveryByte(t *testing.T) {
	s, _ := openFixture(t)
	e, _ := s.Lookup("user.alice.Sent")
	path, _ := s.MetaPath(e, FileIndex)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ParseIndexHeader(orig)
	for off := int64(0); off < h.Size(); off++ {
		b := append([]byte(nil), orig...)
		b[off] ^= 0x01
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		err := readAll(s, e.Name)
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Fatalf("byte %d: error %v", off, err)
		}
		wantRec := 0
		if off >= int64(h.StartOffset) {
			wantRec = int((off-int64(h.StartOffset))/int64(h.RecordSize)) + 1
		}
		if fe.Record != wantRec || fe.File != path {
			t.Fatalf("byte %d: error %v, want record %d", off, err, wantRec)
		}
	}
}

// TestDamageMailboxesDB flips bytes all over mailboxes.db: every read
// either fails with cyrusdb's corruption error naming the file, or (for a
// byte of a superseded record, which no walk visits) returns exactly the
// undamaged list. A flip never yields different mailboxes.
func TestDamageMailboxesDB(t *testing.T) {
	s, _ := openFixture(t)
	path := s.Config.MboxlistPath
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for off := 0; off < len(orig); off += 3 {
		b := append([]byte(nil), orig...)
		b[off] ^= 0x04
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := s.Mailboxes()
		if err != nil {
			failed++
			if !errors.Is(err, cyrusdb.ErrCorrupt) && !errors.Is(err, ErrBadFormat) || !strings.Contains(err.Error(), path) {
				t.Fatalf("byte %d: error %v", off, err)
			}
			continue
		}
		if len(got) != len(want) {
			t.Fatalf("byte %d: %d mailboxes, want %d", off, len(got), len(want))
		}
		for i := range got {
			if FormatACL(got[i].ACL) != FormatACL(want[i].ACL) || got[i].Name != want[i].Name ||
				got[i].UniqueID != want[i].UniqueID || got[i].UIDValidity != want[i].UIDValidity {
				t.Fatalf("byte %d: entry %+v, want %+v", off, got[i], want[i])
			}
		}
	}
	if failed < len(orig)/3/4 {
		t.Errorf("only %d of %d flips detected", failed, len(orig)/3)
	}
	t.Logf("%d of %d flips detected", failed, len(orig)/3)
}
