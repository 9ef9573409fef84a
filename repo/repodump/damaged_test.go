package repodump

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/mbtool/mbtool/fixtures/gen"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/restore"
)

// restore --repo leaves the files' SHA-1 to the restore
// (ExportOptions.ReaderRehashes): a message file changed in its pack is
// still refused, by the restore, which names the file and leaves the
// target without any mailbox.
func TestRestoreDamagedPack(t *testing.T) {
	ctx := context.Background()
	s := openSpool(t, fixtures.UnpackT(t))
	r := newRepo(t)
	sum, err := Run(ctx, s, r, Options{Users: []string{"alice"}, Host: "h", Version: "v", Now: night})
	if err != nil {
		t.Fatal(err)
	}
	// A byte of the first file's body, flipped.
	var packs []string
	r.Store().List("packs", func(name string, _ int64) error { packs = append(packs, name); return nil })
	if len(packs) == 0 {
		t.Fatal("no pack")
	}
	p := filepath.Join(r.Store().Location(), packs[0])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("}\r\n"))
	if i < 0 {
		t.Fatal("no file literal in the pack")
	}
	b[i+3+10] ^= 1
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	_, target, err := gen.OpenEmpty(filepath.Join(t.TempDir(), "target"))
	if err != nil {
		t.Fatal(err)
	}
	d := r.OpenDump(ctx, idx, sum.Snapshot, repo.ExportOptions{Users: []string{"alice"}, ReaderRehashes: true, Unsealed: true})
	_, err = restore.Run(ctx, target, d, restore.Options{Unsealed: true})
	if cerr := d.Close(); cerr != nil {
		t.Errorf("the export, which does not re-hash: %v", cerr)
	}
	if !errors.Is(err, guid.ErrMismatch) {
		t.Fatalf("restore of a damaged pack: %v, want a GUID mismatch", err)
	}
	if mbs, err := target.Mailboxes(); err != nil || len(mbs) > 0 {
		t.Errorf("after the refused restore the target holds %d mailboxes (%v)", len(mbs), err)
	}
	// An export that re-hashes (export, the default) fails itself.
	if _, err := r.WriteDump(ctx, idx, sum.Snapshot, io.Discard, repo.ExportOptions{Users: []string{"alice"}}); !errors.Is(err, guid.ErrMismatch) {
		t.Errorf("export of a damaged pack: %v, want a GUID mismatch", err)
	}
}
