package dump

import (
	"bytes"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readFile on a descriptor whose reads stop short before the end (a pipe
// here, as a network or FUSE filesystem may do for a regular file): the
// index says 100 bytes. A file of 100 bytes in pieces is read whole; one
// that ends early is smaller; one of 150 bytes whose second read stops
// short at exactly 100 is larger, not its first 100 bytes taken for the
// file (before: taken). Each case is read into one buffer, and into a
// chain of buffers of 30 bytes (a file larger than one of the pool's
// buffers), so that reads and the pieces' bounds fall differently.
func TestReadFileShortReads(t *testing.T) {
	for _, seg := range []int{size + 1, 30} {
		readFileShortReads(t, seg)
	}
}

const size = 100

func readFileShortReads(t *testing.T, seg int) {
	content := bytes.Repeat([]byte("0123456789"), 15)
	for _, tc := range []struct {
		name   string
		pieces []int // the bytes of each write into the pipe
		want   int   // what readFile returns
	}{
		{"whole", []int{40, 30, 30}, size},
		{"whole in one", []int{100}, size},
		{"truncated", []int{40, 50}, 90},
		{"grown", []int{60, 40, 50}, size + 1},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		done, finished := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			off := 0
			for _, n := range tc.pieces {
				w.Write(content[off : off+n])
				off += n
				// Each piece read on its own: the next is written once the
				// reader has taken this one (nothing left in the pipe).
				for {
					left, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
					if err != nil || left == 0 {
						break
					}
					select {
					case <-finished: // readFile returned: the rest stays unread
					case <-time.After(time.Millisecond):
						continue
					}
					break
				}
			}
			w.Close()
		}()
		buf := make([]byte, size+1)
		var segs [][]byte
		for rest := buf; len(rest) > 0; {
			k := min(seg, len(rest))
			segs = append(segs, rest[:k:k])
			rest = rest[k:]
		}
		n, err := readFile(int(r.Fd()), segs)
		close(finished)
		<-done
		r.Close()
		if err != nil {
			t.Fatalf("%s, pieces of %d: %v", tc.name, seg, err)
		}
		if n != tc.want || !bytes.Equal(buf[:n], content[:n]) {
			t.Errorf("%s, pieces of %d: read %d bytes %q, want %d", tc.name, seg, n, buf[:n], tc.want)
		}
	}
}
