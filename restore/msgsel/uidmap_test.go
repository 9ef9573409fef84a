package msgsel

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/restore/result"
	"github.com/mbtool/mbtool/syncrec"
)

func TestUIDMapSeen(t *testing.T) {
	// A replace under the same UIDVALIDITY: UIDs up to 40 keep theirs,
	// 3, 4 and 9 were appended as 41, 42, 43.
	var m UIDMap
	defer m.Close()
	m.Keep(40)
	for _, p := range [][2]uint32{{3, 41}, {4, 42}, {9, 43}} {
		if err := m.Renumber(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		in   string
		last uint32
		want string
		top  uint32
	}{
		{"1:10", 10, "1:2,5:8,10,41:43", 43},
		{"3", 3, "41", 41},
		{"1:2,4,9", 9, "1:2,42:43", 43},
		{"", 0, "", 0},
		{"5:*", 12, "5:8,10:12,43", 43},
		{"50:60", 60, "", 0}, // above Keep and not renumbered: names nothing
	} {
		got, top, err := m.Seen(c.in, c.last)
		if err != nil || got != c.want || top != c.top {
			t.Errorf("Seen(%q) = %q, %d, %v; want %q, %d", c.in, got, top, err, c.want, c.top)
		}
	}
	if _, _, err := m.Seen("1:x", 5); err == nil {
		t.Error("Seen of a malformed set: no error")
	}

	// A merge (nothing kept): only the appended messages carry over.
	var g UIDMap
	g.Renumber(2, 101)
	g.Renumber(3, 102)
	if got, top, _ := g.Seen("1:3", 3); got != "101:102" || top != 102 {
		t.Errorf("merge: Seen(1:3) = %q, %d", got, top)
	}
	s := &syncrec.Seen{SeenUIDs: "1:3", LastUID: 3}
	if err := g.SeenRecord(s); err != nil || s.SeenUIDs != "101:102" || s.LastUID != 102 {
		t.Errorf("SeenRecord = %+v, %v", s, err)
	}
	cur := &syncrec.Seen{SeenUIDs: "1:5,8", LastUID: 8, LastRead: 7}
	if err := MergeSeen(s, cur); err != nil || s.SeenUIDs != "1:5,8,101:102" || s.LastUID != 8 || s.LastRead != 7 {
		t.Errorf("MergeSeen = %+v, %v", s, err)
	}
}

// TestUIDMapSpills checks a map of more runs than it holds in memory.
func TestUIDMapSpills(t *testing.T) {
	var m UIDMap
	defer m.Close()
	n := uint32(3*maxMapRuns + 7)
	for i := uint32(0); i < n; i++ {
		if err := m.Renumber(2*i+1, 1000000+i); err != nil { // every other UID: one run each
			t.Fatal(err)
		}
	}
	if m.nf == 0 {
		t.Fatal("nothing spilled")
	}
	got, top, err := m.Seen("1:*", 2*n)
	if err != nil || got != "1000000:"+itoa(1000000+n-1) || top != 1000000+n-1 {
		t.Errorf("Seen = %q, %d, %v", got, top, err)
	}
	got, _, _ = m.Seen(itoa(2*(n-1)+1), 2*n)
	if got != itoa(1000000+n-1) {
		t.Errorf("last run: %q", got)
	}
}

func itoa(u uint32) string { return FormatSet([]Range{{u, u}}) }

// TestUIDMapFinishReleases: the maps of a restore live until the seen
// state is written, after every mailbox; once a mailbox's numbering has
// ended (Finish), its map holds no descriptor and no buffer of its own,
// so open files and memory stay flat in the number of mailboxes (one
// shared file for all), and every map still maps as before.
func TestUIDMapFinishReleases(t *testing.T) {
	fds := func() int {
		t.Helper()
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd:", err)
		}
		return len(ents)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	fd0, heap0 := fds(), heap()
	const nmaps = 100
	n := uint32(maxMapRuns + 100) // spills: one run more than memory holds
	var run UIDMaps               // the restore run's
	defer run.Close()
	maps := make([]*UIDMap, 0, 2*nmaps)
	defer func() {
		for _, m := range maps {
			m.Close()
		}
	}()
	for i := 0; i < nmaps; i++ {
		big, small := run.New(), run.New()
		for j := uint32(0); j < n; j++ {
			if err := big.Renumber(2*j+1, 1000000+j); err != nil { // every other UID: one run each
				t.Fatal(err)
			}
		}
		for j := uint32(0); j < compactRuns+10; j++ { // more than compactRuns, never spilled
			if err := small.Renumber(2*j+1, 500+j); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range []*UIDMap{big, small} {
			if err := m.Finish(); err != nil {
				t.Fatal(err)
			}
			maps = append(maps, m)
		}
		if err := big.Renumber(2*n+1, 2000000); err == nil {
			t.Fatal("Renumber after Finish: no error")
		}
	}
	if d := fds() - fd0; d > 1 {
		t.Errorf("%d finished maps hold %d more descriptors, want at most 1", len(maps), d)
	}
	// Unfinished, each large map held 4096 runs (48 KiB) and a 64 KiB
	// buffer: 11 MB for 100.
	if d := int64(heap()) - int64(heap0); d > 1<<20 {
		t.Errorf("%d finished maps retain %d bytes", len(maps), d)
	}
	for _, i := range []int{0, 2 * (nmaps / 2), 2*nmaps - 2} {
		got, top, err := maps[i].Seen("1:*", 2*n)
		if err != nil || got != "1000000:"+itoa(1000000+n-1) || top != 1000000+n-1 {
			t.Errorf("map %d: Seen = %q, %d, %v", i, got, top, err)
		}
		if got, _, _ := maps[i+1].Seen("3", 3); got != "501" {
			t.Errorf("small map %d: Seen(3) = %q", i+1, got)
		}
	}
	for _, m := range maps {
		m.Close()
	}
	maps = nil
	if d := fds() - fd0; d > 1 {
		t.Errorf("closed maps leave %d descriptors open, want at most the run's", d)
	}
	run.Close()
	if d := fds() - fd0; d != 0 {
		t.Errorf("the run's maps closed leave %d descriptors open", d)
	}
}

// TestMapSeen: the one rule both restores write seen records by; the
// user's current record is read only for a merge that appended and for a
// mailbox kept or outside the dump, and what is wrong with it is an error
// of the one record, except that a record the user has stays as it is
// where the dump's is written only if the user has none.
func TestMapSeen(t *testing.T) {
	var m UIDMap
	defer m.Close()
	m.Renumber(2, 101)
	read := 0
	cur := func(c *syncrec.Seen, err error) func() (*syncrec.Seen, bool, error) {
		return func() (*syncrec.Seen, bool, error) { read++; return c, c != nil, err }
	}
	s := &syncrec.Seen{UserID: "bob", UniqueID: "u1", SeenUIDs: "1:2", LastUID: 2}
	if ok, err := MapSeen(SeenOver, &m, s, cur(nil, errors.New("not read"))); !ok || err != nil || s.SeenUIDs != "101" || read != 0 {
		t.Errorf("replace: %v, %v, %+v, read %d", ok, err, s, read)
	}
	var none UIDMap
	if ok, err := MapSeen(SeenMerge, &none, &syncrec.Seen{SeenUIDs: "1"}, cur(nil, nil)); ok || err != nil || read != 0 {
		t.Errorf("merge that appended nothing: %v, %v, read %d", ok, err, read)
	}
	s = &syncrec.Seen{UserID: "bob", UniqueID: "u1", SeenUIDs: "1:2", LastUID: 2}
	if ok, err := MapSeen(SeenMerge, &m, s, cur(&syncrec.Seen{SeenUIDs: "1:3", LastUID: 3}, nil)); !ok || err != nil || s.SeenUIDs != "1:3,101" || s.LastUID != 3 {
		t.Errorf("merge: %v, %v, %+v", ok, err, s)
	}
	for _, c := range []func() (*syncrec.Seen, bool, error){
		cur(&syncrec.Seen{SeenUIDs: "x:y"}, nil),
		cur(nil, errors.New("GET META bob: NO refused")),
	} {
		s = &syncrec.Seen{UserID: "bob", UniqueID: "u1", SeenUIDs: "1:2", LastUID: 2}
		ok, err := MapSeen(SeenMerge, &m, s, c)
		if ok || err == nil || !strings.Contains(err.Error(), "seen record of bob for u1: the user's current record: ") {
			t.Errorf("damaged current record: %v, %v", ok, err)
		}
	}

	// Kept, or outside the dump: only where the user has none.
	s = &syncrec.Seen{UserID: "bob", UniqueID: "u1", SeenUIDs: "1:2", LastUID: 2}
	if ok, err := MapSeen(SeenIfNone, nil, s, cur(nil, nil)); !ok || err != nil || s.SeenUIDs != "1:2" {
		t.Errorf("kept, the user has none: %v, %v, %+v", ok, err, s)
	}
	for _, c := range []func() (*syncrec.Seen, bool, error){
		cur(&syncrec.Seen{SeenUIDs: "3"}, nil),
		func() (*syncrec.Seen, bool, error) { return nil, true, errors.New("damaged") },
	} {
		if ok, err := MapSeen(SeenIfNone, nil, s, c); ok || err != nil {
			t.Errorf("kept, the user has one: %v, %v", ok, err)
		}
	}
	if ok, err := MapSeen(SeenIfNone, nil, s, cur(nil, errors.New("GET META bob: NO refused"))); ok || err == nil {
		t.Errorf("kept, the user's records unreadable: %v, %v", ok, err)
	}
	for a, want := range map[result.Action]SeenRule{result.Create: SeenOver, result.Replace: SeenOver,
		result.Merge: SeenMerge, result.Keep: SeenIfNone, "": SeenIfNone} {
		if got := SeenRuleFor(a, false); got != want {
			t.Errorf("SeenRuleFor(%q) = %v, want %v", a, got, want)
		}
	}
	if SeenRuleFor("", true) != SeenOver || SeenRuleFor(result.Keep, true) != SeenIfNone {
		t.Errorf("SeenRuleFor with --replace: outside the dump %v, kept %v", SeenRuleFor("", true), SeenRuleFor(result.Keep, true))
	}
}
