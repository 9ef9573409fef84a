package partition

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"strings"
	"syscall"
	"testing"
)

// countersSpool returns a Spool with `conversations: yes` whose shared
// mailboxes count in <configdirectory>/shared.counters, and that path.
func countersSpool(t *testing.T) (*Spool, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/config", 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "configdirectory: " + dir + "/config\npartition-default: " + dir + "/spool\n" +
		"defaultpartition: default\nconversations: yes\n"
	cfg, err := ParseConfig(strings.NewReader(conf), "counters.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := &Spool{Config: cfg}
	path, ok, err := s.CountersPath("shared.folder")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	return s, path
}

// countersFile builds a counters file of version v as Cyrus of that
// version wrote it (imap/mboxname.c): length, the 64-bit counters from 8,
// the UIDVALIDITY counter and the CRC in its last 8 bytes.
func countersFile(v uint32, gen uint32, counters []uint64, uidvalidity uint32) []byte {
	n := countersLengths[v]
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b[0:], gen)
	binary.BigEndian.PutUint32(b[4:], v)
	for i, c := range counters {
		binary.BigEndian.PutUint64(b[8+8*i:], c)
	}
	binary.BigEndian.PutUint32(b[n-8:], uidvalidity)
	binary.BigEndian.PutUint32(b[n-4:], crc32.ChecksumIEEE(b[:n-4]))
	return b
}

func counterAt(t *testing.T, b []byte, off int) uint64 {
	t.Helper()
	if len(b) != countersLength {
		t.Fatalf("%d bytes, want %d", len(b), countersLength)
	}
	return binary.BigEndian.Uint64(b[off:])
}

// checkV9 checks that b is a valid version 9 file of generation gen.
func checkV9(t *testing.T, b []byte, gen uint32) {
	t.Helper()
	if len(b) != countersLength {
		t.Fatalf("%d bytes, want %d", len(b), countersLength)
	}
	if v := binary.BigEndian.Uint32(b[offVersion:]); v != countersVersion {
		t.Errorf("version %d, want %d", v, countersVersion)
	}
	if g := binary.BigEndian.Uint32(b[offGeneration:]); g != gen {
		t.Errorf("generation %d, want %d", g, gen)
	}
	if got, want := crc32.ChecksumIEEE(b[:countersCRC]), binary.BigEndian.Uint32(b[countersCRC:]); got != want {
		t.Errorf("CRC %08x, stored %08x", got, want)
	}
}

// TestCountersOlderVersions: a file Cyrus wrote before an upgrade
// (version 8, the counters up to the JMAP notification ones) is read as
// Cyrus 3.6 reads it and rewritten at version 9 keeping every counter and
// the UIDVALIDITY counter; so is every older version.
func TestCountersOlderVersions(t *testing.T) {
	ctx := context.Background()
	for v := uint32(0); v < countersVersion; v++ {
		s, path := countersSpool(t)
		n := (countersLengths[v] - 16) / 8
		counters := make([]uint64, n)
		for i := range counters {
			counters[i] = uint64(100 + i)
		}
		counters[0] = 500 // the user's highest
		file := countersFile(v, 7, counters, 1234)
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadModseqCounter("shared.folder")
		if err != nil || got != 500 {
			t.Fatalf("version %d: ReadModseqCounter = %d, %v; want 500", v, got, err)
		}
		next, err := s.NextModseq(ctx, Entry{Name: "shared.folder"}, 10, Owner{UID: -1, GID: -1})
		if err != nil || next != 501 {
			t.Fatalf("version %d: NextModseq = %d, %v; want 501", v, next, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkV9(t, b, 8)
		if counterAt(t, b, offHighestModseq) != 501 || counterAt(t, b, offMailModseq) != 501 {
			t.Errorf("version %d: highest %d, mail %d; want 501", v, counterAt(t, b, offHighestModseq), counterAt(t, b, offMailModseq))
		}
		for i := 2; i < n; i++ {
			want := counters[i]
			if v == 2 && i == 5 {
				// Cyrus reads version 2's folder counter as 32 bits
				// swapped as 64: the low half of a small value is lost.
				want = 0
			}
			if got := counterAt(t, b, 8+8*i); got != want {
				t.Errorf("version %d: counter at %d is %d, want %d", v, 8+8*i, got, want)
			}
		}
		for off := 8 + 8*n; off < offUIDValidity; off += 8 {
			if got := counterAt(t, b, off); got != 0 {
				t.Errorf("version %d: counter at %d is %d, want 0", v, off, got)
			}
		}
		if u := binary.BigEndian.Uint32(b[offUIDValidity:]); u != 1234 {
			t.Errorf("version %d: UIDVALIDITY counter %d, want 1234", v, u)
		}
	}
}

// TestCountersShortFile: a file of fewer than 8 bytes is all zeros to
// Cyrus; it is read as 0 and rewritten at version 9.
func TestCountersShortFile(t *testing.T) {
	s, path := countersSpool(t)
	if err := os.WriteFile(path, []byte{1, 2, 3, 4}, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadModseqCounter("shared.folder"); err != nil || got != 0 {
		t.Fatalf("ReadModseqCounter = %d, %v; want 0", got, err)
	}
	next, err := s.NextModseq(context.Background(), Entry{Name: "shared.folder"}, 41, Owner{UID: -1, GID: -1})
	if err != nil || next != 42 {
		t.Fatalf("NextModseq = %d, %v; want 42", next, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkV9(t, b, 1)
	if counterAt(t, b, offHighestModseq) != 42 || counterAt(t, b, offMailModseq) != 42 {
		t.Errorf("highest %d, mail %d; want 42", counterAt(t, b, offHighestModseq), counterAt(t, b, offMailModseq))
	}
}

// TestCountersRefused: a damaged CRC, a length that is not its version's
// and an unknown version are refused, naming the file, and the file is
// left as it was.
func TestCountersRefused(t *testing.T) {
	good := countersFile(8, 3, []uint64{9, 9}, 1)
	badCRC := append([]byte(nil), good...)
	badCRC[20] ^= 1
	unknown := countersFile(9, 3, []uint64{9, 9}, 1)
	binary.BigEndian.PutUint32(unknown[offVersion:], 10)
	binary.BigEndian.PutUint32(unknown[countersCRC:], crc32.ChecksumIEEE(unknown[:countersCRC]))
	for name, file := range map[string][]byte{
		"crc": badCRC, "length": good[:200], "version": unknown, "long": append(countersFile(9, 1, nil, 1), 0),
	} {
		s, path := countersSpool(t)
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadModseqCounter("shared.folder"); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: ReadModseqCounter: %v, want an error naming %s", name, err, path)
		}
		if _, err := s.NextModseq(context.Background(), Entry{Name: "shared.folder"}, 1, Owner{UID: -1, GID: -1}); err == nil {
			t.Errorf("%s: NextModseq accepted it", name)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, file) {
			t.Errorf("%s: the file changed", name)
		}
	}
}

// TestCountersRewrite: each write is a new generation; a change that
// raises nothing does not rewrite the file (Cyrus compares before it
// writes); the file keeps its owner and mode; ReserveModseq reserves only
// a MODSEQ still above the counter.
func TestCountersRewrite(t *testing.T) {
	ctx := context.Background()
	s, path := countersSpool(t)
	if err := os.WriteFile(path, countersFile(9, 5, []uint64{100, 100}, 1), 0o640); err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = 4321, 8765
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	stat := func() (os.FileInfo, []byte) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi, b
	}
	e := Entry{Name: "shared.folder"}
	if n, err := s.NextModseq(ctx, e, 50, Owner{UID: 0, GID: 0}); err != nil || n != 101 {
		t.Fatalf("NextModseq = %d, %v; want 101", n, err)
	}
	fi, b := stat()
	checkV9(t, b, 6)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %o, want 640", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); uid >= 0 && (int(st.Uid) != uid || int(st.Gid) != gid) {
		t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}

	// Nothing to raise: the same inode, the same bytes.
	if n, err := s.SetModseq(ctx, e, 90, Owner{UID: 0, GID: 0}); err != nil || n != 101 {
		t.Fatalf("SetModseq = %d, %v; want 101", n, err)
	}
	fi2, b2 := stat()
	if !bytes.Equal(b, b2) || !os.SameFile(fi, fi2) {
		t.Error("SetModseq below the counter rewrote the file")
	}

	// A MODSEQ at or below the counter is not reserved, the file untouched.
	if ok, err := s.ReserveModseq(ctx, e, 101, Owner{UID: 0, GID: 0}); err != nil || ok {
		t.Fatalf("ReserveModseq(101) = %v, %v; want false", ok, err)
	}
	fi3, b3 := stat()
	if !bytes.Equal(b, b3) || !os.SameFile(fi, fi3) {
		t.Error("a refused ReserveModseq rewrote the file")
	}
	// One above is, and raises the counters to it.
	if ok, err := s.ReserveModseq(ctx, e, 105, Owner{UID: 0, GID: 0}); err != nil || !ok {
		t.Fatalf("ReserveModseq(105) = %v, %v; want true", ok, err)
	}
	_, b4 := stat()
	checkV9(t, b4, 7)
	if counterAt(t, b4, offHighestModseq) != 105 || counterAt(t, b4, offMailModseq) != 105 {
		t.Errorf("highest %d, mail %d; want 105", counterAt(t, b4, offHighestModseq), counterAt(t, b4, offMailModseq))
	}
}
