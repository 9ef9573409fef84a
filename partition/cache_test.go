package partition

import (
	"context"
	"os"
	"testing"
)

// cyrus.cache is opened when a record of the snapshot may have a cache
// record: in the bundled Cyrus spool every mailbox has messages, and
// CacheRecord gives cache records for them. A mailbox without records
// leaves it closed (none in the fixture; TestAnyCacheRecord, and dump's
// TestOpensPerMailbox for records without cache records).
func TestOpenCacheOnlyForCacheRecords(t *testing.T) {
	s, _ := openFixture(t)
	entries, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var withRecs, empty int
	for _, e := range entries {
		if !s.real(e) {
			continue
		}
		p, err := s.MetaPath(e, FileCache)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err != nil {
			continue
		}
		m, err := s.OpenMailbox(ctx, e)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		n, cached := 0, 0
		if err := m.Records(func(r Record) error {
			n++
			if m.CacheRecord(r) != nil {
				cached++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		switch {
		case n == 0 && m.cache != nil:
			t.Errorf("%s: no records, cyrus.cache opened", e.Name)
		case n == 0:
			empty++
		case cached == 0:
			t.Errorf("%s: %d records, no cache record read", e.Name, n)
		default:
			withRecs++
		}
		m.Close()
	}
	if withRecs == 0 {
		t.Fatalf("%d mailboxes with records and cyrus.cache (and %d without records): want some", withRecs, empty)
	}
}

// anyCacheRecord reads the cache fields of every record: one record with
// a cache record among many without is found, whatever its place.
func TestAnyCacheRecord(t *testing.T) {
	const rs = 112
	m := &Mailbox{Index: IndexHeader{RecordSize: rs}, recs: make([]byte, 5*rs)}
	if m.anyCacheRecord() {
		t.Fatal("records with cache offset 0: a cache record found")
	}
	for i := range 5 {
		clear(m.recs)
		b := m.recs[i*rs:]
		be.PutUint32(b[24:], 4096)         // cache offset
		be.PutUint32(b[56:], CacheVersion) // cache version, offset's high bits 0
		if !m.anyCacheRecord() {
			t.Errorf("record %d of 5 with a cache record: not found", i+1)
		}
		be.PutUint32(b[32:], InternalArchived)
		if m.anyCacheRecord() {
			t.Errorf("archived record %d (its cache is cyrus.archivecache): taken for one in cyrus.cache", i+1)
		}
	}
	m.recs = nil
	if m.anyCacheRecord() {
		t.Error("no records: a cache record found")
	}
}
