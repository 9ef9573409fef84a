package seencleanup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/partition"
)

// Uniqueids of the bundled sample spool (fixtures/testdata/mailboxes.db.txt).
const (
	idAliceInbox = "uogf5eg8sbfzoqkxm3hd8yd6"
	idArchive    = "ups8e54rvc4mp7fdasrwereb"
	idEntw       = "p27in6z3qlb5z2m21jiqomrn"
	idOldStuff   = "x3djji1604sgoi1zngh9iy8g"
	idSent       = "pdvxqscrwnco3xd6lk2h5rj1"
	idBobInbox   = "hrdxfloalc05p286ww592g56"
	idSharedTeam = "a93hfw3kcinqp73puc2chx3z"
	idGone       = "g0ne00000000000000000000"
	idMid        = "m1d000000000000000000000"
	idNowhere    = "n0where00000000000000000"
)

// sampleSpool unpacks the sample spool and turns it into one that has
// every case the cleanup distinguishes:
//   - user.alice.Old Stuff deleted the Cyrus way: a tombstone under its
//     name and the mailbox under DELETED.user.alice.Old Stuff.6B0AFE40;
//   - a tombstone user.alice.Gone whose mailbox is gone for good;
//   - an intermediate user.alice.Mid;
//   - user.alice.Archive's index at minor version 10 (seen state in the
//     seen db), user.alice.Entw&APw-rfe's index with a bad header CRC.
func sampleSpool(t *testing.T) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(fixtures.UnpackT(t))
	if err != nil {
		t.Fatal(err)
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each mailbox has its N record and its I record (the N record's
	// fields, N for I, and H, the former names), as Cyrus 3.6 writes them
	// (docs/cyrus/files.md §7).
	const entry = " P default V 1795882100 C 1 F 1 M 1795882099 A %(alice lrswipkxtecdan)"
	const tomb = " V 1795882100 C 1 F 3 M 1795882560"
	const deleted = "DELETED\x1fuser\x1falice\x1fOld Stuff\x1f6B0AFE40"
	edits := map[string]string{
		"Nuser\x1falice\x1fOld Stuff": "%(T ed I " + idOldStuff + tomb + ")",
		"N" + deleted:                 "%(T e I " + idOldStuff + entry + ")",
		"I" + idOldStuff:              `%(T e N "` + deleted + `"` + entry + ` H (%(N "user` + "\x1f" + `alice` + "\x1f" + `Old Stuff"` + tomb + ` T ed)))`,
		"Nuser\x1falice\x1fGone":      "%(T ed I " + idGone + tomb + ")",
		"I" + idGone:                  "%(T ed N user\x1falice\x1fGone" + tomb + " H ())",
		"Nuser\x1falice\x1fMid":       "%(T i I " + idMid + entry + ")",
		"I" + idMid:                   "%(T i N user\x1falice\x1fMid" + entry + " H ())",
	}
	editDB(t, cfg.MboxlistPath, edits)

	for name, damage := range map[string]func([]byte){
		"user.alice.Archive":      func(b []byte) { binary.BigEndian.PutUint32(b[8:], 10) },
		"user.alice.Entw&APw-rfe": func(b []byte) { b[30] ^= 1 },
	} {
		e, err := spool.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		path, err := spool.MetaPath(e, partition.FileIndex)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		damage(b)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return spool
}

// editDB rewrites a twoskip file with the records in edits set.
func editDB(t *testing.T, path string, edits map[string]string) {
	t.Helper()
	var changes []change
	for k, v := range edits {
		changes = append(changes, change{key: []byte(k), value: []byte(v)})
	}
	if _, err := rewriteSeen(context.Background(), testTree(path), path, "twoskip", changes); err != nil {
		t.Fatal(err)
	}
}

// records returns a user's seen records as "key=value", sorted.
func records(t *testing.T, spool *partition.Spool, user string) []string {
	t.Helper()
	recs, err := spool.ReadSeen(user)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.UniqueID+"="+string(r.Raw))
	}
	slices.Sort(out)
	return out
}

func TestRunSample(t *testing.T) {
	spool := sampleSpool(t)
	ctx := context.Background()
	plant := map[string]map[string]string{
		"alice": {
			idAliceInbox: "1 0 36 0 1:36",   // stale
			idArchive:    "1 0 1 0 1",       // kept: index version 10
			idEntw:       "1 0 3 0 1:3",     // kept: index unreadable (a problem)
			idOldStuff:   "1 0 1 0 1",       // stale, in the deleted hierarchy
			idSent:       "1 0 6 0  1:6",    // stale, but cannot be undone (a problem)
			idGone:       "1 2 3 4 1:3",     // orphan with a tombstone
			idNowhere:    "1 0 0 0 ",        // orphan
			idMid:        "1 0 0 0 ",        // intermediate: kept
			idBobInbox:   "1 0 3 0 2",       // bob's mailbox: kept
			idSharedTeam: "1 1 1 1 1:3,5:7", // shared: kept (replaces the sample's)
		},
		"bob": {idBobInbox: "1 0 3 0 1:3"},
	}
	for user, recs := range plant {
		path, err := spool.SeenPath(user)
		if err != nil {
			t.Fatal(err)
		}
		editDB(t, path, recs)
	}
	orig := map[string][]string{"alice": records(t, spool, "alice"), "bob": records(t, spool, "bob")}

	wantReport := []string{
		"orphan\talice\t-\t" + idNowhere + "\t1 0 0 0 ",
		"orphan\talice\tuser.alice.Gone\t" + idGone + "\t1 2 3 4 1:3",
		"stale\talice\tDELETED.user.alice.Old Stuff.6B0AFE40\t" + idOldStuff + "\t1 0 1 0 1",
		"stale\talice\tuser.alice\t" + idAliceInbox + "\t1 0 36 0 1:36",
		"stale\talice\tuser.alice.Sent\t" + idSent + "\t1 0 6 0  1:6",
		"stale\tbob\tuser.bob\t" + idBobInbox + "\t1 0 3 0 1:3",
	}
	tests := []struct {
		name    string
		opts    Options
		planned int
		gone    map[string][]string // records removed, per user
	}{
		{"dry run", Options{All: true}, 3, nil},
		{"dry run, prune", Options{Users: []string{"bob", "alice", "bob"}, PruneOrphans: true}, 5, nil},
		{"delete", Options{All: true, Delete: true}, 3, map[string][]string{
			"alice": {idAliceInbox, idOldStuff}, "bob": {idBobInbox}}},
		{"delete, prune", Options{All: true, Delete: true, PruneOrphans: true}, 5, map[string][]string{
			"alice": {idAliceInbox, idOldStuff, idGone, idNowhere}, "bob": {idBobInbox}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			opts := tc.opts
			opts.Out = &out
			if opts.Delete {
				opts.UndoFile = filepath.Join(t.TempDir(), "undo.dlist")
			}
			sum, err := Run(ctx, spool, opts)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			slices.Sort(lines)
			if !slices.Equal(lines, wantReport) {
				t.Errorf("report\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(wantReport, "\n"))
			}
			if sum.Users != 2 || sum.Stale != 4 || sum.Orphans != 2 || sum.Kept != 1 || sum.Planned != tc.planned {
				t.Errorf("summary %+v", sum)
			}
			if len(sum.Problems) != 2 || !errors.Is(sum.Problems[0], partition.ErrChecksum) && !errors.Is(sum.Problems[1], partition.ErrChecksum) ||
				!errors.Is(sum.Problems[0], ErrNotUndoable) && !errors.Is(sum.Problems[1], ErrNotUndoable) {
				t.Errorf("problems %v", sum.Problems)
			}
			for user, before := range orig {
				want := slices.DeleteFunc(slices.Clone(before), func(r string) bool {
					return slices.Contains(tc.gone[user], r[:strings.IndexByte(r, '=')])
				})
				if got := records(t, spool, user); !slices.Equal(got, want) {
					t.Errorf("%s's records\n got %q\nwant %q", user, got, want)
				}
			}
			if !opts.Delete {
				return
			}
			if sum.Removed != tc.planned {
				t.Errorf("removed %d, want %d", sum.Removed, tc.planned)
			}
			n, err := ApplyUndo(ctx, spool, opts.UndoFile)
			if err != nil || n != tc.planned {
				t.Fatalf("ApplyUndo: %d, %v", n, err)
			}
			for user, before := range orig {
				if got := records(t, spool, user); !slices.Equal(got, before) {
					t.Errorf("%s's records after undo\n got %q\nwant %q", user, got, before)
				}
			}
		})
	}
}

// TestRunDamagedSeenDB checks that a damaged seen db is reported and left
// alone while the other users are cleaned.
// damageDB flips a bit in a record near the end of the database at
// path, where its checksum catches it, and returns the damaged file.
func damageDB(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-40] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRunDamagedSeenDB(t *testing.T) {
	spool := sampleSpool(t)
	ctx := context.Background()
	alice, _ := spool.SeenPath("alice")
	bob, _ := spool.SeenPath("bob")
	editDB(t, alice, map[string]string{idAliceInbox: "1 0 36 0 1:36"})
	editDB(t, bob, map[string]string{idBobInbox: "1 0 3 0 1:3"})
	b := damageDB(t, bob)
	sum, err := Run(ctx, spool, Options{All: true, Delete: true, UndoFile: filepath.Join(t.TempDir(), "undo")})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Removed != 1 || sum.Users != 1 || len(sum.Problems) != 1 || !errors.Is(sum.Problems[0], cyrusdb.ErrCorrupt) {
		t.Errorf("summary %+v", sum)
	}
	after, err := os.ReadFile(bob)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, b) {
		t.Error("damaged seen db was changed")
	}
	if got := records(t, spool, "alice"); slices.ContainsFunc(got, func(r string) bool { return strings.HasPrefix(r, idAliceInbox) }) {
		t.Errorf("alice's stale record not removed: %q", got)
	}
}

func TestRunOptions(t *testing.T) {
	spool := sampleSpool(t)
	ctx := context.Background()
	if _, err := Run(ctx, spool, Options{}); !errors.Is(err, ErrNoSelection) {
		t.Errorf("no users: %v", err)
	}
	if _, err := Run(ctx, spool, Options{All: true, Delete: true}); !errors.Is(err, ErrNoUndoFile) {
		t.Errorf("delete without undo file: %v", err)
	}
	undo := filepath.Join(t.TempDir(), "undo")
	if err := os.WriteFile(undo, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, spool, Options{All: true, Delete: true, UndoFile: undo}); !errors.Is(err, ErrUndoExists) {
		t.Errorf("existing undo file: %v", err)
	}
	if b, _ := os.ReadFile(undo); string(b) != "keep me" {
		t.Errorf("existing undo file overwritten: %q", b)
	}
	// A user with no mailboxes and no seen db is an error naming it
	// (a typo must not look like a clean run).
	var uu *UnknownUsersError
	if _, err := Run(ctx, spool, Options{Users: []string{"nobody", "alice"}}); !errors.As(err, &uu) || err.Error() != "no such user: nobody" {
		t.Errorf("unknown user: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cctx, spool, Options{All: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestRemoveMailboxAppeared checks that a record listed as an orphan is
// kept when a mailbox with its uniqueid appears before the removal.
func TestRemoveMailboxAppeared(t *testing.T) {
	spool := sampleSpool(t)
	ctx := context.Background()
	alice, _ := spool.SeenPath("alice")
	editDB(t, alice, map[string]string{idNowhere: "1 0 0 0 ", idAliceInbox: "1 0 36 0 1:36"})
	undo := filepath.Join(t.TempDir(), "undo")
	writeUndo(t, undo, [2]string{idAliceInbox, "1 0 36 0 1:36"}, [2]string{idNowhere, "1 0 0 0 "})
	f, err := os.Open(undo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	editDB(t, spool.Config.MboxlistPath, map[string]string{
		"Nuser\x1fbob\x1fNew": "%(T e I " + idNowhere + " P default V 1 C 1 F 1 M 1 A %(bob lrswipkxtecdan))",
		"I" + idNowhere:       "%(T e N user\x1fbob\x1fNew P default V 1 C 1 F 1 M 1 A %(bob lrswipkxtecdan) H ())",
	})
	sum := &Summary{}
	if err := remove(ctx, spool, f, undo, sum); err != nil {
		t.Fatal(err)
	}
	if sum.Removed != 1 || len(sum.Problems) != 1 || !strings.Contains(sum.Problems[0].Error(), "user.bob.New appeared") {
		t.Errorf("summary %+v", sum)
	}
	if got := records(t, spool, "alice"); !slices.Contains(got, idNowhere+"=1 0 0 0 ") || slices.Contains(got, idAliceInbox+"=1 0 36 0 1:36") {
		t.Errorf("alice's records %q", got)
	}
}

// TestRunAllSeenOnlyUser: All examines the seen db of a user who owns no
// mailbox (one who reads shared folders only), as it does every user
// partition.Spool.Users lists, so an orphan there is listed; her records
// for other users' and shared mailboxes stay.
func TestRunAllSeenOnlyUser(t *testing.T) {
	spool := sampleSpool(t)
	carol, err := spool.SeenPath("carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(carol), 0o755); err != nil {
		t.Fatal(err)
	}
	editDB(t, carol, map[string]string{idNowhere: "1 0 0 0 ", idSharedTeam: "1 1 1 1 1:3", idBobInbox: "1 0 3 0 2"})
	var report bytes.Buffer
	sum, err := Run(context.Background(), spool, Options{All: true, Out: &report})
	if err != nil {
		t.Fatal(err)
	}
	want := "orphan\tcarol\t-\t" + idNowhere + "\t1 0 0 0 \n"
	if !strings.Contains(report.String(), want) || strings.Count(report.String(), "\tcarol\t") != 1 || sum.Users != 3 {
		t.Errorf("report\n%swant carol's orphan only once, in 3 seen dbs; summary %s", report.String(), sum)
	}
}
