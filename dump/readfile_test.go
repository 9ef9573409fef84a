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
// file (before: taken).
func TestReadFileShortReads(t *testing.T) {
	const size = 100
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
		n, err := readFile(int(r.Fd()), buf)
		close(finished)
		<-done
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n != tc.want || !bytes.Equal(buf[:n], content[:n]) {
			t.Errorf("%s: read %d bytes %q, want %d", tc.name, n, buf[:n], tc.want)
		}
	}
}
