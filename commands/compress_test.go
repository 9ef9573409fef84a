package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/mbtool/mbtool/fixtures"
)

// zstdMagic starts every zstd frame (RFC 8878, 3.1.1).
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// dumpBody is a dump without its header line and trailer line: what two
// dumps of the same spool share byte for byte (the header holds the time).
func dumpBody(t *testing.T, b []byte) []byte {
	t.Helper()
	eol := bytes.Index(b, []byte("\r\n"))
	tr := bytes.LastIndex(b, []byte("MBTOOL TRAILER %("))
	if !bytes.HasPrefix(b, []byte("MBTOOL HEADER %(FORMAT 1 ")) || eol < 0 || tr < eol {
		t.Fatalf("not a plain dump: %.40q", b)
	}
	return b[eol+2 : tr]
}

// The name decides compression unless --compress says otherwise: the
// bytes written are a zstd frame exactly when they should be, and inside
// it is the plain dump.
func TestDumpCompressionByName(t *testing.T) {
	conf := fixtures.UnpackT(t)
	dir := t.TempDir()
	plainPath := filepath.Join(dir, "ref.dlist")
	if code, _, stderr := run(t, "dump", "-C", conf, "-q", "--user", "bob", "-o", plainPath); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	ref, err := os.ReadFile(plainPath)
	if err != nil {
		t.Fatal(err)
	}
	want := dumpBody(t, ref)
	// Plain text under a .zst name is refused (issue 19, item 4).
	if code, _, stderr := run(t, "dump", "-C", conf, "-q", "--user", "bob", "-o", filepath.Join(dir, "bob.dlist.zst"), "--compress", "none"); code != ExitUsage {
		t.Errorf("--compress none -o bob.dlist.zst: exit %d, want %d\n%s", code, ExitUsage, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bob.dlist.zst")); err == nil {
		t.Errorf("--compress none -o bob.dlist.zst left a file")
	}
	for _, tc := range []struct {
		name  string
		flags []string
		zstd  bool
	}{
		{"bob.dlist.zst", nil, true},
		{"bob.dlist", nil, false},
		{"bob.backup", []string{"--compress", "zstd"}, true},
		{"-", []string{"--compress", "zstd"}, true},
		{"-", nil, false},
	} {
		args := append([]string{"dump", "-C", conf, "-q", "--user", "bob", "-o"}, filepath.Join(dir, tc.name))
		if tc.name == "-" {
			args[len(args)-1] = "-"
		}
		args = append(args, tc.flags...)
		code, stdout, stderr := run(t, args...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d\n%s", args[1:], code, stderr)
		}
		got := []byte(stdout)
		if tc.name != "-" {
			if got, err = os.ReadFile(filepath.Join(dir, tc.name)); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, tc.name))
		}
		if isZstd := bytes.HasPrefix(got, zstdMagic); isZstd != tc.zstd {
			t.Errorf("-o %s %v: zstd %v, want %v (starts %.16q)", tc.name, tc.flags, isZstd, tc.zstd, got)
			continue
		}
		if tc.zstd {
			d, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err = d.DecodeAll(got, nil)
			d.Close()
			if err != nil {
				t.Errorf("-o %s %v: not one zstd stream: %v", tc.name, tc.flags, err)
				continue
			}
		}
		if !bytes.Equal(dumpBody(t, got), want) {
			t.Errorf("-o %s %v: the dump inside differs from a plain dump", tc.name, tc.flags)
		}
	}
}
