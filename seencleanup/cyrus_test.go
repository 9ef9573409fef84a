package seencleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// orphanID is a uniqueid no mailbox has.
const orphanID = "zz0rphan0000000000000000"

// TestRealCyrus compares Run with cyr_userseen on a real Cyrus lab, for
// both seen database backends: stale owner records planted with cyr_dbtool
// are listed exactly as cyr_userseen names them and removed exactly as
// cyr_userseen -d removes them (on a copy of the lab); the rewritten
// databases are consistent for cyr_dbtool and served by a running Cyrus;
// the undo files restore every record.
func TestRealCyrus(t *testing.T) {
	for _, backend := range []string{"twoskip", "flat"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testRealCyrus(t, backend)
		})
	}
}

type realLab struct {
	t       *testing.T
	lab     *cyruslab.Lab
	spool   *partition.Spool
	backend string
}

func (l *realLab) uniqueID(name string) string {
	e, err := l.spool.Lookup(name)
	if err != nil {
		l.t.Fatal(err)
	}
	return e.UniqueID
}

func (l *realLab) seenPath(user string) string {
	p, err := l.spool.SeenPath(user)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

// show returns the records of a database as cyr_dbtool shows them, using
// the configuration conf.
func (l *realLab) show(conf, path string) map[string]string {
	l.t.Helper()
	out, err := cyruslab.RunToolConf(conf, nil, "cyr_dbtool", path, l.backend, "show")
	if err != nil {
		l.t.Fatal(err)
	}
	m := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			l.t.Fatalf("cyr_dbtool show %s: line %q", path, line)
		}
		m[k] = v
	}
	return m
}

func testRealCyrus(t *testing.T, backend string) {
	opts := cyruslab.Options{}
	if backend == "flat" {
		opts.ExtraConfig = "seenstate_db: flat"
	}
	lab := cyruslab.Start(t, opts)
	lab.Populate(t)
	cfg, err := partition.LoadConfig(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SeenDB != backend {
		t.Fatalf("seenstate_db is %s, want %s", cfg.SeenDB, backend)
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &realLab{t: t, lab: lab, spool: spool, backend: backend}
	ctx := context.Background()
	users := []string{"alice", "bob"}

	// alice deletes a folder: it moves to the deleted hierarchy
	// (DELETED.user.alice.Old Stuff.<hex>), keeping its uniqueid, and
	// cyr_userseen still names it.
	oldStuff := l.uniqueID("user.alice.Old Stuff")
	c := lab.IMAP(t, "alice")
	if _, err := c.Command("DELETE", cyruslab.Quote("INBOX.Old Stuff")); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// Plant stale owner records, a foreign one (bob's for alice's Sent,
	// which stays) and an orphan.
	plant := []struct{ user, key, value string }{
		{"alice", oldStuff, "1 0 1 0 1"},
		{"alice", l.uniqueID("user.alice"), "1 0 36 0 1:36"},
		{"alice", l.uniqueID("user.alice.Sent"), "1 1795877655 6 1795877655 1:6"},
		{"alice", l.uniqueID("user.alice.Archive.2019"), "1 0 6 0 "},
		{"alice", l.uniqueID("user.alice.team"), "1 5 4 5 1,3"},
		{"alice", orphanID, "1 7 7 7 1:7"},
		{"bob", l.uniqueID("user.bob"), "1 0 3 0 1:3"},
		{"bob", l.uniqueID("user.alice.Sent"), "1 0 6 0 2"},
	}
	for _, p := range plant {
		lab.Tool(t, "cyr_dbtool", l.seenPath(p.user), backend, "set", p.key, p.value)
	}
	orig := make(map[string]map[string]string)
	for _, u := range users {
		orig[u] = l.show(lab.Conf, l.seenPath(u))
	}
	if _, ok := orig["bob"][l.uniqueID("user.alice.team")]; !ok {
		t.Fatalf("bob's seen db has no record for user.alice.team: %v", orig["bob"])
	}

	// A copy of the lab, with the same planted state, for cyr_userseen -d.
	// Nothing writes to the lab meanwhile (Cyrus's own checkpoints replace
	// files by rename, so a copy sees either version whole).
	copyDir := cyruslab.TempDir(t)
	if out, err := exec.Command("cp", "-a", lab.Dir+"/.", copyDir).CombinedOutput(); err != nil {
		t.Fatalf("copying the lab: %v: %s", err, out)
	}
	copyConf := filepath.Join(copyDir, "imapd.conf")
	conf, err := os.ReadFile(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyConf, bytes.ReplaceAll(conf, []byte(lab.Dir), []byte(copyDir)), 0o644); err != nil {
		t.Fatal(err)
	}

	// What cyr_userseen names, intersected with the records that exist.
	ids := make(map[string]string) // name -> uniqueid, deleted hierarchy included
	err = spool.AllEntries(func(e partition.Entry) error {
		if !e.Deleted() {
			ids[e.Name] = e.UniqueID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := lab.Tool(t, "cyr_userseen")
	want := make(map[string]bool) // "user mailbox"
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rest, ok := strings.CutPrefix(line, "removing seen for ")
		user, mbox, ok2 := strings.Cut(rest, " on ")
		if !ok || !ok2 {
			t.Fatalf("cyr_userseen: unexpected line %q", line)
		}
		if _, ok := orig[user][ids[mbox]]; ok {
			want[user+" "+mbox] = true
		}
	}
	if len(want) != 6 || !strings.Contains(out, "on DELETED.user.alice.Old Stuff.") {
		t.Errorf("cyr_userseen names %d planted records, want 6: %v", len(want), want)
	}

	// The dry run lists exactly those, and the orphan apart.
	var report bytes.Buffer
	sum, err := Run(ctx, spool, Options{Users: users, Out: &report})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run:\n%s%s", report.String(), sum)
	got, orphans := parseReport(t, report.String())
	if !maps.Equal(got, want) {
		t.Errorf("dry run lists\n%v\ncyr_userseen names\n%v", got, want)
	}
	if !slices.Equal(orphans, []string{"alice " + orphanID}) {
		t.Errorf("orphans %v", orphans)
	}
	if sum.Stale != len(want) || sum.Orphans != 1 || sum.Planned != len(want) || len(sum.Problems) > 0 {
		t.Errorf("dry run summary %+v", sum)
	}
	for _, u := range users {
		if now := l.show(lab.Conf, l.seenPath(u)); !maps.Equal(now, orig[u]) {
			t.Errorf("dry run changed %s's seen db", u)
		}
	}

	// --delete removes what cyr_userseen -d removes.
	tmp := t.TempDir()
	undo1 := filepath.Join(tmp, "undo1.dlist")
	sum, err = Run(ctx, spool, Options{Users: users, Delete: true, UndoFile: undo1, Out: &report})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delete: %s; alice now %v", sum, l.show(lab.Conf, l.seenPath("alice")))
	if sum.Removed != len(want) || len(sum.Problems) > 0 {
		t.Errorf("delete summary %+v", sum)
	}
	if _, err := cyruslab.RunToolConf(copyConf, nil, "cyr_userseen", "-d"); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		ours := l.show(lab.Conf, l.seenPath(u))
		theirs := l.show(copyConf, strings.Replace(l.seenPath(u), lab.Dir, copyDir, 1))
		if !maps.Equal(ours, theirs) {
			t.Errorf("%s's seen db after delete:\n%v\nafter cyr_userseen -d:\n%v", u, ours, theirs)
		}
		if backend == "twoskip" {
			if out := lab.Tool(t, "cyr_dbtool", l.seenPath(u), backend, "consistent"); !strings.Contains(out, "Yes") {
				t.Errorf("cyr_dbtool consistent on %s's seen db: %q", u, out)
			}
		}
	}
	if _, err := Run(ctx, spool, Options{Users: users, Delete: true, UndoFile: undo1}); !errors.Is(err, ErrUndoExists) {
		t.Errorf("second run with the same undo file: %v, want ErrUndoExists", err)
	}

	// Cyrus still serves bob's seen state on alice's folder.
	checkBobSeen(t, lab, []uint32{1, 2})

	// --prune-orphans removes the orphan only.
	undo2 := filepath.Join(tmp, "undo2.dlist")
	report.Reset()
	sum, err = Run(ctx, spool, Options{All: true, Delete: true, PruneOrphans: true, UndoFile: undo2, Out: &report})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Removed != 1 || sum.Stale != 0 || sum.Orphans != 1 || len(sum.Problems) > 0 {
		t.Errorf("prune summary %+v\n%s", sum, report.String())
	}
	if _, ok := l.show(lab.Conf, l.seenPath("alice"))[orphanID]; ok {
		t.Error("orphan still there after --prune-orphans")
	}

	// The undo files put every record back.
	for _, u := range []string{undo2, undo1} {
		if _, err := ApplyUndo(ctx, spool, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		if now := l.show(lab.Conf, l.seenPath(u)); !maps.Equal(now, orig[u]) {
			t.Errorf("%s's seen db after undo:\n%v\nwas\n%v", u, now, orig[u])
		}
		if backend == "twoskip" {
			if out := lab.Tool(t, "cyr_dbtool", l.seenPath(u), backend, "consistent"); !strings.Contains(out, "Yes") {
				t.Errorf("cyr_dbtool consistent on %s's seen db after undo: %q", u, out)
			}
		}
	}

	// Cyrus writes into the rewritten database: bob marks UID 3 seen.
	c = lab.IMAP(t, "bob")
	if _, err := c.Select("user.alice.team"); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDStore("3", "+FLAGS", `(\Seen)`); err != nil {
		t.Fatal(err)
	}
	c.Close()
	checkBobSeen(t, lab, []uint32{1, 2, 3})

	testConcurrent(t, l)
}

// testConcurrent rewrites bob's seen db over and over while bob's IMAP
// session keeps changing his \Seen state in alice's folder, which Cyrus
// writes into that same db: no update of Cyrus's may get lost, and the
// database must stay consistent.
func testConcurrent(t *testing.T, l *realLab) {
	ctx := context.Background()
	bobInbox := l.uniqueID("user.bob")
	bobPath := l.seenPath("bob")
	c := l.lab.IMAP(t, "bob")
	if _, err := c.Select("user.alice.team"); err != nil {
		t.Fatal(err)
	}
	const stores = 21 // odd: the last one sets \Seen
	done := make(chan error, 1)
	go func() {
		for i := range stores {
			op, want := "+FLAGS", true
			if i%2 == 1 {
				op, want = "-FLAGS", false
			}
			if err := c.UIDStore("4", op, `(\Seen)`); err != nil {
				done <- err
				return
			}
			// Long enough for any rewrite that overlapped the STORE to
			// finish; a lost update shows in a fresh session.
			time.Sleep(20 * time.Millisecond)
			if got, err := bobSeesSeen(l.lab, 4); err != nil || got != want {
				done <- fmt.Errorf("after STORE %d (%s): bob sees \\Seen on UID 4: %v (%v)", i, op, got, err)
				return
			}
		}
		done <- nil
	}()
	dir := t.TempDir()
	rewrites := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("bob's STORE during rewrites: %v", err)
			}
			running = false
		default:
		}
		if _, err := rewriteSeen(ctx, testTree(bobPath), bobPath, l.backend, []change{{key: []byte(bobInbox), value: []byte("1 0 3 0 1:3")}}); err != nil {
			t.Fatal(err)
		}
		sum, err := Run(ctx, l.spool, Options{Users: []string{"bob"}, Delete: true,
			UndoFile: filepath.Join(dir, fmt.Sprintf("undo%d", rewrites))})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Removed != 1 || len(sum.Problems) > 0 {
			t.Fatalf("rewrite %d: %+v", rewrites, sum)
		}
		rewrites++
	}
	t.Logf("%d STOREs by Cyrus during %d cleanups of bob's seen db", stores, rewrites)
	checkBobSeen(t, l.lab, []uint32{1, 2, 3, 4})
	if l.backend == "twoskip" {
		if out := l.lab.Tool(t, "cyr_dbtool", bobPath, l.backend, "consistent"); !strings.Contains(out, "Yes") {
			t.Errorf("cyr_dbtool consistent on bob's seen db: %q", out)
		}
	}
}

// checkBobSeen checks that bob sees \Seen on exactly the given UIDs of
// user.alice.team.
func checkBobSeen(t *testing.T, lab *cyruslab.Lab, want []uint32) {
	t.Helper()
	c := lab.IMAP(t, "bob")
	defer c.Close()
	if _, err := c.Examine("user.alice.team"); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.UIDFetch("1:*", "FLAGS")
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint32
	for _, m := range msgs {
		if m.HasFlag(`\Seen`) {
			seen = append(seen, m.UID)
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf(`bob sees \Seen on UIDs %v of user.alice.team, want %v`, seen, want)
	}
}

// bobSeesSeen tells whether bob, in a new session, sees \Seen on uid of
// user.alice.team.
func bobSeesSeen(lab *cyruslab.Lab, uid uint32) (bool, error) {
	c, err := lab.Login("bob")
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Examine("user.alice.team"); err != nil {
		return false, err
	}
	msgs, err := c.UIDFetch(fmt.Sprint(uid), "FLAGS")
	if err != nil || len(msgs) != 1 {
		return false, fmt.Errorf("fetch: %d messages, %v", len(msgs), err)
	}
	return msgs[0].HasFlag(`\Seen`), nil
}

// parseReport returns the stale records of a report as "user mailbox" and
// the orphans as "user uniqueid".
func parseReport(t *testing.T, s string) (stale map[string]bool, orphans []string) {
	t.Helper()
	stale = make(map[string]bool)
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("report line %q has %d fields", line, len(f))
		}
		switch f[0] {
		case "stale":
			stale[f[1]+" "+f[2]] = true
		case "orphan":
			orphans = append(orphans, f[1]+" "+f[3])
		default:
			t.Fatalf("report line %q", line)
		}
	}
	return stale, orphans
}
