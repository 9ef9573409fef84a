package partition

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
)

// TestEncodeIndexRoundTrip re-encodes the header and every record of a
// real Cyrus 3.6 index and expects the original bytes.
func TestEncodeIndexRoundTrip(t *testing.T) {
	b, err := os.ReadFile("testdata/alice.index")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseIndexHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.MinorVersion != IndexVersion {
		t.Skipf("testdata index is version %d", h.MinorVersion)
	}
	h.Options, h.HighestModseq = h.RawOptions, h.RawHighestModseq
	if got := AppendIndexHeader(nil, h); !bytes.Equal(got, b[:IndexHeaderSize]) {
		t.Errorf("header:\n got %x\nwant %x", got, b[:IndexHeaderSize])
	}
	if h.NumRecords == 0 {
		t.Fatal("testdata index has no records")
	}
	for i := 0; i < int(h.NumRecords); i++ {
		raw := b[IndexHeaderSize+i*IndexRecordSize:][:IndexRecordSize]
		r, err := ParseRecord(raw, h.MinorVersion)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendRecord(nil, r); !bytes.Equal(got, raw) {
			t.Errorf("record %d (uid %d):\n got %x\nwant %x", i+1, r.UID, got, raw)
		}
	}
}

func TestEncodeHeaderRoundTrip(t *testing.T) {
	for _, name := range []string{"testdata/alice.header"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodeHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, b)
		}
	}
}

func TestEncodeHeaderValues(t *testing.T) {
	tests := []struct {
		h    Header
		want string
	}{
		{Header{Type: "e", Name: "user.alice.Old Stuff", UniqueID: "abc", ACL: []ACLEntry{{"alice", "lrs"}}},
			`%(T e N "user.alice.Old Stuff" I abc A %(alice lrs))`},
		{Header{Type: "e", Name: "shared", UniqueID: "x1", UserFlags: []string{"a", "", "b", ""}},
			`%(T e N shared I x1 A %() U (a NIL b))`},
	}
	for _, tt := range tests {
		got, err := EncodeHeader(tt.h)
		if err != nil {
			t.Fatal(err)
		}
		want := HeaderMagic + tt.want + "\n"
		if string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
		back, err := ParseHeader(got)
		if err != nil {
			t.Fatalf("parsing %q: %v", got, err)
		}
		if back.Name != tt.h.Name || back.UniqueID != tt.h.UniqueID || len(back.UserFlags) != len(trimFlags(tt.h.UserFlags)) {
			t.Errorf("round trip: %+v", back)
		}
	}
}

// TestEncodeEntry checks the values against lines of a real mailboxes.db
// (as cyr_dbtool printed it on a Cyrus 3.6.1 lab).
func TestEncodeEntry(t *testing.T) {
	e := Entry{Name: "user.alice.Old Stuff", UniqueID: "pn9nmbeujmfjjlnglmvdr90q", Partition: "default",
		Type: "e", UIDValidity: 1795878199, CreatedModseq: 1, FolderModseq: 1, MTime: 1795878198,
		ACL: []ACLEntry{{"alice", "lrswipkxtecdan"}}}
	n, err := EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `%(T e I pn9nmbeujmfjjlnglmvdr90q P default V 1795878199 C 1 F 1 M 1795878198 A %(alice lrswipkxtecdan))`; string(n) != want {
		t.Errorf("N value\n got %s\nwant %s", n, want)
	}
	i, err := EncodeIDEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := "%(T e N \"user\x1falice\x1fOld Stuff\" P default V 1795878199 C 1 F 1 M 1795878198 A %(alice lrswipkxtecdan) H ())"; string(i) != want {
		t.Errorf("I value\n got %q\nwant %q", i, want)
	}
	back, err := parseEntry(NameKey(e.Name)[1:], n)
	if err != nil {
		t.Fatal(err)
	}
	if back.Name != e.Name || back.UniqueID != e.UniqueID || back.UIDValidity != e.UIDValidity || len(back.ACL) != 1 {
		t.Errorf("round trip: %+v", back)
	}
}

func TestEncodeQuotaSeenAnnotation(t *testing.T) {
	q := Quota{Root: "user.alice", Limits: map[string]int64{QuotaStorage: 512000},
		Usage: map[string]int64{QuotaStorage: 2014216, QuotaMessage: 54, QuotaAnnotationStorage: 18, QuotaNumFolders: 7}, Modseq: 68}
	b, err := EncodeQuota(q)
	if err != nil {
		t.Fatal(err)
	}
	if want := "%(S (2014216 512000) M (54) AS (18) NF (7) MODSEQ 68)\n"; string(b) != want {
		t.Errorf("quota %q, want %q", b, want)
	}
	var back Quota
	if err := ParseQuota(b, &back); err != nil || back.Usage[QuotaMessage] != 54 || back.Limits[QuotaStorage] != 512000 {
		t.Errorf("quota round trip: %+v, %v", back, err)
	}
	s := SeenRecord{UniqueID: "x", LastRead: 1795878201, LastUID: 4, LastChange: 1795878201, SeenUIDs: "1:2"}
	if got := string(EncodeSeen(s)); got != "1 1795878201 4 1795878201 1:2" {
		t.Errorf("seen %q", got)
	}
	if r, err := ParseSeen([]byte("x"), EncodeSeen(SeenRecord{})); err != nil || r.SeenUIDs != "" {
		t.Errorf("empty seen: %+v %v", r, err)
	}
	// A value as a Cyrus 3.6.1 lab wrote it (docs/cyrus/files.md §8).
	want := "\x00\x00\x00\x0d\x00\x00\x00\x00Alice and Bob\x00text/plain\x00" + string(make([]byte, 17))
	if got := string(EncodeAnnotation([]byte("Alice and Bob"), 0)); got != want {
		t.Errorf("annotation %q, want %q", got, want)
	}
	v, m, f, err := annotationValue(EncodeAnnotation([]byte("v"), 42))
	if err != nil || string(v) != "v" || m != 42 || f != 0 {
		t.Errorf("annotation round trip: %q %d %d %v", v, m, f, err)
	}
}

func TestUpdateTwoskip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "seen.db")
	owner := Owner{UID: -1, GID: -1}
	s := &Spool{Config: &Config{ConfigDir: dir}}
	steps := []struct {
		set  map[string]string
		del  []string
		want map[string]string
	}{
		{set: map[string]string{"b": "2", "a": "1"}, want: map[string]string{"a": "1", "b": "2"}},
		{set: map[string]string{"c": "3", "a": "9"}, del: []string{"b"}, want: map[string]string{"a": "9", "c": "3"}},
		{del: []string{"a", "c", "zz"}, want: map[string]string{}},
	}
	for i, st := range steps {
		err := s.UpdateTwoskip(path, true, owner, func(tx *TwoskipTx) error {
			for k, v := range st.set {
				tx.Set([]byte(k), []byte(v))
			}
			for _, k := range st.del {
				tx.Delete([]byte(k))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		db, err := cyrusdb.OpenTwoskip(path)
		if err != nil {
			t.Fatal(err)
		}
		got := twoskipRecords(t, db)
		if g := db.Generation(); g != 1 {
			t.Errorf("step %d: generation %d: the file was rewritten, not changed in place", i, g)
		}
		db.Close()
		if len(got) != len(st.want) {
			t.Errorf("step %d: got %v, want %v", i, got, st.want)
		}
		for k, v := range st.want {
			if got[k] != v {
				t.Errorf("step %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
	if _, err := os.Stat(path + ".NEW"); !os.IsNotExist(err) {
		t.Errorf(".NEW left behind: %v", err)
	}
}

// A missing twoskip file is written whole (newTwoskip): not at all when fn
// changes nothing; when another writer creates it while fn runs, fn runs
// again on that file, in a transaction, and both writers' records stay; a
// symlink in its place is refused.
func TestUpdateTwoskipNewFile(t *testing.T) {
	dir := t.TempDir()
	owner := Owner{UID: -1, GID: -1}
	s := &Spool{Config: &Config{ConfigDir: dir}}
	path := filepath.Join(dir, "u", "seen.db")
	if err := s.UpdateTwoskip(path, true, owner, func(tx *TwoskipTx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("a database without a change was created: %v", err)
	}
	calls := 0
	err := s.UpdateTwoskip(path, true, owner, func(tx *TwoskipTx) error {
		calls++
		if calls == 1 {
			// Another writer creates the file meanwhile.
			if err := s.UpdateTwoskip(path, true, owner, func(tx *TwoskipTx) error {
				tx.Set([]byte("other"), []byte("1"))
				return nil
			}); err != nil {
				return err
			}
		}
		if _, ok, err := tx.Get([]byte("other")); err != nil || ok != (calls == 2) {
			t.Errorf("call %d: other's record seen %v (%v)", calls, ok, err)
		}
		tx.Set([]byte("mine"), []byte("2"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("fn called %d times, want 2 (again on the file created meanwhile)", calls)
	}
	db, err := cyrusdb.OpenTwoskip(path)
	if err != nil {
		t.Fatal(err)
	}
	got := twoskipRecords(t, db)
	if err := db.Check(); err != nil {
		t.Error(err)
	}
	db.Close()
	if len(got) != 2 || got["other"] != "1" || got["mine"] != "2" {
		t.Errorf("got %v, want other=1 mine=2", got)
	}
	link := filepath.Join(dir, "v", "seen.db")
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateTwoskip(link, true, owner, func(tx *TwoskipTx) error {
		tx.Set([]byte("x"), []byte("y"))
		return nil
	}); err == nil {
		t.Error("a symlink in the place of the database was written through")
	}
}

// twoskipRecords returns every record of db.
func twoskipRecords(t *testing.T, db *cyrusdb.Twoskip) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := db.ForEach(nil, func(k, v []byte) error { got[string(k)] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}
