package partition

import (
	"strings"
	"testing"
)

func testConfig(t *testing.T, extra string) *Config {
	t.Helper()
	c, err := ParseConfig(strings.NewReader("configdirectory: /c\npartition-default: /p\n"+extra), "t.conf")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHashChar(t *testing.T) {
	tests := []struct {
		s    string
		full bool
		want byte
	}{
		{"alice", false, 'a'}, {"Bob", false, 'b'}, {"1abc", false, 'q'}, {"*U*alice", false, 'q'},
		{"", false, 'q'}, {"\xc3\xa9", false, 'q'},
		// lib/util.c dir_hash_c with fulldirhash, worked by hand:
		// "a" = 97, 97 % 23 = 5 → 'F'; "ab": (97<<3 ^ 97>>5) ^ 98 = 873, 873 % 23 = 22 → 'W'.
		{"a", true, 'F'}, {"ab", true, 'W'}, {"ab.cd", true, 'W'}, {"", true, 'A'},
	}
	for _, tt := range tests {
		if got := hashChar(tt.s, tt.full); got != tt.want {
			t.Errorf("hashChar(%q, %v) = %c, want %c", tt.s, tt.full, got, tt.want)
		}
	}
}

func TestPaths(t *testing.T) {
	hashed := testConfig(t, "hashimapspool: yes\nvirtdomains: on\n")
	flat := testConfig(t, "")
	tests := []struct {
		cfg        *Config
		name, want string
	}{
		// docs/cyrus/files.md §1 (checked against Cyrus): archive → a/archive,
		// archive.zebra → z/archive/zebra, a dot in a user name is '^'.
		{hashed, "archive", "/p/a/archive"},
		{hashed, "archive.zebra", "/p/z/archive/zebra"},
		{hashed, "user.jo^doe.Sent", "/p/j/user/jo^doe/Sent"},
		{hashed, "user.alice.Old Stuff", "/p/a/user/alice/Old Stuff"},
		{hashed, "shared.team", "/p/t/shared/team"},
		{hashed, "example.com!user.bob.x", "/p/domain/e/example.com/b/user/bob/x"},
		{hashed, "DELETED.user.bob.x.5f3a0b2c", "/p/u/DELETED/user/bob/x/5F3A0B2C"},
		{flat, "user.alice.Sent", "/p/user/alice/Sent"},
		{flat, "example.com!user.bob", "/p/domain/example.com/user/bob"},
	}
	for _, tt := range tests {
		if got := tt.cfg.hashPath("/p", tt.name); got != tt.want {
			t.Errorf("hashPath(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	s := &Spool{Config: hashed}
	for _, tt := range []struct {
		e    Entry
		want string
	}{
		{Entry{Name: "user.alice", UniqueID: "qpt1tt61xb8k3hdglt50efje", Type: "e", Partition: "default"}, "/p/uuid/q/p/qpt1tt61xb8k3hdglt50efje"},
		{Entry{Name: "user.alice", UniqueID: "qpt1tt61xb8k3hdglt50efje", Type: "el", Partition: "default"}, "/p/a/user/alice"},
	} {
		data, meta, err := s.Dirs(tt.e)
		if err != nil || data != tt.want || meta != tt.want {
			t.Errorf("Dirs(%+v) = %s %s %v, want %s", tt.e, data, meta, err, tt.want)
		}
	}
	if _, _, err := s.Dirs(Entry{Name: "x", Partition: "nope"}); err == nil || !strings.Contains(err.Error(), `partition "nope"`) {
		t.Errorf("unknown partition: %v", err)
	}
}

func TestMetaPaths(t *testing.T) {
	c := testConfig(t, "metapartition-default: /m\narchivepartition-default: /a\n"+
		"metapartition_files: index annotations\nmetadir-header-default: /h\n")
	s := &Spool{Config: c}
	e := Entry{Name: "user.alice", UniqueID: "ab12", Type: "e", Partition: "default"}
	want := map[string]string{
		FileHeader:      "/h/uuid/a/b/ab12/cyrus.header",
		FileIndex:       "/m/uuid/a/b/ab12/cyrus.index",
		FileAnnotations: "/m/uuid/a/b/ab12/cyrus.annotations",
		FileCache:       "/p/uuid/a/b/ab12/cyrus.cache",
	}
	for f, w := range want {
		if got, err := s.MetaPath(e, f); err != nil || got != w {
			t.Errorf("MetaPath(%s) = %s, %v; want %s", f, got, err, w)
		}
	}
	if a, _ := s.ArchiveDir(e); a != "/a/uuid/a/b/ab12" {
		t.Errorf("archive dir %s", a)
	}
	m := &Mailbox{DataDir: "/p/d", ArchiveDir: "/a/d"}
	if p := m.MessagePath(Record{UID: 7}); p != "/p/d/7." {
		t.Errorf("message path %s", p)
	}
	if p := m.MessagePath(Record{UID: 7, SystemFlags: InternalArchived}); p != "/a/d/7." {
		t.Errorf("archived message path %s", p)
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ name, db string }{
		{"user.alice.Sent", "user\x1falice\x1fSent"},
		{"user.jo^doe", "user\x1fjo.doe"},
		{"example.com!user.bob.a^b", "example.com\x1duser\x1fbob\x1fa.b"},
	} {
		if got := nameToDBName(tt.name); got != tt.db {
			t.Errorf("nameToDBName(%q) = %q", tt.name, got)
		}
		if got := dbnameToName(tt.db); got != tt.name {
			t.Errorf("dbnameToName(%q) = %q", tt.db, got)
		}
	}
	c := testConfig(t, "virtdomains: userid\nhashimapspool: 1\n")
	for _, tt := range []struct{ name, owner string }{
		{"user.alice", "alice"}, {"user.alice.Sent", "alice"}, {"user.jo^doe.x", "jo.doe"},
		{"example.com!user.bob", "bob@example.com"}, {"shared.team", ""}, {"user", ""},
		{"DELETED.user.bob.x.5F3A0B2C", "bob"},
	} {
		if got := (Entry{Name: tt.name}).Owner(c); got != tt.owner {
			t.Errorf("Owner(%q) = %q, want %q", tt.name, got, tt.owner)
		}
	}
	// Lock files (docs/cyrus/locks.md §2).
	for _, tt := range []struct{ lock, want string }{
		{namespaceLockName("alice"), "/c/lock/q/*U*alice.lock"},
		{namespaceLockName("fred@example.com"), "/c/lock/q/*U*fred@example^com.lock"},
		{"7p1fo30io6c7qj567c7744gn", "/c/lock/q/7p1fo30io6c7qj567c7744gn.lock"},
		{"user.alice.Sent", "/c/lock/a/user/alice/Sent.lock"},
	} {
		if got := c.lockPath(tt.lock); got != tt.want {
			t.Errorf("lockPath(%q) = %q, want %q", tt.lock, got, tt.want)
		}
	}
	s := &Spool{Config: c}
	if got := s.userInbox("jo.doe@example.com"); got != "example.com!user.jo^doe" {
		t.Errorf("userInbox %q", got)
	}
	if got := c.confUserPath("jo.doe@example.com", "seen"); got != "/c/domain/e/example.com/user/j/jo.doe.seen" {
		t.Errorf("confUserPath %q", got)
	}
	if got := c.confIDPath("ab12", "sub"); got != "/c/user/uuid/a/b/ab12/sub.db" {
		t.Errorf("confIDPath %q", got)
	}
	for _, tt := range []struct{ root, want string }{
		{"user.alice", "/c/quota/a/user.alice"},
		{"shared", "/c/quota/s/shared"},
		{"example.com!user.bob", "/c/domain/e/example.com/quota/b/user.bob"},
		{"example.com!", "/c/domain/e/example.com/quota/root"},
	} {
		if got, err := s.QuotaPath(tt.root); err != nil || got != tt.want {
			t.Errorf("QuotaPath(%q) = %q, %v; want %q", tt.root, got, err, tt.want)
		}
	}
}

func TestParseQuota(t *testing.T) {
	tests := []struct {
		in            string
		usage, limits map[string]int64
		modseq        uint64
	}{
		{"%(S (2014216 512000) M (54) AS (18) NF (7) MODSEQ 68)\n",
			map[string]int64{"STORAGE": 2014216, "MESSAGE": 54, "X-ANNOTATION-STORAGE": 18, "X-NUM-FOLDERS": 7},
			map[string]int64{"STORAGE": 512000}, 68},
		{"1000 2000", map[string]int64{"STORAGE": 1000}, map[string]int64{"STORAGE": 2000}, 0},
		{"1000 -1 5 M 3 10", map[string]int64{"STORAGE": 1000, "MESSAGE": 3}, map[string]int64{"MESSAGE": 10}, 0},
	}
	for _, tt := range tests {
		var q Quota
		if err := ParseQuota([]byte(tt.in), &q); err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if !equalMaps(q.Usage, tt.usage) || !equalMaps(q.Limits, tt.limits) || q.Modseq != tt.modseq {
			t.Errorf("%q: %+v", tt.in, q)
		}
	}
	for _, bad := range []string{"", "1", "x y", "1 2 FOO 3 4", "%(S 1)", "%(S (x))"} {
		var q Quota
		if err := ParseQuota([]byte(bad), &q); err == nil {
			t.Errorf("%q accepted: %+v", bad, q)
		}
	}
}

func TestParseSeen(t *testing.T) {
	r, err := ParseSeen([]byte("94ty7f9lp8n4s66v3rxe44nl"), []byte("1 1795878201 4 1795878201 1:2"))
	if err != nil || r.LastRead != 1795878201 || r.LastUID != 4 || r.LastChange != 1795878201 || r.SeenUIDs != "1:2" {
		t.Errorf("%+v %v", r, err)
	}
	if r, err := ParseSeen([]byte("k"), []byte("1 0 0 0 ")); err != nil || r.SeenUIDs != "" {
		t.Errorf("empty set: %+v %v", r, err)
	}
	for _, bad := range []string{"", "2 0 0 0 ", "1 x 0 0", "1 0 0", "1 0 -1 0 1"} {
		if _, err := ParseSeen([]byte("k"), []byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFlagNames(t *testing.T) {
	r := Record{SystemFlags: FlagSeen | FlagAnswered | FlagDeleted | FlagDraft | FlagFlagged | InternalExpunged}
	r.UserFlags[0] = 1<<0 | 1<<2 // slot 2 has no name: left out
	r.UserFlags[1] = 1 << 1      // slot 33
	names := make([]string, 34)
	names[0], names[33] = "$Label1", "Junk"
	got := strings.Join(FlagNames(r, names), " ")
	if want := `\Deleted \Answered \Flagged \Draft \Expunged \Seen $Label1 Junk`; got != want {
		t.Errorf("flags %q, want %q", got, want)
	}
	if OptionsString(OptHasAlarms|OptPOP3NewUIDL|OptSharedSeen|OptDupDeliver|OptNeedsRepack) != "PSDA" {
		t.Error("options")
	}
}

// TestHashPathOneComponent checks hashPath's shortcut for a name of one
// component (a uniqueid's lock name, "*U*alice") against the general
// way, with and without hashing and full hashing.
func TestHashPathOneComponent(t *testing.T) {
	for _, extra := range []string{"", "hashimapspool: true\n", "hashimapspool: true\nfulldirhash: true\n"} {
		c := testConfig(t, extra)
		for _, name := range []string{"88g5e47j64hbelofehlopa1u", "*U*alice", "shared", "x", "Zed", "*U*bob@example.com",
			"user.alice", "a^b", "example.com!user.bob", "DELETED"} {
			if got, want := c.hashPath("/l", name), c.hashPathParsed("/l", name); got != want {
				t.Errorf("%q: hashPath(%q) = %q, want %q", extra, name, got, want)
			}
		}
	}
}

// TestDBNameMapping checks dbnameToName and nameToDBName, which map byte
// for byte, against the component-wise conversion they replace.
func TestDBNameMapping(t *testing.T) {
	oldToName := func(db string) string {
		var b strings.Builder
		if i := strings.IndexByte(db, dbDomainSep); i >= 0 {
			b.WriteString(db[:i])
			b.WriteByte('!')
			db = db[i+1:]
		}
		for i, p := range strings.Split(db, string(rune(dbHierSep))) {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(escapeComp(p))
		}
		return b.String()
	}
	oldToDB := func(name string) string {
		var b strings.Builder
		if i := strings.IndexByte(name, '!'); i >= 0 {
			b.WriteString(name[:i])
			b.WriteByte(dbDomainSep)
			name = name[i+1:]
		}
		for i, p := range strings.Split(name, ".") {
			if i > 0 {
				b.WriteByte(dbHierSep)
			}
			b.WriteString(strings.ReplaceAll(p, "^", "."))
		}
		return b.String()
	}
	for _, s := range []string{"", "user", "user.alice", "user.alice.Sent", "user.a^b.x^y", "example.com!user.bob",
		"ex.am^ple!user.b^ob.c", "a!b!c.d", "DELETED.user.dave.Gone.6B0F37A3", "shared.team", "user\x1falice\x1fa.b",
		"example.com\x1duser\x1fbob", "x\x1dy\x1dz\x1f.", "^.!", "!", ".", "\x1d", "\x1f"} {
		if got, want := dbnameToName(s), oldToName(s); got != want {
			t.Errorf("dbnameToName(%q) = %q, want %q", s, got, want)
		}
		if got, want := nameToDBName(s), oldToDB(s); got != want {
			t.Errorf("nameToDBName(%q) = %q, want %q", s, got, want)
		}
	}
}
