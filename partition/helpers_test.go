package partition

import (
	"crypto/sha1"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// volatile directories of a Cyrus tree that Cyrus itself changes at any
// time (lock files, sockets, process files, checkpoint backups).
var volatile = map[string]bool{"lock": true, "socket": true, "proc": true,
	"db.backup1": true, "db.backup2": true, "log": true, "run": true}

// digestTrees maps every regular file under dirs to the SHA-1 of its bytes.
func digestTrees(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && volatile[d.Name()] {
				return filepath.SkipDir
			}
			if !d.Type().IsRegular() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha1.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			out[p] = hex.EncodeToString(h.Sum(nil))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func diffDigests(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, h := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s disappeared", p)
		} else if a != h {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}
