package restore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/syncrec"
)

// compareMailbox checks that dst in the target is src of the source as
// Cyrus would serve it: index header, cyrus.header, every record, message
// files (bytes and mtime), annotations, mailboxes.db entry. rename maps
// users as --map-user does.
func compareMailbox(t *testing.T, src *partition.Spool, srcName string, dst *partition.Spool, dstName string, rename func(string) string) {
	t.Helper()
	compareMailboxOpt(t, src, srcName, dst, dstName, rename, false)
}

// compareMailboxOpt is compareMailbox; with contentOnly, the
// mailboxes.db entry and the mailbox annotations are not compared (for a
// replaced mailbox caught between its directory swap and registration).
func compareMailboxOpt(t *testing.T, src *partition.Spool, srcName string, dst *partition.Spool, dstName string, rename func(string) string, contentOnly bool) {
	t.Helper()
	ctx := context.Background()
	se, err := src.Lookup(srcName)
	if err != nil {
		t.Fatal(err)
	}
	de, err := dst.Lookup(dstName)
	if err != nil {
		t.Fatalf("restored mailbox: %v", err)
	}
	sm, err := src.OpenMailbox(ctx, se)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	dm, err := dst.OpenMailbox(ctx, de)
	if err != nil {
		t.Fatalf("opening restored %s: %v", dstName, err)
	}
	defer dm.Close()

	if !contentOnly && (de.UIDValidity != se.UIDValidity || de.CreatedModseq != se.CreatedModseq || de.FolderModseq != se.FolderModseq) {
		t.Errorf("%s: entry %+v, source %+v", dstName, de, se)
	}
	wantACL := make([]partition.ACLEntry, len(se.ACL))
	for i, a := range se.ACL {
		wantACL[i] = partition.ACLEntry{ID: rename(a.ID), Rights: a.Rights}
	}
	if !contentOnly && !reflect.DeepEqual(de.ACL, wantACL) || !reflect.DeepEqual(dm.Header.ACL, wantACL) {
		t.Errorf("%s: ACL %v / header %v, want %v", dstName, de.ACL, dm.Header.ACL, wantACL)
	}
	if dm.Header.Name != dstName || dm.Header.UniqueID != de.UniqueID {
		t.Errorf("%s: header names %s %s", dstName, dm.Header.Name, dm.Header.UniqueID)
	}
	if !reflect.DeepEqual(dm.Header.UserFlags, sm.Header.UserFlags) {
		t.Errorf("%s: user flags %q, source %q", dstName, dm.Header.UserFlags, sm.Header.UserFlags)
	}
	// (A restored mailbox takes the quota root the target has for it, so
	// only a root the source had is expected.)
	if want := renameName(sm.Header.QuotaRoot, rename); want != "" && dm.Header.QuotaRoot != want {
		t.Errorf("%s: quota root %q, want %q", dstName, dm.Header.QuotaRoot, want)
	}
	sh, dh := sm.Index, dm.Index
	// The source's cache records travel with the dump: NEEDS_REPACK only
	// when one is missing, and then the generation is one less, so that it
	// is the source's once Cyrus has repacked.
	uncached := false
	if err := sm.Records(func(r partition.Record) error {
		uncached = uncached || !r.Unlinked() && sm.CacheRecord(r) == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantGen := sh.Generation
	if uncached {
		wantGen--
	}
	if uncached != (dh.Options&partition.OptNeedsRepack != 0) || dh.Generation != wantGen {
		t.Errorf("%s: NEEDS_REPACK %v generation %d, want %v %d", dstName,
			dh.Options&partition.OptNeedsRepack != 0, dh.Generation, uncached, wantGen)
	}
	if dh.DeletedModseq != sh.DeletedModseq {
		t.Errorf("%s: deletedmodseq %d, source %d", dstName, dh.DeletedModseq, sh.DeletedModseq)
	}
	if dh.HeaderFileCRC != dm.Header.FileCRC {
		t.Errorf("%s: header_file_crc %08x, cyrus.header has %08x", dstName, dh.HeaderFileCRC, dm.Header.FileCRC)
	}
	type fields struct {
		UIDValidity, LastUID, Exists, NumRecords, Deleted, Answered, Flagged, Unseen uint32
		RecentUID, RecentTime, LastAppendDate, POP3LastLogin, POP3ShowAfter          uint32
		SyncCRC, SyncCRCAnnot, QuotaAnnotUsed, FirstExpunged, Options                uint32
		HighestModseq, QuotaMailboxUsed, CreatedModseq                               uint64
	}
	pick := func(h partition.IndexHeader) fields {
		return fields{h.UIDValidity, h.LastUID, h.Exists, h.NumRecords, h.Deleted, h.Answered, h.Flagged, h.Unseen,
			h.RecentUID, h.RecentTime, h.LastAppendDate, h.POP3LastLogin, h.POP3ShowAfter,
			h.SyncCRC, h.SyncCRCAnnot, h.QuotaAnnotUsed, h.FirstExpunged, h.Options &^ partition.OptNeedsRepack,
			h.HighestModseq, h.QuotaMailboxUsed, h.CreatedModseq}
	}
	a, b := pick(dh), pick(sh)
	if dstName != srcName {
		a.SyncCRCAnnot = b.SyncCRCAnnot // annotation owners renamed: checked below
	}
	if a != b {
		t.Errorf("%s: index header\n got %+v\nwant %+v", dstName, a, b)
	}
	// The stored sync CRCs are those of the records as stored.
	crc := syncrec.NewCRC()
	if err := dm.Records(func(r partition.Record) error {
		rec := &syncrec.Record{UID: r.UID, Modseq: r.Modseq, LastUpdated: int64(r.LastUpdated),
			Flags: dm.FlagNames(r), InternalDate: int64(r.InternalDate), GUID: r.GUID}
		for _, a := range dm.RecordAnnotations(r.UID) {
			rec.Annotations = append(rec.Annotations, syncrec.Annotation(a))
		}
		virt := func(entry, v string) {
			rec.Annotations = append(rec.Annotations, syncrec.Annotation{Entry: entry, Value: []byte(v)})
		}
		if r.CID != 0 {
			virt(syncrec.AnnotThrID, fmt.Sprintf("%016x", r.CID))
		}
		if r.SaveDate != 0 {
			virt(syncrec.AnnotSaveDate, fmt.Sprint(r.SaveDate))
		}
		if r.CreatedModseq != 0 {
			virt(syncrec.AnnotCreatedModseq, fmt.Sprint(r.CreatedModseq))
		}
		crc.Add(rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if crc.Basic != dh.SyncCRC || crc.Annot != dh.SyncCRCAnnot {
		t.Errorf("%s: sync CRCs %d %d, records give %d %d", dstName, dh.SyncCRC, dh.SyncCRCAnnot, crc.Basic, crc.Annot)
	}
	var srecs []partition.Record
	if err := sm.Records(func(r partition.Record) error { srecs = append(srecs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	i := 0
	err = dm.Records(func(r partition.Record) error {
		if i >= len(srecs) {
			return fmt.Errorf("extra record UID %d", r.UID)
		}
		s := srecs[i]
		i++
		if sc := sm.CacheRecord(s); sc == nil && (r.CacheOffset != 0 || r.CacheCRC != 0) {
			t.Errorf("%s UID %d: cache fields set, the source has no cache record", dstName, r.UID)
		} else if sc == nil {
			s.CacheCRC = 0
		} else if !bytes.Equal(dm.CacheRecord(r), sc) {
			t.Errorf("%s UID %d: cache record differs from the source's", dstName, r.UID)
		}
		s.CacheOffset, s.RecordCRC = 0, 0
		r.CacheOffset, r.RecordCRC = 0, 0
		if r != s {
			t.Errorf("%s UID %d: record\n got %+v\nwant %+v", dstName, r.UID, r, s)
		}
		if r.Unlinked() {
			return nil
		}
		p := dm.MessagePath(r)
		g, n, err := guid.File(p)
		if err != nil || g != r.GUID || n != int64(r.Size) {
			t.Errorf("%s UID %d: file %s: guid %s size %d (%v)", dstName, r.UID, p, g, n, err)
		}
		if fi, err := os.Stat(p); err == nil && fi.ModTime().Unix() != int64(r.InternalDate) {
			t.Errorf("%s UID %d: mtime %v, internaldate %v", dstName, r.UID, fi.ModTime().Unix(), r.InternalDate)
		}
		if !reflect.DeepEqual(renameAnnots(sm.RecordAnnotations(r.UID), rename), dm.RecordAnnotations(r.UID)) {
			t.Errorf("%s UID %d: annotations %v, source %v", dstName, r.UID, dm.RecordAnnotations(r.UID), sm.RecordAnnotations(r.UID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(srecs) {
		t.Errorf("%s: %d records, source has %d", dstName, i, len(srecs))
	}
	if !contentOnly && !reflect.DeepEqual(renameAnnots(sm.Annotations(), rename), dm.Annotations()) {
		t.Errorf("%s: mailbox annotations %v, source %v", dstName, dm.Annotations(), sm.Annotations())
	}
}

func renameName(name string, rename func(string) string) string {
	for _, p := range []string{"user.alice", "user.bob"} {
		u := strings.TrimPrefix(p, "user.")
		if name == p || strings.HasPrefix(name, p+".") {
			return "user." + rename(u) + name[len(p):]
		}
	}
	return name
}

func renameAnnots(as []partition.Annotation, rename func(string) string) []partition.Annotation {
	if as == nil {
		return nil
	}
	out := make([]partition.Annotation, len(as))
	for i, a := range as {
		if a.UserID != "" {
			a.UserID = rename(a.UserID)
		}
		out[i] = a
	}
	return out
}

func same(s string) string { return s }

var fixtureAlice = []string{"user.alice", "user.alice.Archive", "user.alice.Archive.2019",
	"user.alice.Entw&APw-rfe", "user.alice.Old Stuff", "user.alice.Sent", "user.alice.team"}

// TestRoundTrip dumps alice and bob from the real fixture spool and
// restores them into an empty target.
func TestRoundTrip(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"}, "shared", "shared.team")
	target := emptyTarget(t, "")
	start := time.Now()
	sum, err := run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored %d mailboxes, %d messages in %v", len(sum.Mailboxes), sum.Messages, time.Since(start))
	if len(sum.Problems) > 0 {
		t.Errorf("problems: %v", sum.Problems)
	}
	names := append(append([]string{}, fixtureAlice...), "user.bob", "shared", "shared.team")
	if n := sum.Count(ActionCreate); n != len(names) {
		t.Errorf("%d created, want %d: %+v", n, len(names), sum.Mailboxes)
	}
	for _, name := range names {
		compareMailbox(t, src, name, target, name, same)
	}
	for _, m := range sum.Mailboxes {
		if m.IDFrom == result.IDNew {
			t.Errorf("%s got a new uniqueid in an empty target", m.Name)
		}
	}
	for _, user := range []string{"alice", "bob"} {
		want, err := src.ReadSeen(user)
		if err != nil {
			t.Fatal(err)
		}
		got, err := target.ReadSeen(user)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("seen of %s: %+v, want %+v", user, got, want)
		}
		ws, _ := src.ReadSubs(user)
		gs, err := target.ReadSubs(user)
		if err != nil || !reflect.DeepEqual(gs, ws) {
			t.Errorf("subscriptions of %s: %q (%v), want %q", user, gs, err, ws)
		}
	}
	wq, err := src.ReadQuota("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	gq, err := target.ReadQuota("user.alice")
	if err != nil || !reflect.DeepEqual(gq.Limits, wq.Limits) || !reflect.DeepEqual(gq.Usage, wq.Usage) {
		t.Errorf("quota %+v (%v), want %+v", gq, err, wq)
	}

	// A second run finds everything in place and changes nothing.
	before := digest(t, target)
	sum, err = run(t, target, dump, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := sum.Count(ActionKeep); n != len(names) {
		t.Errorf("second run: %d kept, want %d: %+v", n, len(names), sum.Mailboxes)
	}
	after := digest(t, target)
	for p, h := range before {
		if after[p] != h && !strings.HasSuffix(p, "/quota/a/user.alice") {
			t.Errorf("second run changed %s", p)
		}
	}
}

func TestDryRun(t *testing.T) {
	dump, _ := fixtureDump(t, []string{"alice"})
	target := emptyTarget(t, "")
	before := digest(t, target)
	sum, err := run(t, target, dump, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	sameDigest(t, before, digest(t, target))
	if n := sum.Count(ActionCreate); n != len(fixtureAlice) {
		t.Errorf("dry run: %d to create, want %d: %+v", n, len(fixtureAlice), sum.Mailboxes)
	}
	for _, m := range sum.Mailboxes {
		if m.Applied || m.Records == 0 && m.Name == "user.alice" {
			t.Errorf("dry run result %+v", m)
		}
	}
}

// TestMapUserIntoSource restores alice's dump into the spool it came from
// as carol: every mailbox gets a new uniqueid, bob's seen state follows.
func TestMapUserIntoSource(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"})
	target := src // the same spool
	sum, err := run(t, target, dump, Options{MapUsers: map[string]string{"alice": "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(ActionCreate) != len(fixtureAlice) || sum.Count(ActionKeep) != 1 || len(sum.Problems) > 0 {
		t.Fatalf("%+v %v", sum.Mailboxes, sum.Problems)
	}
	rename := func(u string) string {
		if u == "alice" {
			return "carol"
		}
		return u
	}
	ids := map[string]string{}
	for _, m := range sum.Mailboxes {
		if m.Action != ActionCreate {
			continue
		}
		if m.IDFrom != result.IDNew {
			t.Errorf("%s kept uniqueid %s", m.Name, m.UniqueID)
		}
		compareMailbox(t, src, m.Source, target, m.Name, rename)
		e, _ := src.Lookup(m.Source)
		ids[e.UniqueID] = m.UniqueID
	}
	seen, err := target.ReadSeen("bob")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]partition.SeenRecord{}
	for _, s := range seen {
		have[s.UniqueID] = s
	}
	for old, nu := range ids {
		if o, ok := have[old]; ok {
			n, ok := have[nu]
			if !ok || n.SeenUIDs != o.SeenUIDs {
				t.Errorf("bob's seen for %s (was %s): %+v, want %+v", nu, old, n, o)
			}
		}
	}
	subs, err := target.ReadSubs("carol")
	if err != nil || len(subs) != len(fixtureAlice) || subs[0] != "user.carol" {
		t.Errorf("carol's subscriptions %q %v", subs, err)
	}
	if q, err := target.ReadQuota("user.carol"); err != nil || q.Limits[partition.QuotaStorage] != 512000 {
		t.Errorf("carol's quota %+v %v", q, err)
	}
}

// TestReplace restores alice over herself: each mailbox is replaced and
// keeps its uniqueid.
func TestReplace(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice"})
	target := openSpool(t, src.Config.Path)
	e, _ := target.Lookup("user.alice.Sent")
	sum, err := run(t, target, dump, Options{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := sum.Count(ActionReplace); n != len(fixtureAlice) || len(sum.Problems) > 0 {
		t.Fatalf("%d replaced: %+v %v", n, sum.Mailboxes, sum.Problems)
	}
	for _, name := range fixtureAlice {
		compareMailbox(t, src, name, target, name, same)
	}
	if e2, _ := target.Lookup("user.alice.Sent"); e2.UniqueID != e.UniqueID {
		t.Errorf("uniqueid changed from %s to %s", e.UniqueID, e2.UniqueID)
	}
	for _, p := range target.Config.Partitions {
		if m, _ := filepath.Glob(filepath.Join(p, stagePrefix+"*")); len(m) > 0 {
			t.Errorf("staging directories left: %v", m)
		}
	}
}

// TestSelectAndPartition restores one mailbox into another partition.
func TestSelectAndPartition(t *testing.T) {
	dump, src := fixtureDump(t, []string{"alice", "bob"})
	target := emptyTarget(t, "")
	sum, err := run(t, target, dump, Options{Select: sel(t, "user.alice.team"), Partition: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(ActionCreate) != 1 || sum.Count(ActionSkip) != len(fixtureAlice) {
		t.Fatalf("%+v", sum.Mailboxes)
	}
	compareMailbox(t, src, "user.alice.team", target, "user.alice.team", same)
	e, err := target.Lookup("user.alice.team")
	if err != nil || e.Partition != "other" {
		t.Fatalf("%+v %v", e, err)
	}
	if dir, _, _ := target.Dirs(e); !strings.HasPrefix(dir, target.Config.Partitions["other"]) {
		t.Errorf("directory %s", dir)
	}
	seen, _ := target.ReadSeen("bob")
	if len(seen) != 1 || seen[0].UniqueID != e.UniqueID {
		t.Errorf("bob's seen: %+v", seen)
	}
	if subs, _ := target.ReadSubs("alice"); !reflect.DeepEqual(subs, []string{"user.alice.team"}) {
		t.Errorf("alice's subscriptions: %q", subs)
	}
}

// TestRoundTripGUIDsOnFile restores again with the table of staged
// messages on file from its first entry, as it is past some 24,000
// messages: hard links, mtimes and every record as before.
func TestRoundTripGUIDsOnFile(t *testing.T) {
	defer func(l int64) { guidtable.DefaultMemLimit = l }(guidtable.DefaultMemLimit)
	guidtable.DefaultMemLimit = 1
	TestRoundTrip(t)
}
