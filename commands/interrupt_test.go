package commands

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// Bytes pass through unchanged, whatever the read sizes.
func TestInterruptibleCopies(t *testing.T) {
	data := make([]byte, 1<<20+17)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for b := data; len(b) > 0; {
			n := min(len(b), 1+rnd.IntN(100_000))
			w.Write(b[:n])
			b = b[n:]
		}
		w.Close()
	}()
	got, err := io.ReadAll(interruptible(context.Background(), r))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d of %d bytes, equal %v, err %v", len(got), len(data), bytes.Equal(got, data), err)
	}
}

// A read blocked on a pipe whose writer stalled returns when the context
// is cancelled, and so does every later read.
func TestInterruptibleCancel(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("abc"))
	ctx, cancel := context.WithCancel(context.Background())
	in := interruptible(ctx, r)
	buf := make([]byte, 10)
	if n, err := in.Read(buf); n != 3 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := in.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked after cancel")
	}
	if _, err := in.Read(buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("later read: %v", err)
	}
}

// Regular files and in-memory readers are not wrapped.
func TestInterruptibleLeavesFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range []io.Reader{f, strings.NewReader("x"), &bytes.Buffer{}} {
		if got := interruptible(context.Background(), r); got != r {
			t.Errorf("%T wrapped", r)
		}
	}
}
