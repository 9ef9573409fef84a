package commands

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

// The helpdesk scenario of docs/restore.md ("Restoring for a user"), as an
// operator runs it against a real Cyrus, offline and with --server: alice
// has folders and mail; the nightly dump runs; alice deletes 40 messages
// (expunged and purged by cyr_expire -X 0) and a folder (delayed delete)
// and receives new mail. The operator undeletes the 40 into her INBOX,
// restores the deleted folder under its name and Sent as of the dump
// into Restored.Sent. Both modes must leave the same state and print the
// same report, a QRESYNC client that synchronised before the incident
// must see exactly the server's state after it, and no UID may name two
// messages.
func TestRealCyrusHelpdeskRestore(t *testing.T) {
	off := helpdeskScenario(t, false)
	srv := helpdeskScenario(t, true)
	if off.report != srv.report {
		t.Errorf("the reports differ:\noffline:\n%s\n--server:\n%s", off.report, srv.report)
	}
	if a, b := stateNames(off.state), stateNames(srv.state); a != b {
		t.Errorf("offline leaves mailboxes %s, --server %s", a, b)
	}
	for name, o := range off.state {
		if s := srv.state[name]; s != o {
			t.Errorf("%s differs:\noffline:  %s\n--server: %s", name, o, s)
		}
	}
}

type helpdeskResult struct {
	report string            // what the operator's commands printed, normalised
	state  map[string]string // per mailbox: what a client sees, normalised
}

// cachedBox is a QRESYNC client's cache of one mailbox.
type cachedBox struct {
	uidValidity   uint32
	highestModseq uint64
	guids         map[uint32]string // UID -> GUID (SHA-1 of the message)
	flags         map[uint32]string
}

func helpdeskScenario(t *testing.T, server bool) helpdeskResult {
	mode := "offline"
	if server {
		mode = "server"
	}
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: server, ExtraConfig: "delete_mode: delayed\nexpunge_mode: delayed"})
	lab.Populate(t)
	t.Setenv(DefaultPasswordEnv, lab.Password)
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"mbtool"}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	target := []string{"-C", lab.Conf}
	if server {
		target = []string{"--server", lab.SyncAddr, "--auth-user", lab.Admin}
	}

	// alice's mail: the populated folders and 20 more messages in INBOX.
	c := lab.IMAP(t, "alice")
	flagSets := [][]string{nil, {`\Seen`}, {`\Seen`, `\Flagged`}, {`\Answered`, `$Label1`}, {`\Draft`}}
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("From: dan@example.org\r\nTo: alice@example.org\r\nSubject: project %d\r\nMessage-ID: <p%d@example.org>\r\n\r\nbody %d\r\n", i, i, i)
		if _, err := c.Append("INBOX", flagSets[i%len(flagSets)], time.Date(2025, 3, 1+i, 9, 0, 0, 0, time.UTC), []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "alice.dlist")
	if code, _, stderr := run("dump", "-C", lab.Conf, "--user", "alice", "-o", file); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	// Her client synchronises (QRESYNC) before the incident.
	v := lab.IMAP(t, "alice") // the test's view
	cache := qresyncCache(t, v)
	dumped := fullState(t, v, "INBOX")
	dumpedSent := fullState(t, v, "INBOX.Sent")

	// The incident: 40 messages deleted and purged, a folder deleted,
	// new mail.
	var gone []string
	for _, uid := range sortedUIDs(dumped.guids)[:40] {
		gone = append(gone, strconv.FormatUint(uint64(uid), 10))
	}
	set := strings.Join(gone, ",")
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore(set, "+FLAGS.SILENT", `(\Deleted)`); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(set); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command("DELETE", cyruslab.Quote("INBOX.Entw&APw-rfe")); err != nil {
		t.Fatal(err)
	}
	lab.Tool(t, "cyr_expire", "-X", "0", "-D", "1")
	for i := 0; i < 2; i++ {
		lab.Deliver(t, "alice", []byte(fmt.Sprintf("From: erin@example.org\r\nSubject: after the incident %d\r\nMessage-ID: <new%d@example.org>\r\n\r\nnew\r\n", i, i)))
	}
	beforeRestore := fullState(t, v, "INBOX")
	if n := len(beforeRestore.guids); n != len(dumped.guids)-40+2 {
		t.Fatalf("%s: INBOX holds %d messages after the incident", mode, n)
	}

	// The operator's restores.
	var report strings.Builder
	step := func(args ...string) string {
		t.Helper()
		all := append(append([]string{"restore"}, target...), append(args, file)...)
		code, stdout, stderr := run(all...)
		fmt.Fprintf(&report, "$ restore %s\nexit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		if code != ExitOK {
			t.Errorf("%s: restore %s: exit %d\n%s%s", mode, strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout + stderr
	}
	// First the operator looks into the dump, with no Cyrus
	// configuration: her INBOX's messages as the dump holds them, and
	// those of them she no longer has are the lost ones. Their UIDs in
	// the dump, as list shows them, select them for the undelete.
	set = lostByList(t, run, file, beforeRestore)
	if want := strings.Join(gone, ","); set != want {
		t.Errorf("%s: mbtool list finds UIDs %s lost, the test deleted %s", mode, set, want)
	}
	fmt.Fprintf(&report, "$ list --user alice --mailbox INBOX --messages --json\n%d lost: %s\n", len(gone), set)
	dry := step("--dry-run", "--undelete", "--mailbox", "user.alice", "--uid", set)
	// The dry run counts what the undelete would add (in both modes).
	if !strings.Contains(dry, ": uniqueid ") || !strings.Contains(dry, ", 40 messages of the dump selected, 40 to add, 0 already there\n") ||
		!strings.Contains(dry, "would restore 1 mailboxes, 40 messages (0 created, 0 replaced, 1 merged,") {
		t.Errorf("%s: the dry run of the undelete:\n%s", mode, dry)
	}
	step("--undelete", "--mailbox", "user.alice", "--uid", set)
	step("--mailbox", "user.alice.Entw&APw-rfe")
	step("--mailbox", "user.alice.Sent", "--into", "user.alice.Restored.Sent")
	// A second run of each adds nothing, and its dry run says so.
	dry = step("--dry-run", "--undelete", "--mailbox", "user.alice")
	if n := len(dumped.guids); !strings.Contains(dry, fmt.Sprintf(", %d messages of the dump selected, 0 to add, %d already there\n", n, n)) ||
		!strings.Contains(dry, "would restore 1 mailboxes, 0 messages") {
		t.Errorf("%s: the dry run of the second undelete:\n%s", mode, dry)
	}
	step("--undelete", "--mailbox", "user.alice")
	step("--undelete", "--mailbox", "user.alice.Sent", "--into", "user.alice.Restored.Sent")

	// Her new mail is untouched; the 40 are back with flags and dates,
	// above the UIDNEXT they had been given.
	after := fullState(t, v, "INBOX")
	for uid, g := range beforeRestore.guids {
		if after.guids[uid] != g || after.flags[uid] != beforeRestore.flags[uid] {
			t.Errorf("%s: INBOX UID %d changed by the restore", mode, uid)
		}
	}
	byGUID := map[string]uint32{}
	for uid, g := range after.guids {
		byGUID[g] = uid
	}
	for _, s := range gone {
		n, _ := strconv.ParseUint(s, 10, 32)
		uid, g := uint32(n), dumped.guids[uint32(n)]
		nu, ok := byGUID[g]
		switch {
		case !ok:
			t.Errorf("%s: the message of UID %d is not back", mode, uid)
		case nu <= beforeRestore.uidNextLike():
			t.Errorf("%s: UID %d came back as UID %d, not above the UIDs given before", mode, uid, nu)
		case noRecentFlags(after.flags[nu]) != dumped.flags[uid] || after.dates[nu] != dumped.dates[uid]:
			t.Errorf("%s: UID %d came back as %d with %q %s, was %q %s", mode, uid, nu, after.flags[nu], after.dates[nu], dumped.flags[uid], dumped.dates[uid])
		}
	}

	// Restored.Sent is Sent as of the dump: the same messages under the
	// same UIDs, with their flags and dates, under a UIDVALIDITY of its
	// own (a new mailbox, docs/restore.md "A mailbox under another name").
	restored := fullState(t, v, "INBOX.Restored.Sent")
	if len(dumpedSent.guids) == 0 || len(restored.guids) != len(dumpedSent.guids) || restored.uidValidity == dumpedSent.uidValidity {
		t.Errorf("%s: Restored.Sent holds %d messages (UIDVALIDITY %d), Sent at the dump %d (UIDVALIDITY %d)", mode,
			len(restored.guids), restored.uidValidity, len(dumpedSent.guids), dumpedSent.uidValidity)
	}
	for uid, g := range dumpedSent.guids {
		if restored.guids[uid] != g || noRecentFlags(restored.flags[uid]) != dumpedSent.flags[uid] || restored.dates[uid] != dumpedSent.dates[uid] {
			t.Errorf("%s: Restored.Sent UID %d: %s %q %s, Sent at the dump: %s %q %s", mode, uid,
				restored.guids[uid], restored.flags[uid], restored.dates[uid], g, dumpedSent.flags[uid], dumpedSent.dates[uid])
		}
	}

	// The QRESYNC client resynchronises and sees exactly the server.
	checkQresync(t, mode, lab, cache)
	state := map[string]string{}
	for _, name := range aliceFolders(t, v) {
		st := fullState(t, v, name)
		state[name] = st.String()
		internal := "user.alice"
		if name != "INBOX" {
			internal += strings.TrimPrefix(name, "INBOX")
		}
		if out := lab.Tool(t, "reconstruct", "-n", internal); strings.TrimSpace(out) != internal {
			t.Errorf("%s: reconstruct -n %s: %s", mode, internal, out)
		}
	}
	if _, ok := state["INBOX.Entw&APw-rfe"]; !ok {
		t.Errorf("%s: the deleted folder is not back", mode)
	}
	return helpdeskResult{report: normaliseReport(report.String()), state: state}
}

// lostByList finds, as an operator would, the messages of alice's INBOX
// in the dump that her INBOX (now) lacks: it lists them with `mbtool list
// --json`, which needs no Cyrus, and returns their UIDs in the dump as a
// set for --uid.
func lostByList(t *testing.T, run func(...string) (int, string, string), file string, now boxState) string {
	t.Helper()
	code, stdout, stderr := run("list", "--user", "alice", "--mailbox", "INBOX", "--messages", "--json", file)
	if code != ExitOK {
		t.Fatalf("list: exit %d\n%s", code, stderr)
	}
	has := map[string]bool{}
	for _, g := range now.guids {
		has[g] = true
	}
	var lost []string
	listed := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m struct {
			Kind, Mailbox, GUID, MessageID string
			UID                            uint32
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("list --json: %v: %s", err, line)
		}
		if m.Kind != "message" || m.Mailbox != "user.alice" {
			t.Fatalf("list --json of alice's INBOX: %s", line)
		}
		listed++
		if !has[m.GUID] {
			lost = append(lost, strconv.FormatUint(uint64(m.UID), 10))
		}
	}
	if listed == 0 {
		t.Fatalf("list --json lists no message:\n%s", stdout)
	}
	return strings.Join(lost, ",")
}

// normaliseReport blanks what differs between two labs and two modes of
// the same run: uniqueids, timings, the dump's path.
func normaliseReport(s string) string {
	s = regexp.MustCompile(`\b[0-9a-z]{24}\b|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).ReplaceAllString(s, "UNIQUEID")
	s = regexp.MustCompile(`in [0-9.]+(ms|s|µs)`).ReplaceAllString(s, "in TIME")
	return s
}

// boxState is what a client sees of a mailbox: per UID its GUID, flags
// and INTERNALDATE.
type boxState struct {
	uidValidity   uint32
	uidNext       uint32
	highestModseq uint64
	guids         map[uint32]string
	flags         map[uint32]string
	dates         map[uint32]string
	modseqs       map[uint32]uint64
}

func stateNames(m map[string]string) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// uidNextLike is the largest UID the state holds.
func (s boxState) uidNextLike() uint32 {
	var m uint32
	for uid := range s.guids {
		m = max(m, uid)
	}
	return m
}

// String renders the state without what differs between two labs (the
// UIDVALIDITY, and the message bytes of LMTP deliveries, which carry the
// delivery time): UIDNEXT, then per UID the flags, date, MODSEQ.
func (s boxState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "UIDNEXT %d HIGHESTMODSEQ %d;", s.uidNext, s.highestModseq)
	for _, uid := range sortedUIDs(s.guids) {
		date := s.dates[uid]
		if strings.HasPrefix(date, strconv.Itoa(time.Now().Year())) {
			date = "(delivered in this run)" // by LMTP: the time of the run
		}
		fmt.Fprintf(&b, " %d %q %s %d;", uid, noRecentFlags(s.flags[uid]), date, s.modseqs[uid])
	}
	return b.String()
}

func sortedUIDs(m map[uint32]string) []uint32 {
	out := make([]uint32, 0, len(m))
	for uid := range m {
		out = append(out, uid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func noRecentFlags(flags string) string {
	var out []string
	for _, f := range strings.Fields(flags) {
		if f != `\Recent` {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func guidOf(body []byte) string {
	h := sha1.Sum(body)
	return hex.EncodeToString(h[:])
}

// fullState fetches every message of mailbox as alice.
func fullState(t *testing.T, c *cyruslab.IMAPClient, mailbox string) boxState {
	t.Helper()
	m, err := c.Examine(mailbox)
	if err != nil {
		t.Fatalf("EXAMINE %s: %v", mailbox, err)
	}
	s := boxState{uidValidity: m.UIDValidity, uidNext: m.UIDNext, highestModseq: m.HighestModSeq,
		guids: map[uint32]string{}, flags: map[uint32]string{}, dates: map[uint32]string{}, modseqs: map[uint32]uint64{}}
	if m.Exists == 0 {
		return s
	}
	msgs, err := c.UIDFetch("1:*", "(FLAGS INTERNALDATE MODSEQ BODY.PEEK[])")
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range msgs {
		s.guids[msg.UID] = guidOf(msg.Body)
		s.flags[msg.UID] = noRecentFlags(strings.Join(msg.Flags, " "))
		s.dates[msg.UID] = msg.InternalDate.UTC().String()
		s.modseqs[msg.UID] = msg.ModSeq
	}
	return s
}

// aliceFolders lists alice's mailboxes.
func aliceFolders(t *testing.T, c *cyruslab.IMAPClient) []string {
	t.Helper()
	list, err := c.List("", "INBOX*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

// qresyncCache is a client's cache of every mailbox of alice.
func qresyncCache(t *testing.T, c *cyruslab.IMAPClient) map[string]*cachedBox {
	t.Helper()
	out := map[string]*cachedBox{}
	for _, name := range aliceFolders(t, c) {
		s := fullState(t, c, name)
		out[name] = &cachedBox{uidValidity: s.uidValidity, highestModseq: s.highestModseq, guids: s.guids, flags: s.flags}
	}
	return out
}

// checkQresync resynchronises the cache as a QRESYNC client does (RFC
// 7162: SELECT with the cached UIDVALIDITY and HIGHESTMODSEQ; VANISHED
// removes, FETCH updates or adds; a new UIDVALIDITY drops the cache) and
// compares it with the server's full state. A FETCH that shows a cached
// UID with another message fails: a UID named two messages.
func checkQresync(t *testing.T, mode string, lab *cyruslab.Lab, cache map[string]*cachedBox) {
	t.Helper()
	c := lab.IMAP(t, "alice") // the client's session
	if _, err := c.Command("ENABLE", "QRESYNC"); err != nil {
		t.Fatal(err)
	}
	v := lab.IMAP(t, "alice") // the test's view of the server
	for _, name := range aliceFolders(t, c) {
		cb := cache[name]
		if cb == nil {
			cb = &cachedBox{guids: map[uint32]string{}, flags: map[uint32]string{}}
			cache[name] = cb
		}
		args := []any{"SELECT", cyruslab.Quote(name)}
		if cb.uidValidity != 0 {
			args = append(args, fmt.Sprintf("(QRESYNC (%d %d))", cb.uidValidity, cb.highestModseq))
		}
		r, err := c.Command(args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var uv uint32
		var hms uint64
		var changed []uint32
		for _, d := range r.Data {
			switch d.Name {
			case "OK":
				code := strings.Fields(d.Code)
				if len(code) == 2 && code[0] == "UIDVALIDITY" {
					n, _ := strconv.ParseUint(code[1], 10, 32)
					uv = uint32(n)
				}
				if len(code) == 2 && code[0] == "HIGHESTMODSEQ" {
					hms, _ = strconv.ParseUint(code[1], 10, 64)
				}
			case "VANISHED":
				for _, f := range d.Fields {
					if f.List == nil {
						for _, uid := range expandSet(f.Text) {
							delete(cb.guids, uid)
							delete(cb.flags, uid)
						}
					}
				}
			case "FETCH":
				if len(d.Fields) == 1 {
					kv := d.Fields[0].List
					for i := 0; i+1 < len(kv); i += 2 {
						if strings.EqualFold(kv[i].Text, "UID") {
							n, _ := strconv.ParseUint(kv[i+1].Text, 10, 32)
							changed = append(changed, uint32(n))
						}
					}
				}
			}
		}
		if uv != cb.uidValidity {
			cb.guids, cb.flags = map[uint32]string{}, map[uint32]string{}
			changed = nil
			for uid := range fullState(t, v, name).guids {
				changed = append(changed, uid)
			}
		}
		cb.uidValidity, cb.highestModseq = uv, hms
		// The client fetches what the resync named: flags always, the
		// message when it does not have it.
		srv := fullState(t, v, name)
		for _, uid := range changed {
			if g, ok := cb.guids[uid]; ok && g != srv.guids[uid] {
				t.Errorf("%s: %s UID %d names another message than the client cached", mode, name, uid)
			}
			cb.guids[uid], cb.flags[uid] = srv.guids[uid], srv.flags[uid]
		}
		if fmt.Sprint(cb.guids) != fmt.Sprint(srv.guids) || fmt.Sprint(cb.flags) != fmt.Sprint(srv.flags) {
			t.Errorf("%s: %s: after QRESYNC the client has\n%v\n%v\nthe server\n%v\n%v", mode, name, cb.guids, cb.flags, srv.guids, srv.flags)
		}
	}
}

// expandSet expands an IMAP UID set ("1:3,7").
func expandSet(s string) []uint32 {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(part, ":")
		x, _ := strconv.ParseUint(a, 10, 32)
		y := x
		if ok {
			y, _ = strconv.ParseUint(b, 10, 32)
		}
		if y < x {
			x, y = y, x
		}
		for u := x; u <= y && u-x < 1<<20; u++ {
			out = append(out, uint32(u))
		}
	}
	return out
}
