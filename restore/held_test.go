package restore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// heldLine is one line of a crafted dump (heldDump): APPLY MESSAGE of
// the messages msgs (by number, on partition part), or, when box is set,
// APPLY MAILBOX of that mailbox on part, one record for each of recs.
type heldLine struct {
	msgs []int
	box  string
	part string
	recs []heldRec
}

// heldRec is a record: message msg, UID its place in the mailbox from 1,
// INTERNALDATE date.
type heldRec struct {
	msg  int
	date int64
}

// heldMsgBody is message i of a crafted dump: from heldLarge on, of
// 100 KiB (each a slab of its own, larger than holdSlabSize).
func heldMsgBody(i int) []byte {
	b := []byte(fmt.Sprintf("Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: m%d\r\n\r\nbody of message %d\r\n", i, i))
	if i >= heldLarge {
		b = append(b, bytes.Repeat([]byte("0123456789abcde\n"), 100<<10/16)...)
	}
	return b
}

const heldLarge = 1 << 20

func heldGUID(i int) guid.GUID {
	g, _, _ := guid.Of(bytes.NewReader(heldMsgBody(i)))
	return g
}

// heldDump writes the dump of lines.
func heldDump(t *testing.T, lines []heldLine) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := dumpfile.NewWriter(&buf, dumpfile.Header{Created: time.Unix(1700000000, 0), Host: "h", Version: "v"}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dl := w.DL()
	var counts dumpfile.Counts
	for i, l := range lines {
		if l.box == "" {
			dl.BeginLine("APPLY", "MESSAGE")
			dl.BeginList()
			for _, m := range l.msgs {
				b := heldMsgBody(m)
				if err := dl.File(l.part, heldGUID(m), int64(len(b)), bytes.NewReader(b)); err != nil {
					t.Fatal(err)
				}
				counts.Messages++
				counts.Bytes += int64(len(b))
			}
			dl.EndList()
			if err := dl.EndLine(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		n := uint32(len(l.recs))
		mb := &syncrec.Mailbox{UniqueID: "abcdefghijklmnopqrstuvw" + string(rune('a'+i)), Name: l.box, LastUID: n,
			HighestModseq: uint64(n) + 1, UIDValidity: 1700000000, Partition: l.part, ACL: "mallory\tlrswipkxtecdan\t"}
		uid := uint32(0)
		err := syncrec.WriteMailbox(dl, "APPLY", mb, func() (*syncrec.Record, error) {
			if uid == n {
				return nil, nil
			}
			r := l.recs[uid]
			uid++
			return &syncrec.Record{UID: uid, Modseq: uint64(uid), LastUpdated: 1700000000,
				InternalDate: r.date, Size: uint32(len(heldMsgBody(r.msg))), GUID: heldGUID(r.msg)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		counts.Mailboxes++
	}
	if err := w.Close(counts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// heldWrites restores dump into target, owned by nobody when the tests
// run as root, and returns the GUIDs of the message files written from
// buffers into msg/ and those written straight into a mailbox's
// directory.
func heldWrites(t *testing.T, target *partition.Spool, dump []byte) (toMsg, direct map[guid.GUID]int, owner partition.Owner) {
	t.Helper()
	owner = testOwner
	if os.Geteuid() == 0 {
		owner = partition.Owner{UID: 65534, GID: 65534}
	}
	var mu sync.Mutex // the parser writes some of them itself
	toMsg, direct = map[guid.GUID]int{}, map[guid.GUID]int{}
	writeFault = func(g guid.GUID, path string) error {
		mu.Lock()
		defer mu.Unlock()
		switch filepath.Base(filepath.Dir(path)) {
		case "msg":
			toMsg[g]++
		default:
			if !strings.Contains(path, "/mbox/") || !strings.HasSuffix(path, ".") {
				t.Errorf("a message file written to %s", path)
			}
			direct[g]++
		}
		return nil
	}
	defer func() { writeFault = nil }()
	sum, err := run(t, target, dump, Options{Owner: &owner})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("problems: %v", sum.Problems)
	}
	return toMsg, direct, owner
}

// checkPlaced checks that mailbox name of target holds message msg as
// UID uid with mtime date, mode 0600, owned by owner, and returns its
// inode and link count.
func checkPlaced(t *testing.T, target *partition.Spool, owner partition.Owner, name string, uid, msg int, date int64) (ino uint64, nlink uint64) {
	t.Helper()
	e, err := target.Lookup(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	dir, _, err := target.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, strconv.Itoa(uid)+".")
	b, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(b, heldMsgBody(msg)) {
		t.Errorf("%s: not message %d (%v)", p, msg, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	wantUID := owner.UID
	if wantUID < 0 {
		wantUID = os.Geteuid()
	}
	if fi.ModTime().Unix() != date || fi.Mode() != 0o600 || int(st.Uid) != wantUID {
		t.Errorf("%s: mtime %d mode %v owner %d; want %d, -rw-------, %d", p, fi.ModTime().Unix(), fi.Mode(), st.Uid, date, wantUID)
	}
	return st.Ino, uint64(st.Nlink)
}

// TestHeldPlacedDirect: a small message file is written straight into the
// mailbox that first uses it, as UID., with its mtime (the INTERNALDATE),
// owner, mode and bytes, not into msg/ (to be renamed); a second record
// of the GUID in the same mailbox or in a later mailbox of the partition
// with the same INTERNALDATE is a hard link to it, one with another date
// a copy with that date, as after a rename.
func TestHeldPlacedDirect(t *testing.T) {
	const d1, d2, d3 = 1700000000, 1700003600, 1600000000
	dump := heldDump(t, []heldLine{
		{msgs: []int{1, 2, 3}, part: "default"},
		{box: "user.mallory", part: "default", recs: []heldRec{{1, d1}, {2, d2}, {3, d3}, {1, d1}}},
		{box: "user.mallory.two", part: "default", recs: []heldRec{{2, d2}, {3, d1}}},
	})
	target := emptyTarget(t, "")
	waits := crossLaneWaits(t)
	toMsg, direct, owner := heldWrites(t, target, dump)
	// user.mallory.two's link to user.mallory's file, on the other lane.
	if pipeLanes() > 1 && (*waits)[opRef{lane: 1}] == 0 {
		t.Errorf("no operation waited for one of user.mallory's lane: %v", *waits)
	}
	if len(toMsg) != 0 || len(direct) != 3 {
		t.Errorf("%d message files written to msg/, %d into their mailbox; want 0 and 3", len(toMsg), len(direct))
	}
	for _, m := range []int{1, 2, 3} {
		if direct[heldGUID(m)] != 1 {
			t.Errorf("message %d written into its mailbox %d times", m, direct[heldGUID(m)])
		}
	}
	i1, n1 := checkPlaced(t, target, owner, "user.mallory", 1, 1, d1)
	checkPlaced(t, target, owner, "user.mallory", 2, 2, d2)
	i3, _ := checkPlaced(t, target, owner, "user.mallory", 3, 3, d3)
	i4, _ := checkPlaced(t, target, owner, "user.mallory", 4, 1, d1)
	i5, n5 := checkPlaced(t, target, owner, "user.mallory.two", 1, 2, d2)
	i6, _ := checkPlaced(t, target, owner, "user.mallory.two", 2, 3, d1)
	if i1 != i4 || n1 != 2 {
		t.Errorf("UIDs 1 and 4 of user.mallory: inodes %d and %d, %d links; want one inode, 2 links", i1, i4, n1)
	}
	i2, _ := checkPlaced(t, target, owner, "user.mallory", 2, 2, d2)
	if i5 != i2 || n5 != 2 {
		t.Errorf("user.mallory.two UID 1: inode %d, %d links; want user.mallory's UID 2 (%d), 2 links", i5, n5, i2)
	}
	if i6 == i3 {
		t.Errorf("user.mallory.two UID 2 (another INTERNALDATE) is a link to user.mallory's UID 3")
	}
}

// TestHeldFallback: messages that are not placed straight into their
// mailbox go to msg/ as before, and the mailboxes get them all the same:
// more messages before one mailbox than may be held (holdMsgs small
// ones, or as many as fill holdMax slabs), of which those held when one
// more comes go to msg/; a message no mailbox uses (written at the end
// of the dump), one used only after the next APPLY MESSAGE, and one
// whose first mailbox is on another partition (copied from msg/; the
// first mailbox of its own partition then gets it by rename).
func TestHeldFallback(t *testing.T) {
	const d = 1700000000
	for _, c := range []struct {
		name          string
		first, n, cut int // messages first.., cut of n go to msg/
	}{
		{"messages", 100, holdMsgs + 3, holdMsgs},
		{"slabs", heldLarge, 2*holdMax + 3, 2 * holdMax},
	} {
		t.Run(c.name, func(t *testing.T) {
			var many []int
			var recs []heldRec
			for i := range c.n {
				many = append(many, c.first+i)
				recs = append(recs, heldRec{c.first + i, d + int64(i)})
			}
			unused, later, other := 1, 2, 3
			dump := heldDump(t, []heldLine{
				{msgs: many, part: "default"},
				{box: "user.mallory", part: "default", recs: recs},
				{msgs: []int{unused, later, other}, part: "default"},
				{box: "user.other", part: "other", recs: []heldRec{{other, d}}},
				{msgs: []int{4}, part: "default"},
				{box: "user.mallory.later", part: "default", recs: []heldRec{{later, d}, {4, d}, {other, d + 1}}},
			})
			target := emptyTarget(t, "")
			waits := crossLaneWaits(t)
			toMsg, direct, owner := heldWrites(t, target, dump)
			// The renames from msg/ into user.mallory, of the other lane.
			if pipeLanes() > 1 && (*waits)[opRef{lane: msgLane}] == 0 {
				t.Errorf("no operation waited for a message file written to msg/: %v", *waits)
			}
			for i, m := range many {
				wantDirect := i >= c.cut
				if g := heldGUID(m); direct[g] != b2i(wantDirect) || toMsg[g] != b2i(!wantDirect) {
					t.Errorf("message %d of %d before one mailbox: %d times into it, %d to msg/; want %v into it", i+1, c.n, direct[g], toMsg[g], wantDirect)
				}
				checkPlaced(t, target, owner, "user.mallory", i+1, m, d+int64(i))
			}
			for _, m := range []int{unused, later, other} {
				if g := heldGUID(m); toMsg[g] != 1 || direct[g] != 0 {
					t.Errorf("message %d: %d times to msg/, %d into a mailbox; want once to msg/", m, toMsg[g], direct[g])
				}
			}
			if g := heldGUID(4); direct[g] != 1 || toMsg[g] != 0 {
				t.Errorf("message 4: %d times into its mailbox, %d to msg/; want once into it", direct[g], toMsg[g])
			}
			checkPlaced(t, target, owner, "user.other", 1, other, d)
			checkPlaced(t, target, owner, "user.mallory.later", 1, later, d)
			checkPlaced(t, target, owner, "user.mallory.later", 2, 4, d)
			checkPlaced(t, target, owner, "user.mallory.later", 3, other, d+1)
			e, err := target.Lookup("user.other")
			if err != nil || e.Partition != "other" {
				t.Errorf("user.other: partition %q, %v", e.Partition, err)
			}
		})
	}
}

// crossLaneWaits counts, until the test ends, the operations queued to
// wait for one of another lane (crossLaneHook), by that lane.
func crossLaneWaits(t *testing.T) *map[opRef]int {
	waits := map[opRef]int{}
	crossLaneHook = func(_ int, after opRef) { waits[opRef{lane: after.lane}]++ }
	t.Cleanup(func() { crossLaneHook = nil })
	return &waits
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestHeldCopyBeforeRename: a message file in msg/ that a mailbox of
// another partition copies is renamed into the first mailbox of its own
// partition only once the copy has read it, whichever lanes the two
// mailboxes' operations run on and however far behind the copying one
// is (here its write of a message before, held 300 ms).
func TestHeldCopyBeforeRename(t *testing.T) {
	pipeSteal = false
	defer func() { pipeSteal = true }()
	const d = 1700000000
	shared, slow, first := 1, 2, 3
	for _, lead := range []bool{false, true} { // user.other on lane 1, then on lane 0
		t.Run(fmt.Sprint("lead ", lead), func(t *testing.T) {
			var lines []heldLine
			if lead {
				lines = append(lines, heldLine{msgs: []int{first}, part: "default"},
					heldLine{box: "user.first", part: "default", recs: []heldRec{{first, d}}})
			}
			lines = append(lines,
				heldLine{msgs: []int{shared}, part: "default"},
				heldLine{msgs: []int{slow}, part: "other"},
				heldLine{box: "user.other", part: "other", recs: []heldRec{{slow, d}, {shared, d}}},
				heldLine{box: "user.mallory", part: "default", recs: []heldRec{{shared, d}}})
			dump := heldDump(t, lines)
			writeFault = func(g guid.GUID, path string) error {
				if g == heldGUID(slow) {
					time.Sleep(300 * time.Millisecond)
				}
				return nil
			}
			defer func() { writeFault = nil }()
			target := emptyTarget(t, "")
			sum, err := run(t, target, dump, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Problems) > 0 {
				t.Fatalf("problems: %v", sum.Problems)
			}
			owner := testOwner
			checkPlaced(t, target, owner, "user.other", 1, slow, d)
			checkPlaced(t, target, owner, "user.other", 2, shared, d)
			checkPlaced(t, target, owner, "user.mallory", 1, shared, d)
		})
	}
}
