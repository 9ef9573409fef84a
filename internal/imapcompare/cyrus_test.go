package imapcompare_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/internal/imapcompare"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/remote"
	"github.com/mbtool/mbtool/restore"
	"github.com/mbtool/mbtool/syncproto"
)

func openSpool(t *testing.T, lab *cyruslab.Lab) *partition.Spool {
	t.Helper()
	cfg, err := partition.LoadConfig(lab.Conf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := partition.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// offlineDump dumps every user and mailbox of lab's spool.
func offlineDump(t *testing.T, lab *cyruslab.Lab) []byte {
	t.Helper()
	var buf bytes.Buffer
	sum, err := dump.Run(context.Background(), openSpool(t, lab), &buf, dump.Options{All: true, Host: "lab", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("dump: %v", sum.Problems)
	}
	return buf.Bytes()
}

// restoreOffline restores dumped into lab's spool.
func restoreOffline(t *testing.T, lab *cyruslab.Lab, dumped []byte) {
	t.Helper()
	sum, err := restore.Run(context.Background(), openSpool(t, lab), bytes.NewReader(dumped), restore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("restore: %v", sum.Problems)
	}
}

// restoreServer restores dumped into lab over its sync_server.
func restoreServer(t *testing.T, lab *cyruslab.Lab, dumped []byte) {
	t.Helper()
	connect := func(ctx context.Context) (*syncproto.Client, error) {
		return syncproto.Dial(ctx, lab.SyncAddr, syncproto.Config{AuthName: lab.Admin, Password: lab.Password, Compress: true})
	}
	sum, err := remote.Restore(context.Background(), bytes.NewReader(dumped), connect, remote.RestoreOptions{})
	if err != nil {
		t.Fatalf("restore --server: %v (%+v)", err, sum)
	}
	if len(sum.Problems) > 0 {
		t.Fatalf("restore --server: %v", sum.Problems)
	}
}

func take(t *testing.T, lab *cyruslab.Lab, users ...string) imapcompare.Snapshot {
	t.Helper()
	s, err := imapcompare.Take(lab, imapcompare.Options{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRealCyrusStandard restores the standard content of a lab (every
// user and shared mailbox) offline and with --server into fresh labs, and
// finds every section of the view the same as the source's.
func TestRealCyrusStandard(t *testing.T) {
	src := cyruslab.Start(t, cyruslab.Options{})
	src.Populate(t)
	users := []string{"alice", "bob"}
	dumped := offlineDump(t, src)
	want := take(t, src, users...)
	if len(want) < 100 || want["mbexamine user.alice"] == "" || want["alice INBOX FETCH"] == "" {
		t.Fatalf("the snapshot misses sections: %d", len(want))
	}

	off := cyruslab.Start(t, cyruslab.Options{})
	restoreOffline(t, off, dumped)
	for _, d := range imapcompare.Diff(take(t, off, users...), want) {
		t.Errorf("offline: %s", d)
	}
	srv := cyruslab.Start(t, cyruslab.Options{SyncPort: true})
	restoreServer(t, srv, dumped)
	for _, d := range imapcompare.Diff(take(t, srv, users...), want) {
		t.Errorf("--server: %s", d)
	}
}
