package partition

import (
	"errors"
	"hash/crc32"
	"os"
	"reflect"
	"testing"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		file string
		want Header
	}{
		// user.alice of a populated lab, as Cyrus 3.6.1 wrote it.
		{"testdata/alice.header", Header{Type: "e", Name: "user.alice", UniqueID: "bvv5b4tvdjuiutdcud6qob82",
			QuotaRoot: "user.alice", ACL: []ACLEntry{{"alice", "lrswipkxtecdan"}}, UserFlags: []string{"$Label1", "Junk"}}},
		// The same in the pre-3.0 form (which 3.6's mbexamine reads, see
		// docs/cyrus/files.md §2), with an empty flag slot and two ACL
		// entries.
		{"testdata/old.header", Header{UniqueID: "bvv5b4tvdjuiutdcud6qob82", QuotaRoot: "user.alice",
			ACL: []ACLEntry{{"alice", "lrswipkxtecdan"}, {"bob", "lr"}}, UserFlags: []string{"$Label1", "", "Junk"}, Old: true}},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		tt.want.FileCRC = crc32.ChecksumIEEE(b)
		if !reflect.DeepEqual(h, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.file, h, tt.want)
		}
	}
}

func TestParseHeaderForms(t *testing.T) {
	tests := []struct {
		name, line string
		want       Header
	}{
		{"nil slots", "%(T e N shared I x1 U ($Label1 NIL NIL Junk NIL))\n",
			Header{Type: "e", Name: "shared", UniqueID: "x1", UserFlags: []string{"$Label1", "", "", "Junk"}}},
		{"quoted name, empty ACL", "%(T el N \"user.alice.Old Stuff\" I x2 Q user.alice A %())\n",
			Header{Type: "el", Name: "user.alice.Old Stuff", UniqueID: "x2", QuotaRoot: "user.alice", ACL: []ACLEntry{}}},
		{"old, no uniqueid", "user.bob\n\n\n", Header{QuotaRoot: "user.bob", Old: true}},
		{"old, no quota root", "\tuid3\nf1\nanyone\tlrs\t\n",
			Header{UniqueID: "uid3", UserFlags: []string{"f1"}, ACL: []ACLEntry{{"anyone", "lrs"}}, Old: true}},
	}
	for _, tt := range tests {
		b := []byte(HeaderMagic + tt.line)
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		tt.want.FileCRC = crc32.ChecksumIEEE(b)
		if !reflect.DeepEqual(h, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, h, tt.want)
		}
	}
	for _, bad := range []string{"", "%(T e N x I y", "%(T e N x I y))\n", "%(T e N x U %(a b))\n",
		"%(A (a b))\n", "\tuid\n", "q\tuid\nflags\n", "q\t\nflags\nacl\n"} {
		if _, err := ParseHeader([]byte(HeaderMagic + bad)); !errors.Is(err, ErrBadFormat) {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, name := range []string{"testdata/alice.header", "testdata/old.header"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(HeaderMagic + "%(T e N a I b A %(x {3+}\r\nabc) U (NIL))\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrBadFormat) {
				t.Fatalf("error %v is not ErrBadFormat", err)
			}
			return
		}
		if len(h.UserFlags) > maxUserFlags || len(h.UserFlags) > 0 && h.UserFlags[len(h.UserFlags)-1] == "" {
			t.Fatalf("user flags %q", h.UserFlags)
		}
		if h.FileCRC != crc32.ChecksumIEEE(b) {
			t.Fatal("file CRC")
		}
	})
}
