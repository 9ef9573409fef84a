// Command sha1limit hashes a file with SHA-1 on every core at once and
// nothing else: the file is cut into one contiguous part per core, each
// read and hashed by its own goroutine. Its time is the fastest any
// verify that SHA-1-hashes those bytes could go on this machine (mbtool
// verify recomputes every message's SHA-1 GUID, and a BLAKE3 of the
// whole dump besides). scripts/bench runs it as a baseline for verify:
//
//	go run ./scripts/sha1limit [-cores N] FILE
package main

import (
	"crypto/sha1"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

func main() {
	cores := flag.Int("cores", runtime.NumCPU(), "parts hashed at once")
	flag.Parse()
	if flag.NArg() != 1 || *cores < 1 {
		fmt.Fprintln(os.Stderr, "usage: sha1limit [-cores N] FILE")
		os.Exit(2)
	}
	start := time.Now()
	n, err := hash(flag.Arg(0), *cores)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sha1limit:", err)
		os.Exit(1)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("%d bytes on %d cores in %.3f s: %.0f MB/s\n", n, *cores, secs, float64(n)/secs/1e6)
}

// hash SHA-1-hashes the file in parts parts at once and returns how
// many bytes it hashed.
func hash(name string, parts int) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	per := (size + int64(parts) - 1) / int64(parts)
	type result struct {
		n   int64
		err error
	}
	results := make(chan result, parts)
	for i := 0; i < parts; i++ {
		off := min(int64(i)*per, size)
		n := min(per, size-off)
		go func() {
			h := sha1.New()
			n, err := io.CopyBuffer(h, io.NewSectionReader(f, off, n), make([]byte, 1<<20))
			results <- result{n, err}
		}()
	}
	var total int64
	for i := 0; i < parts; i++ {
		r := <-results
		total += r.n
		if r.err != nil && err == nil {
			err = r.err
		}
	}
	return total, err
}
