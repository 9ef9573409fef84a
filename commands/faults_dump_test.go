package commands

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/partition"
)

// messageFile returns the path and GUID of the first message of mailbox.
func messageFile(t testing.TB, conf, mailbox string) (string, guid.GUID, uint32) {
	t.Helper()
	s := openSpool(t, conf)
	e, err := s.Lookup(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var first partition.Record
	m.Records(func(r partition.Record) error {
		if first.UID == 0 && !r.Expunged() {
			first = r
		}
		return nil
	})
	return m.MessagePath(first), first.GUID, first.UID
}

// mailboxDir returns the data directory of mailbox.
func mailboxDir(t testing.TB, conf, mailbox string) string {
	t.Helper()
	s := openSpool(t, conf)
	e, err := s.Lookup(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := s.Dirs(e)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// The output file system fills up: a clear error, exit 1, and neither the
// dump nor its temporary file is left.
func faultDumpDiskFull(t *testing.T) []faultRow {
	conf := fixtures.UnpackT(t)
	out := filepath.Join(t.TempDir(), "out")
	mountTmpfs(t, out, 1<<20) // alice's dump is 2.3 MB, 1.8 MB compressed
	dirs := map[string]string{out: "$OUT", filepath.Dir(conf): "$SPOOL"}
	var rows []faultRow
	for _, name := range []string{"alice.dlist", "alice.dlist.zst"} {
		code, stderr := runMbtool(t, procOptions{}, "dump", "-C", conf, "--user", "alice", "-q", "-o", filepath.Join(out, name))
		said := errSaid(stderr)
		if code != ExitFailure || !strings.Contains(said, "no space left on device") {
			t.Errorf("dump to a full disk: exit %d, stderr:\n%s", code, stderr)
		}
		if left := leftovers(t, out, "alice"); len(left) > 0 {
			t.Errorf("dump to a full disk left %v", left)
		}
		rows = append(rows, faultRow{
			Fault:   "output file system full (1 MiB tmpfs) while writing the dump",
			Command: "mbtool dump --user alice -o $OUT/" + name,
			Exit:    code, Said: sanitize(said, dirs),
			State: "no file under the final name, no temporary file left",
		})
	}
	return rows
}

// A message file is deleted while the dump is running (after the mailbox
// list was read, before its mailbox is reached): it is reported by name,
// everything else is dumped, exit 3.
func faultDumpMessageVanishes(t *testing.T) []faultRow {
	conf := fixtures.UnpackT(t)
	path, g, uid := messageFile(t, conf, "user.alice.Sent")
	dirs := map[string]string{filepath.Dir(conf): "$SPOOL"}

	p, out := startBlockedDump(t, conf, "--user", "alice")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	code, stderr := p.wait(time.Minute)
	warn := linesWith(stderr, "mbtool: warning:")
	want := "mbtool: warning: user.alice.Sent UID " + strconv.Itoa(int(uid)) + " (GUID " + g.String() + "): "
	if code != ExitPartial || len(warn) != 1 || !strings.HasPrefix(warn[0], want) || !strings.Contains(warn[0], "no such file") {
		t.Errorf("message deleted mid-dump: exit %d, stderr:\n%s", code, stderr)
	}
	tr, boxes, err := dumpCounts(bytes.NewReader(data))
	if err != nil || len(boxes) != 7 {
		t.Fatalf("dump after a message vanished: %d mailboxes, %v", len(boxes), err)
	}
	// Only that message is missing: one fewer than in a dump of the
	// untouched sample spool.
	full, err := os.Open(sampleDump(t, t.TempDir(), "alice.dlist", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	ftr, _, err := dumpCounts(full)
	if err != nil || tr.Messages != ftr.Messages-1 {
		t.Errorf("dump after a message vanished: %d messages, a whole dump %d (%v)", tr.Messages, ftr.Messages, err)
	}
	return []faultRow{{
		Fault:   "a message file deleted during the dump (after the mailbox list was read)",
		Command: "mbtool dump --user alice -o -",
		Exit:    code, Said: sanitize(warn[0], dirs),
		State: "dump complete and verified (trailer digest) with all 7 mailboxes, " + strconv.Itoa(int(tr.Messages)) + " messages; only that message missing (a dump of the untouched spool has " + strconv.Itoa(int(ftr.Messages)) + ")",
	}}
}

// startBlockedDump starts a dump to a pipe and returns once mbtool has
// written its first bytes and is blocked writing more: it has read the
// mailbox list and is inside the first mailbox (the sample INBOX holds a
// 1.6 MB message, more than a pipe holds). The caller reads the rest.
func startBlockedDump(t *testing.T, conf string, args ...string) (*proc, io.Reader) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	p := startMbtool(t, procOptions{stdout: w}, append([]string{"dump", "-C", conf, "-q", "-o", "-"}, args...)...)
	w.Close()
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != nil {
		code, stderr := p.wait(time.Minute)
		t.Fatalf("dump wrote nothing: exit %d, %v\n%s", code, err, stderr)
	}
	p.until("blocked writing to its pipe", func() bool { return blockedOn(p.cmd.Process.Pid, "pipe_write") })
	return p, io.MultiReader(bytes.NewReader(one[:]), r)
}

// A mailbox whose cyrus.index has a version this mbtool cannot read (a
// newer or older Cyrus): reported by name, the rest dumped, exit 3.
func faultDumpUnsupportedIndex(t *testing.T) []faultRow {
	conf := fixtures.UnpackT(t)
	s := openSpool(t, conf)
	e, err := s.Lookup("user.alice.Sent")
	if err != nil {
		t.Fatal(err)
	}
	ip, err := s.MetaPath(e, partition.FileIndex)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(ip, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], 20) // the minor version field
	if _, err := f.WriteAt(v[:], 8); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "alice.dlist")
	dirs := map[string]string{filepath.Dir(conf): "$SPOOL", filepath.Dir(out): "$OUT"}
	code, stderr := runMbtool(t, procOptions{}, "dump", "-C", conf, "--user", "alice", "-q", "-o", out)
	warn := linesWith(stderr, "mbtool: warning:")
	if code != ExitPartial || len(warn) != 1 || !strings.Contains(warn[0], "user.alice.Sent") || !strings.Contains(warn[0], "version 20") {
		t.Errorf("unsupported index version: exit %d, stderr:\n%s", code, stderr)
	}
	fd, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	_, boxes, err := dumpCounts(fd)
	if err != nil || len(boxes) != 6 {
		t.Errorf("dump: %d mailboxes %v, %v", len(boxes), boxes, err)
	}
	return []faultRow{{
		Fault:   "a source mailbox whose cyrus.index has minor version 20 (unsupported)",
		Command: "mbtool dump --user alice -o $OUT/alice.dlist",
		Exit:    code, Said: sanitize(firstOr(warn), dirs),
		State: "dump complete with the other 6 mailboxes",
	}}
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// dumpSignals are the signals every command is interrupted with.
var dumpSignals = []struct {
	name string
	sig  syscall.Signal
}{{"SIGINT", syscall.SIGINT}, {"SIGTERM", syscall.SIGTERM}}

// SIGINT or SIGTERM while dump runs (bob dumped, waiting for alice's
// mailboxes, which Cyrus holds locked): exit 130, no file left, no lock
// held.
func faultDumpSignal(t *testing.T) []faultRow {
	conf := fixtures.UnpackT(t)
	s := openSpool(t, conf)
	var rows []faultRow
	for _, sg := range dumpSignals {
		l, err := s.LockNamespace(context.Background(), "alice", true)
		if err != nil {
			t.Fatal(err)
		}
		outDir := t.TempDir()
		out := filepath.Join(outDir, "users.dlist")
		p := startMbtool(t, procOptions{}, "dump", "-C", conf, "-q", "--user", "bob", "--user", "alice", "-o", out)
		p.until("waiting for alice's namespace lock", func() bool { return hasOpen(p.cmd.Process.Pid, "*U*alice.lock") })
		p.signal(sg.sig)
		code, stderr := p.wait(procTimeout)
		l.Release()
		if code != ExitInterrupted || strings.TrimSpace(stderr) != "mbtool: interrupted" {
			t.Errorf("%s: exit %d, stderr:\n%s", sg.name, code, stderr)
		}
		if left := leftovers(t, outDir, "users"); len(left) > 0 {
			t.Errorf("%s: left %v", sg.name, left)
		}
		// Its shared locks are gone: an exclusive one is granted at once.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		l2, err := s.LockNamespace(ctx, "bob", true)
		cancel()
		if err != nil {
			t.Errorf("%s: bob's namespace lock still held: %v", sg.name, err)
		} else {
			l2.Release()
		}
		rows = append(rows, faultRow{
			Fault:   sg.name + " during a dump to a file (one user written, the next one's mailboxes locked by Cyrus)",
			Command: "mbtool dump --user bob --user alice -o $OUT/users.dlist",
			Exit:    code, Said: strings.TrimSpace(stderr),
			State: "no file under the final name, no temporary file; locks released",
		})
	}
	return rows
}

// SIGINT while dump is blocked writing to a pipe nobody reads: a blocked
// write cannot be interrupted, so mbtool stops as soon as the write
// returns; a second SIGINT ends it at once.
func faultDumpSignalStalledPipe(t *testing.T) []faultRow {
	conf := fixtures.UnpackT(t)
	var rows []faultRow

	p, out := startBlockedDump(t, conf, "--user", "alice")
	p.signal(syscall.SIGINT)
	// Drain slowly (8 KiB every 2 ms), keeping what arrives: mbtool must
	// stop long before the end of the dump, however loaded the machine.
	drained := make(chan []byte, 1)
	go func() {
		var got bytes.Buffer
		buf := make([]byte, 8<<10)
		for {
			n, err := out.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				drained <- got.Bytes()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	code, stderr := p.wait(30 * time.Second)
	if code != ExitInterrupted || strings.TrimSpace(stderr) != "mbtool: interrupted" {
		t.Errorf("SIGINT, pipe drained: exit %d, stderr:\n%s", code, stderr)
	}
	// What the reader got: part of a dump, without its trailer. verify
	// and restore must both refuse it, restore leaving its target as it
	// was.
	part := <-drained
	whole := sampleDump(t, t.TempDir(), "alice.dlist", "alice")
	fi, err := os.Stat(whole)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(part)) >= fi.Size() || bytes.Contains(part, []byte("MBTOOL TRAILER")) {
		t.Errorf("the reader got %d bytes of a %d-byte dump (a trailer: %v): the dump did not stop", len(part), fi.Size(), bytes.Contains(part, []byte("MBTOOL TRAILER")))
	}
	partFile := filepath.Join(t.TempDir(), "part.dlist")
	if err := os.WriteFile(partFile, part, 0o600); err != nil {
		t.Fatal(err)
	}
	vcode, vstderr, found := verifyFindings(t, partFile)
	if vcode != ExitFailure || len(found) == 0 {
		t.Errorf("verify of the drained part: exit %d, %d finding(s)\n%s", vcode, len(found), vstderr)
	}
	target := t.TempDir()
	tconf := emptyTarget(t, target)
	before := spoolSum(t, target)
	rcode, rstderr := runMbtool(t, procOptions{}, "restore", "-C", tconf, "-q", partFile)
	if rcode != ExitFailure {
		t.Errorf("restore of the drained part: exit %d\n%s", rcode, rstderr)
	}
	rows = append(rows, faultRow{
		Fault:   "SIGINT while the dump is blocked writing to a full pipe; the reader then drains it",
		Command: "mbtool dump --user alice -o - | ...",
		Exit:    code, Said: strings.TrimSpace(stderr),
		State: fmt.Sprintf("stops before the end of the dump: the reader gets part of it without trailer; verify of that part exits %d (%s), restore exits %d; %s",
			vcode, describeFindings(found), rcode, checkTargetAfter(t, "restore of the drained part", target, tconf, before)),
	})

	p, _ = startBlockedDump(t, conf, "--user", "alice")
	// The first SIGINT cancels; one of those that follow, once mbtool has
	// handled the first, ends it.
	for i := 0; i < 100 && p.running(); i++ {
		p.cmd.Process.Signal(syscall.SIGINT)
		time.Sleep(100 * time.Millisecond)
	}
	code, stderr = p.wait(10 * time.Second)
	if code != 128+int(syscall.SIGINT) || stderr != "" {
		t.Errorf("second SIGINT: exit %d, stderr:\n%s", code, stderr)
	}
	rows = append(rows, faultRow{
		Fault:   "a second SIGINT while the dump is blocked writing to a pipe nobody reads",
		Command: "mbtool dump --user alice -o - | ...",
		Exit:    code, Said: "",
		State: "ended by the signal at once (the default action)",
	})
	return rows
}
