package commands

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/partition"
	"golang.org/x/sys/unix"
)

// A message file whose bytes no longer match its GUID: the dump completes,
// names the message, and exits 3.
func TestDumpPartialExit(t *testing.T) {
	conf := fixtures.UnpackT(t)
	cfg, err := partition.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Lookup("user.alice.Sent")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.OpenMailbox(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	var first partition.Record
	m.Records(func(r partition.Record) error {
		if first.UID == 0 {
			first = r
		}
		return nil
	})
	path := m.MessagePath(first)
	m.Close()
	b, _ := os.ReadFile(path)
	b[0] ^= 1
	os.WriteFile(path, b, 0o644)

	out := filepath.Join(t.TempDir(), "alice.dlist")
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"mbtool", "dump", "-C", conf, "--user", "alice", "-o", out}, nil, &stdout, &stderr)
	if code != ExitPartial {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitPartial, stderr.String())
	}
	wantWarn := "mbtool: warning: user.alice.Sent UID 1 (GUID " + first.GUID.String() + "): "
	if !strings.Contains(stderr.String(), wantWarn) || !strings.Contains(stderr.String(), "mbtool: error: 1 item(s) could not be dumped") {
		t.Errorf("stderr:\n%s\nwant %q", stderr.String(), wantWarn)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the partial dump was not kept: %v", err)
	}
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+itoa(n), os.O_RDWR, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func itoa(n int) string { return strconv.Itoa(n) }

// A dump is never written to a terminal.
func TestDumpRefusesTerminal(t *testing.T) {
	_, tty := openPTY(t)
	conf := fixtures.UnpackT(t)
	var stderr bytes.Buffer
	code := Run(context.Background(), []string{"mbtool", "dump", "-C", conf, "--user", "alice"}, nil, tty, &stderr)
	if code != ExitFailure || !strings.Contains(stderr.String(), "mbtool: error: refusing to write a dump to a terminal") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// A dump to a pipe (dump -o - | ssh host mbtool restore) enlarges the
// pipe to 1 MiB, or what /proc/sys/fs/pipe-max-size allows, so that its
// 1 MiB writes do not each wait for the reader 16 times; what the reader
// gets is a whole dump.
func TestDumpGrowsPipe(t *testing.T) {
	conf := fixtures.UnpackT(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		read <- b
	}()
	var stderr bytes.Buffer
	code := Run(context.Background(), []string{"mbtool", "dump", "-C", conf, "--all", "-q", "-o", "-"}, nil, w, &stderr)
	after, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	w.Close()
	dump := <-read
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	want := pipeSize
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if m, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && m < want {
			want = m
		}
	}
	if after != want || before >= want {
		t.Errorf("pipe of %d bytes before the dump, %d after; want %d after", before, after, want)
	}
	if !bytes.HasSuffix(dump, []byte(")\r\n")) || len(dump) < 1<<20 {
		t.Errorf("the reader got %d bytes ending %q; want a whole dump", len(dump), dump[max(0, len(dump)-20):])
	}
}
