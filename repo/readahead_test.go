package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// OpenDump reads as WriteDump writes, in reads of any size; a damaged
// pack fails the read (and Close) with ErrDamaged; a reader that stops
// early stops the export, and Close then reports nothing of its own.
func TestOpenDump(t *testing.T) {
	r := newRepo(t)
	s := addNight(t, r, time.Unix(1795880000, 0), map[string][]byte{"a": genDump(t, 7, 2500), "b": genDump(t, 8, 300)})
	want := exportAll(t, r, s)
	if len(want) < 2*readAheadChunk*readAheadChunks {
		t.Fatalf("the dump is %d bytes, too small to fill the read-ahead", len(want))
	}
	idx, err := r.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	for _, size := range []int{1, 777, 64 << 10, 1 << 20} {
		d := r.OpenDump(context.Background(), idx, s, ExportOptions{})
		var got bytes.Buffer
		buf := make([]byte, size)
		for {
			n, err := d.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("reads of %d bytes: %d bytes, WriteDump wrote %d", size, got.Len(), len(want))
		}
	}
	// Stopped early: the export ends, Close says nothing.
	d := r.OpenDump(context.Background(), idx, s, ExportOptions{})
	if _, err := io.ReadFull(d, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := closeWithin(t, d, "after an early stop: the export goes on"); err != nil {
		t.Errorf("Close after an early stop: %v", err)
	}
	// A changed byte in a pack: the read fails, and so does Close.
	var packs []string
	r.store.List("packs", func(name string, size int64) error { packs = append(packs, name); return nil })
	p := filepath.Join(r.store.Location(), packs[0])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-10] ^= 1
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d = r.OpenDump(context.Background(), idx, s, ExportOptions{})
	_, rerr := io.Copy(io.Discard, d)
	cerr := d.Close()
	if rerr == nil || cerr == nil || !errors.Is(cerr, rerr) {
		t.Errorf("a damaged pack: read %v, Close %v", rerr, cerr)
	}
}

// closeWithin closes d and returns Close's error; a Close that does not
// return within a minute fails the test, saying why.
func closeWithin(t *testing.T, d io.Closer, why string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Close did not return " + why)
		return nil
	}
}
