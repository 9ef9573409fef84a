package main

import (
	"os"
	"path/filepath"
	"testing"
)

// hash hashes every byte of the file once, whatever the number of parts,
// and reports a missing file.
func TestHash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	b := make([]byte, 3<<20+7)
	for i := range b {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, parts := range []int{1, 2, 3, 64} {
		if n, err := hash(p, parts); err != nil || n != int64(len(b)) {
			t.Errorf("%d parts: %d bytes, %v", parts, n, err)
		}
	}
	if _, err := hash(filepath.Join(t.TempDir(), "missing"), 2); err == nil {
		t.Error("no error for a missing file")
	}
}
