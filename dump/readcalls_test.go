package dump_test

import (
	"context"
	"crypto/sha1"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/fixtures/gen"
)

// straceCounts runs mbtool dump --all of the partition of conf under
// strace -c, writing the dump into a pipe (as dump -o - | cat does), and
// returns the calls per system call name.
func straceCounts(t *testing.T, bin, conf string) map[string]int {
	t.Helper()
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command("sh", "-c", `strace -f -c -e trace=read,readv,write,openat -o "$1" "$2" dump -C "$3" --all -q -o - | cat > /dev/null`,
		"sh", out, bin, conf)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace mbtool dump: %v\n%s", err, b)
	}
	return straceSummary(t, out)
}

// TestDumpReadsAndWrites counts the system calls dump makes for the
// message files of a generated partition (a few KB each, and a tail of
// attachments of 2 to 8 MiB), over the calls the rest of the run makes.
// A message file of the size the index says, up to 4 MiB (half the
// default read-ahead), is read whole with one read, or one readv into a
// chain of buffers (the second read, returning nothing, cost one call per
// message: 2.0 reads per small file before; files of 1 to 4 MiB were read
// twice, as larger ones still are); a larger one is hashed in 256 KiB
// reads and copied in 1 MiB ones (32 KiB and 64 KiB before); the dump is
// written in 1 MiB writes (64 KiB before: 13 times the writes).
func TestDumpReadsAndWrites(t *testing.T) {
	bin := buildMbtool(t)
	dir := t.TempDir()
	conf, st, err := gen.Partition(context.Background(), filepath.Join(dir, "p"), gen.Options{Seed: 1, Messages: 2_000, MeanSize: 20_000})
	if err != nil {
		t.Fatal(err)
	}
	var small, large, largeReads int
	chained := map[[20]byte]bool{} // files read into a chain, by content: a copy is read once
	err = filepath.WalkDir(filepath.Join(dir, "p", "spool"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() <= 4<<20 {
			small++
			if fi.Size() >= 16<<10 {
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				chained[sha1.Sum(b)] = true
			}
			return nil
		}
		large++
		// Hashing: size/256 KiB reads and the one that finds the end;
		// copying: size/1 MiB, and one for the end.
		largeReads += int(fi.Size()/(256<<10)) + 1 + int(fi.Size()/(1<<20)) + 1
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if large == 0 || len(chained) == 0 || small < 1_000 {
		t.Fatalf("the generated partition has %d small (%d different ones of 16 KiB or more) and %d large message files; want each", small, len(chained), large)
	}
	calls := straceCounts(t, bin, conf)
	// What the rest of the run reads and opens: the configuration,
	// mailboxes.db, each mailbox's locks, header and index (at most 12 per
	// mailbox), and the Go runtime's own.
	other := 40 + 12*int(st.Mailboxes)
	files := small + large
	t.Logf("%d small and %d large message files, %d MB dumped: %v", small, large, st.Bytes>>20, calls)
	if got, want := calls["openat"], files+other; got > want {
		t.Errorf("%d openat calls; want at most %d (one per message file)", got, want)
	}
	if got, want := calls["read"]+calls["readv"], small+largeReads+other; got > want {
		t.Errorf("%d read and readv calls for %d small and %d large message files; want at most %d (one per small file)", got, small, large, want)
	}
	if got := calls["readv"]; got < len(chained) {
		t.Errorf("%d readv calls for %d different message files of 16 KiB or more; want one each", got, len(chained))
	}
	if got, want := calls["write"], 2*int(st.Bytes>>20)+10; got > want {
		t.Errorf("%d write calls for %d MB; want at most %d (writes of 1 MiB)", got, st.Bytes>>20, want)
	}
}
