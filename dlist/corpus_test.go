package dlist

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var updateCorpus = flag.Bool("update", false, "rewrite the seed corpora under testdata/fuzz from the real data in testdata")

// TestSeedCorpus checks (or, with -update, writes) the fuzz seed corpora:
// one file per dlist line of the transcript for FuzzReader, one per sample
// value for FuzzSAX.
func TestSeedCorpus(t *testing.T) {
	var reader, sax [][]byte
	for _, wl := range transcriptLines(t) {
		reader = append(reader, wl.text)
	}
	f, err := os.Open("testdata/sax-values.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sax = append(sax, append([]byte(nil), sc.Bytes()...))
	}
	for target, seeds := range map[string][][]byte{"FuzzReader": reader, "FuzzSAX": sax} {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			sum := sha256.Sum256(s)
			name := filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:8]))
			if !*updateCorpus {
				if _, err := os.Stat(name); err != nil {
					t.Errorf("seed missing (run go test -run TestSeedCorpus -update): %v", err)
				}
				continue
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
