package commands

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// restoreModes runs the same restore offline (-C the lab's imapd.conf)
// and with --server (the lab's sync_server), and returns each one's exit
// status and output, the run time replaced by "…".
type restoreModes struct {
	t   *testing.T
	lab *cyruslab.Lab
}

var tookRE = regexp.MustCompile(` in [0-9.]+(µs|ms|s|m[0-9.]+s)\b`)

func (m restoreModes) run(args ...string) (code int, out string) {
	var stdout, stderr bytes.Buffer
	code = Main(append([]string{"mbtool"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, tookRE.ReplaceAllString(stdout.String()+stderr.String(), " in …")
}

// both runs `restore ARGS` in both modes and fails the test unless they
// exit with the same status and print the same; it returns them.
func (m restoreModes) both(args ...string) (int, string) {
	m.t.Helper()
	offline := append([]string{"restore", "-C", m.lab.Conf}, args...)
	server := append([]string{"restore", "--server", m.lab.SyncAddr, "--auth-user", m.lab.Admin}, args...)
	c1, o1 := m.run(offline...)
	c2, o2 := m.run(server...)
	if c1 != c2 || o1 != o2 {
		m.t.Errorf("restore %s: offline and --server differ:\noffline: exit %d\n%s--server: exit %d\n%s",
			strings.Join(args, " "), c1, o1, c2, o2)
	}
	return c1, o1
}

// in runs `restore ARGS` in one mode: "offline" or "server".
func (m restoreModes) in(mode string, args ...string) (int, string) {
	if mode == "offline" {
		return m.run(append([]string{"restore", "-C", m.lab.Conf}, args...)...)
	}
	return m.run(append([]string{"restore", "--server", m.lab.SyncAddr, "--auth-user", m.lab.Admin}, args...)...)
}

// expungeTeam12 expunges UIDs 1-2 of alice's team folder (those bob has
// read) and returns alice's session, the folder selected.
func expungeTeam12(t *testing.T, lab *cyruslab.Lab) *cyruslab.IMAPClient {
	t.Helper()
	c := lab.IMAP(t, "alice")
	if _, err := c.Select("INBOX.team"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1:2", "+FLAGS", `(\Deleted)`); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge("1:2"); err != nil {
		t.Fatal(err)
	}
	return c
}

// aliceLab starts a populated lab with a sync port and dumps alice.
func aliceLab(t *testing.T) (*cyruslab.Lab, restoreModes, string) {
	t.Helper()
	return aliceLabWith(t, cyruslab.Options{SyncPort: true})
}

// aliceLabWith is aliceLab with the lab's options (SyncPort set).
func aliceLabWith(t *testing.T, opts cyruslab.Options) (*cyruslab.Lab, restoreModes, string) {
	t.Helper()
	opts.SyncPort = true
	lab := cyruslab.Start(t, opts)
	lab.Populate(t)
	t.Setenv(DefaultPasswordEnv, lab.Password)
	m := restoreModes{t: t, lab: lab}
	file := filepath.Join(t.TempDir(), "alice.dlist")
	if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "-o", file); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	return lab, m, file
}

// TestRealCyrusRestoreIdentity checks, in both modes against one running
// Cyrus, that a mailbox of the dump that exists in the target is "already
// present" only when identical, and is otherwise refused with the
// difference in words and exit 3; a damaged message file in the target is
// a difference too.
func TestRealCyrusRestoreIdentity(t *testing.T) {
	lab, m, file := aliceLab(t)

	// Nothing changed: every mailbox is already present, in both modes.
	code, out := m.both(file)
	if code != ExitOK || !strings.Contains(out, "(0 created, 0 replaced, 0 merged, 0 refused, 7 already present, 0 skipped)") {
		t.Fatalf("rerun into the source: exit %d\n%s", code, out)
	}
	code, out = m.both("--dry-run", file)
	if code != ExitOK || strings.Count(out, "keep    user.alice") != 7 || !strings.Contains(out, "already present, identical to the dump's") {
		t.Errorf("dry run into the source: exit %d\n%s", code, out)
	}

	// alice receives a message, flags one in Sent, expunges one in Trash.
	lab.Deliver(t, "alice", []byte("From: carol@example.org\r\nSubject: after the dump\r\n\r\nnew\r\n"))
	c := lab.IMAP(t, "alice")
	if _, err := c.Select("INBOX.Sent"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("1:2", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatal(err)
	}
	code, out = m.both(file)
	for _, want := range []string{
		"mbtool: warning: user.alice: refused: differs from the dump: 1 in the target is not in the dump (use --replace to replace it)\n",
		"mbtool: warning: user.alice.Sent: refused: differs from the dump: 2 messages have other flags or annotations in the target (use --replace to replace it)\n",
		"(0 created, 0 replaced, 0 merged, 2 refused, 5 already present, 0 skipped)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after changes: missing %q in\n%s", want, out)
		}
	}
	if code != ExitPartial {
		t.Errorf("after changes: exit %d, want %d", code, ExitPartial)
	}
	// The dry run says the same, mailbox by mailbox.
	code, out = m.both("--dry-run", "--mailbox", "user.alice", file)
	if code != ExitPartial || !strings.Contains(out, "refuse  user.alice: differs from the dump: 1 in the target is not in the dump") {
		t.Errorf("dry run after changes: exit %d\n%s", code, out)
	}

	// A message file that rotted in the target is a difference (with
	// --server, APPLY RESERVE finds that it does not hash to its GUID).
	const drafts = "user.alice.Entw&APw-rfe"
	code, out = m.both("--mailbox", drafts, file)
	if code != ExitOK {
		t.Fatalf("drafts before the damage: exit %d\n%s", code, out)
	}
	damageOneMessage(t, lab, drafts)
	code, out = m.both("--mailbox", drafts, file)
	if code != ExitPartial || !strings.Contains(out, drafts+": refused: differs from the dump: 1 message file in the target is missing or damaged") {
		t.Errorf("damaged file: exit %d\n%s", code, out)
	}
}

// damageOneMessage flips a byte in message file UID 1 of mailbox name in
// the lab's spool.
func damageOneMessage(t *testing.T, lab *cyruslab.Lab, name string) {
	t.Helper()
	spool, err := openSpoolOf(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	e, err := spool.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := spool.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "1.")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientCache is what a QRESYNC client keeps of one mailbox: UIDVALIDITY,
// HIGHESTMODSEQ, and each message's GUID and flags by UID. history
// remembers every GUID a UID was ever seen with, across resyncs.
type clientCache struct {
	t             *testing.T
	c             *cyruslab.IMAPClient
	box           string
	uidvalidity   uint32
	highestModseq uint64
	msgs          map[uint32]cachedMsg
	history       map[uint32]string
	maxUID        uint32 // the highest UID ever seen, UIDNEXT-1 included
}

type cachedMsg struct{ guid, flags string }

func newClientCache(t *testing.T, c *cyruslab.IMAPClient, box string) *clientCache {
	t.Helper()
	if _, err := c.Command("ENABLE", "QRESYNC"); err != nil {
		t.Fatal(err)
	}
	cc := &clientCache{t: t, c: c, box: box, history: map[uint32]string{}}
	cc.full()
	return cc
}

// serverState fetches everything the server holds now.
func (cc *clientCache) serverState() (uint32, uint64, uint32, map[uint32]cachedMsg) {
	cc.t.Helper()
	m, err := cc.c.Select(cc.box)
	if err != nil {
		cc.t.Fatal(err)
	}
	msgs := map[uint32]cachedMsg{}
	if m.Exists > 0 {
		got, err := cc.c.UIDFetch("1:*", "(FLAGS DIGEST.SHA1)")
		if err != nil {
			cc.t.Fatal(err)
		}
		for _, g := range got {
			msgs[g.UID] = cachedMsg{guid: g.Digest, flags: flagString(g.Flags)}
		}
	}
	return m.UIDValidity, m.HighestModSeq, m.UIDNext, msgs
}

func flagString(fs []string) string {
	var out []string
	for _, f := range fs {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// see records what the client saw, failing the test if a UID ever names
// two messages.
func (cc *clientCache) see(uid uint32, guid string) {
	cc.t.Helper()
	if old, ok := cc.history[uid]; ok && old != guid {
		cc.t.Errorf("%s: UID %d named message %s, now %s", cc.box, uid, old, guid)
	}
	cc.history[uid] = guid
	cc.maxUID = max(cc.maxUID, uid)
}

// full loads the cache from scratch, as a client does on a new
// UIDVALIDITY.
func (cc *clientCache) full() {
	uv, hms, next, msgs := cc.serverState()
	if uv != cc.uidvalidity {
		cc.history = map[uint32]string{}
		cc.maxUID = 0
	}
	cc.uidvalidity, cc.highestModseq, cc.msgs = uv, hms, msgs
	for uid, m := range msgs {
		cc.see(uid, m.guid)
	}
	cc.maxUID = max(cc.maxUID, next-1)
}

// resync brings the cache up to date with SELECT (QRESYNC ...), as a
// client does, and checks that it then equals the server's state exactly.
func (cc *clientCache) resync(what string) {
	cc.t.Helper()
	var known []string
	for uid := range cc.msgs {
		known = append(known, fmt.Sprint(uid))
	}
	sort.Strings(known)
	arg := fmt.Sprintf("(QRESYNC (%d %d))", cc.uidvalidity, cc.highestModseq)
	if len(known) > 0 {
		arg = fmt.Sprintf("(QRESYNC (%d %d %s))", cc.uidvalidity, cc.highestModseq, strings.Join(known, ","))
	}
	r, err := cc.c.Command("SELECT", cyruslab.Quote(cc.box), arg)
	if err != nil {
		cc.t.Fatalf("%s: SELECT QRESYNC: %v", what, err)
	}
	uv, hms := uint32(0), uint64(0)
	var changed []uint32
	for _, d := range r.Data {
		switch {
		case d.Name == "OK" && strings.HasPrefix(d.Code, "UIDVALIDITY "):
			n, _ := strconv.ParseUint(strings.TrimPrefix(d.Code, "UIDVALIDITY "), 10, 32)
			uv = uint32(n)
		case d.Name == "OK" && strings.HasPrefix(d.Code, "HIGHESTMODSEQ "):
			hms, _ = strconv.ParseUint(strings.TrimPrefix(d.Code, "HIGHESTMODSEQ "), 10, 64)
		case d.Name == "VANISHED":
			set := d.Fields[len(d.Fields)-1].Text
			for _, uid := range uidSet(cc.t, set) {
				delete(cc.msgs, uid)
			}
		case d.Name == "FETCH" && len(d.Fields) == 1:
			var uid uint32
			var flags []string
			items := d.Fields[0].List
			for i := 0; i+1 < len(items); i += 2 {
				switch strings.ToUpper(items[i].Text) {
				case "UID":
					n, _ := items[i+1].Number()
					uid = uint32(n)
				case "FLAGS":
					for _, f := range items[i+1].List {
						flags = append(flags, f.Text)
					}
				}
			}
			m := cc.msgs[uid]
			m.flags = flagString(flags)
			cc.msgs[uid] = m
			changed = append(changed, uid)
		}
	}
	if uv != cc.uidvalidity {
		cc.t.Logf("%s: UIDVALIDITY %d, was %d: the client starts again", what, uv, cc.uidvalidity)
		cc.full()
		return
	}
	cc.highestModseq = hms
	// New messages: a client fetches what it does not know.
	_, _, next, server := cc.serverState()
	for uid, m := range server {
		if _, ok := cc.msgs[uid]; !ok && uid > cc.maxUID {
			cc.msgs[uid] = m
		}
	}
	for _, uid := range changed {
		if m := cc.msgs[uid]; m.guid == "" {
			m.guid = server[uid].guid // a FETCH about a UID the client never had
			cc.msgs[uid] = m
		}
	}
	for uid, m := range cc.msgs {
		cc.see(uid, m.guid)
	}
	cc.maxUID = max(cc.maxUID, next-1)
	if !reflect.DeepEqual(cc.msgs, server) {
		cc.t.Errorf("%s: after QRESYNC the client's cache differs from the server:\n cache  %v\n server %v", what, cc.msgs, server)
	}
}

// uidSet expands an IMAP UID set ("3,5:7").
func uidSet(t *testing.T, s string) []uint32 {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		lo, hi, ok := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			t.Fatalf("uid set %q", s)
		}
		b := a
		if ok {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				t.Fatalf("uid set %q", s)
			}
		}
		for u := min(a, b); u <= max(a, b); u++ {
			out = append(out, uint32(u))
		}
	}
	return out
}

// TestRealCyrusReplaceInvariants restores alice's INBOX with --replace
// from a dump older than the mailbox, in both modes: after the dump she
// received two messages, flagged one, expunged one. Afterwards the
// mailbox keeps its UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ only went up,
// an APPEND gets a UID above every UID ever used, and a client that had
// synchronised before, resynchronising with QRESYNC, sees exactly the
// server's state, no UID ever naming two messages.
func TestRealCyrusReplaceInvariants(t *testing.T) {
	for _, mode := range []string{"offline", "server"} {
		t.Run(mode, func(t *testing.T) {
			lab, m, file := aliceLab(t)
			restore := func(args ...string) (int, string) {
				if mode == "offline" {
					return m.run(append([]string{"restore", "-C", lab.Conf}, args...)...)
				}
				return m.run(append([]string{"restore", "--server", lab.SyncAddr, "--auth-user", lab.Admin}, args...)...)
			}
			c := lab.IMAP(t, "alice")
			cache := newClientCache(t, c, "INBOX")
			before := cache.uidvalidity

			// After the dump: two deliveries, a flag, an expunge.
			lab.Deliver(t, "alice", []byte("From: carol@example.org\r\nSubject: one\r\n\r\none\r\n"))
			lab.Deliver(t, "alice", []byte("From: carol@example.org\r\nSubject: two\r\n\r\ntwo\r\n"))
			if _, err := c.Select("INBOX"); err != nil {
				t.Fatal(err)
			}
			if err := c.UIDStore("4", "+FLAGS", `(\Flagged)`); err != nil {
				t.Fatal(err)
			}
			if err := c.UIDStore("5", "+FLAGS", `(\Deleted)`); err != nil {
				t.Fatal(err)
			}
			if err := c.UIDExpunge("5"); err != nil {
				t.Fatal(err)
			}
			cache.resync("after the changes")
			_, hmsBefore, nextBefore, _ := cache.serverState()

			code, out := restore("--replace", "--mailbox", "user.alice", "--dry-run", file)
			if code != ExitOK || !strings.Contains(out, "replace user.alice: ") ||
				!strings.Contains(out, "stays; 32 message(s) keep their UID, 1 appended with new UIDs, 2 of the target expunged") {
				t.Errorf("dry run: exit %d\n%s", code, out)
			}
			code, out = restore("--replace", "--mailbox", "user.alice", file)
			if code != ExitOK || !strings.Contains(out, "(0 created, 1 replaced, 0 merged, 0 refused, 0 already present, 6 skipped)") {
				t.Fatalf("restore --replace: exit %d\n%s", code, out)
			}
			uv, hms, next, server := cache.serverState()
			if uv != before || next < nextBefore || hms <= hmsBefore {
				t.Errorf("after --replace: UIDVALIDITY %d UIDNEXT %d HIGHESTMODSEQ %d; before %d %d %d",
					uv, next, hms, before, nextBefore, hmsBefore)
			}
			// The dump's 33 messages, UID 5 among them again under a new UID.
			if len(server) != 33 {
				t.Errorf("after --replace: %d messages, want the dump's 33", len(server))
			}
			cache.resync("after --replace")
			maxUID := cache.maxUID
			uid, err := c.Append("INBOX", nil, time.Now(), []byte("From: dave@example.org\r\nSubject: after\r\n\r\nafter\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			if uid <= maxUID {
				t.Errorf("APPEND after --replace got UID %d; UIDs up to %d were used", uid, maxUID)
			}
			cache.resync("after the APPEND")
			if out := lab.Tool(t, "reconstruct", "-n", "user.alice"); strings.TrimSpace(out) != "user.alice" {
				t.Errorf("reconstruct -n: %s", out)
			}
		})
	}
}

// TestRealCyrusRestoreOthersSeen checks, in both modes, that another
// user's seen state follows the messages a restore renumbers: bob has
// read UIDs 1-2 of alice's team folder; alice expunges them after the
// dump of the server; a --replace (or an --undelete) brings them
// back under new UIDs, and bob must see them read, under their new UIDs,
// and nothing else read that he had not.
func TestRealCyrusRestoreOthersSeen(t *testing.T) {
	for _, how := range []string{"--replace", "--undelete"} {
		for _, mode := range []string{"offline", "server"} {
			t.Run(how[2:]+"-"+mode, func(t *testing.T) {
				lab, m, _ := aliceLab(t)
				// bob's seen records are his user data: dump the server.
				file := filepath.Join(t.TempDir(), "all.dlist")
				if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "--user", "bob", "-o", file); code != ExitOK {
					t.Fatalf("dump: exit %d\n%s", code, out)
				}
				bobSeen := func() (seen, unseen []string) {
					t.Helper()
					c := lab.IMAP(t, "bob")
					defer c.Close()
					if _, err := c.Examine("user.alice.team"); err != nil {
						t.Fatal(err)
					}
					msgs, err := c.UIDFetch("1:*", "(FLAGS DIGEST.SHA1)")
					if err != nil {
						t.Fatal(err)
					}
					for _, msg := range msgs {
						if msg.HasFlag(`\Seen`) {
							seen = append(seen, msg.Digest)
						} else {
							unseen = append(unseen, msg.Digest)
						}
					}
					sort.Strings(seen)
					sort.Strings(unseen)
					return seen, unseen
				}
				seenBefore, unseenBefore := bobSeen()
				if len(seenBefore) != 2 || len(unseenBefore) != 2 {
					t.Fatalf("before: bob has seen %d, not %d of alice's team folder; want 2 and 2", len(seenBefore), len(unseenBefore))
				}
				expungeTeam12(t, lab)
				args := []string{how, "--mailbox", "user.alice.team", file}
				code, out := m.in(mode, args...)
				if code != ExitOK {
					t.Fatalf("restore %s: exit %d\n%s", strings.Join(args, " "), code, out)
				}
				seen, unseen := bobSeen()
				if !reflect.DeepEqual(seen, seenBefore) || !reflect.DeepEqual(unseen, unseenBefore) {
					t.Errorf("after restore %s: bob has seen %v and not %v; before the restore %v and not %v",
						how, seen, unseen, seenBefore, unseenBefore)
				}
			})
		}
	}
}

// TestRealCyrusRestoreNestedParents checks that a selected nested folder
// whose parent the target lacks is restored with the parent created
// empty, as Cyrus creates it (imap/mboxlist.c
// mboxlist_update_intermediaries), offline as with --server: alice has
// Projects and Projects.Plans (two messages) at the dump, and the
// operator restores Projects.Plans alone for a new account that has
// neither (--map-user: dave offline, erin with --server).
func TestRealCyrusRestoreNestedParents(t *testing.T) {
	lab, m, _ := aliceLab(t)
	c := lab.IMAP(t, "alice")
	for _, name := range []string{"INBOX.Projects", "INBOX.Projects.Plans"} {
		if err := c.Create(name); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Append("INBOX.Projects.Plans", nil, time.Time{}, []byte(fmt.Sprintf("Subject: p%d\r\n\r\nx\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "alice.dlist")
	if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "-o", file); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	admin := lab.IMAP(t, lab.Admin)
	var outs []string
	for _, mode := range []string{"offline", "server"} {
		user := map[string]string{"offline": "dave", "server": "erin"}[mode]
		if err := admin.Create("user." + user); err != nil { // a new account: its INBOX only
			t.Fatal(err)
		}
		args := []string{"--map-user", "alice=" + user, "--mailbox", "user.alice.Projects.Plans", file}
		target := []string{"restore", "-C", lab.Conf}
		if mode == "server" {
			target = []string{"restore", "--server", lab.SyncAddr, "--auth-user", lab.Admin}
		}
		code, dry := m.run(append(append(target, "--dry-run"), args...)...)
		if code != ExitOK || !strings.Contains(dry, "create  user."+user+".Projects.Plans") {
			t.Fatalf("%s: dry run: exit %d\n%s", mode, code, dry)
		}
		code, out := m.run(append(target, args...)...)
		if code != ExitOK {
			t.Fatalf("%s: exit %d\n%s", mode, code, out)
		}
		outs = append(outs, strings.ReplaceAll(out, user, "USER"))
		l, err := admin.List("", "user."+user+".*")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range l {
			got = append(got, e.Name)
		}
		sort.Strings(got)
		if want := []string{"user." + user + ".Projects", "user." + user + ".Projects.Plans"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s's folders after the restore: %v, want %v", mode, user, got, want)
		}
		for mb, n := range map[string]int{"user." + user + ".Projects": 0, "user." + user + ".Projects.Plans": 2} {
			if out := lab.Tool(t, "mbexamine", mb); !strings.Contains(out, fmt.Sprintf("Number of Messages: %d ", n)) {
				t.Errorf("%s: mbexamine %s: want %d messages:\n%s", mode, mb, n, out)
			}
			if out := lab.Tool(t, "reconstruct", "-n", mb); strings.TrimSpace(out) != mb {
				t.Errorf("%s: reconstruct -n %s: %s", mode, mb, out)
			}
		}
	}
	if outs[0] != outs[1] {
		t.Errorf("offline and --server print differently:\n%s\n%s", outs[0], outs[1])
	}
}

// TestRealCyrusRestoreParentACL: a missing parent created below a box of
// the dump that the restore creates takes that box's ACL (its nearest
// ancestor as the restore leaves it), offline as Cyrus does with
// --server: alice's A is shared with bob, A.B.C is restored with A and
// without A.B.
func TestRealCyrusRestoreParentACL(t *testing.T) {
	lab, m, _ := aliceLab(t)
	c := lab.IMAP(t, "alice")
	if err := c.Create("INBOX.A"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetACL("INBOX.A", "bob", "lrs"); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("INBOX.A.B.C"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append("INBOX.A.B.C", nil, time.Time{}, []byte("Subject: c\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alice.dlist")
	if code, out := m.run("dump", "-C", lab.Conf, "--user", "alice", "-o", file); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, out)
	}
	admin := lab.IMAP(t, lab.Admin)
	var acls []string
	for _, mode := range []string{"offline", "server"} {
		user := map[string]string{"offline": "dave", "server": "erin"}[mode]
		if err := admin.Create("user." + user); err != nil {
			t.Fatal(err)
		}
		args := []string{"--map-user", "alice=" + user, "--mailbox", "user.alice.A", "--mailbox", "user.alice.A.B.C", file}
		target := []string{"restore", "-C", lab.Conf}
		if mode == "server" {
			target = []string{"restore", "--server", lab.SyncAddr, "--auth-user", lab.Admin}
		}
		code, out := m.run(append(target, args...)...)
		if code != ExitOK {
			t.Fatalf("%s: exit %d\n%s", mode, code, out)
		}
		resp, err := admin.Command("GETACL", cyruslab.Quote("user."+user+".A.B"))
		if err != nil {
			l, _ := admin.List("", "user."+user+".*")
			t.Fatalf("%s: GETACL: %v\n%s\n%v", mode, err, out, l)
		}
		var entries []string
		for _, d := range resp.Data {
			if d.Name != "ACL" || len(d.Fields) < 1 {
				continue
			}
			for i := 1; i+1 < len(d.Fields); i += 2 {
				entries = append(entries, strings.ReplaceAll(d.Fields[i].Text, user, "USER")+"="+d.Fields[i+1].Text)
			}
		}
		sort.Strings(entries)
		acls = append(acls, strings.Join(entries, " "))
	}
	if !strings.Contains(acls[1], "bob=lrs") || acls[0] != acls[1] {
		t.Errorf("ACL of the created parent A.B: offline %q, --server %q; want A's (bob=lrs) in both", acls[0], acls[1])
	}
}

// TestRealCyrusRestoreKilledBeforeParent: a run of an earlier version
// killed after committing a created folder and before committing the
// missing parent created for it (that version committed the parent after
// its child; now both are in one mailboxes.db transaction) left the
// child alone; a rerun, offline or with --server, adds the parent. The
// state of the kill is made by removing the parent's entry from
// mailboxes.db after a whole run, as the kill leaves it: the parent's
// directory in place, unregistered.
func TestRealCyrusRestoreKilledBeforeParent(t *testing.T) {
	lab, m, _ := aliceLab(t)
	file := dumpProjectsPlans(t, lab, m)
	admin := lab.IMAP(t, lab.Admin)
	s := openSpool(t, lab.Conf)
	for _, mode := range []string{"offline", "server"} {
		user := map[string]string{"offline": "dave", "server": "erin"}[mode]
		if err := admin.Create("user." + user); err != nil {
			t.Fatal(err)
		}
		args := []string{"--map-user", "alice=" + user, "--mailbox", "user.alice.Projects.Plans", file}
		if code, out := m.in("offline", args...); code != ExitOK {
			t.Fatalf("first run: exit %d\n%s", code, out)
		}
		parent := "user." + user + ".Projects"
		e, ok, err := s.LookupAny(parent)
		if err != nil || !ok {
			t.Fatalf("%s after the first run: %v, %v", parent, ok, err)
		}
		err = s.UpdateTwoskip(s.Config.MboxlistPath, false, partition.CyrusOwner(), func(tx *partition.TwoskipTx) error {
			tx.Delete(partition.NameKey(parent))
			tx.Delete(partition.IDKey(e.UniqueID))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.LookupAny(parent); ok {
			t.Fatalf("%s still registered", parent)
		}
		if code, out := m.in(mode, args...); code != ExitOK {
			t.Fatalf("%s: rerun: exit %d\n%s", mode, code, out)
		}
		e, ok, err = s.LookupAny(parent)
		if err != nil || !ok || e.Deleted() || e.Intermediate() {
			t.Errorf("%s: after the rerun %s: %v %+v %v; want it created", mode, parent, ok, e, err)
			continue
		}
		if out := lab.Tool(t, "mbexamine", parent); !strings.Contains(out, "Number of Messages: 0 ") {
			t.Errorf("%s: mbexamine %s:\n%s", mode, parent, out)
		}
	}
}
