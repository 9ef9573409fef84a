package verify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/fixtures/gen"
)

// FuzzVerify feeds damaged dumps to Run: it must neither panic nor hang,
// must fail only for input that is not a dump at all, and must report
// every input that differs from a good dump as not OK.
func FuzzVerify(f *testing.F) {
	var good bytes.Buffer
	if _, err := gen.WriteDump(&good, gen.Options{Seed: 3, Messages: 4, PerMailbox: 2, MeanSize: 2000, SmallOnly: true}); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:good.Len()/2])
	f.Add([]byte("MBTOOL HEADER %(FORMAT 1)\r\nMBTOOL TRAILER %(MAILBOXES 0 MESSAGES 0 BYTES 0 BLAKE3 00)\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, err := Run(context.Background(), bytes.NewReader(b), Options{Workers: 2, Budget: 1})
		if err != nil {
			if !errors.Is(err, dumpfile.ErrNotDump) && !errors.Is(err, dumpfile.ErrVersion) {
				t.Fatalf("Run failed on in-memory input: %v", err)
			}
			return
		}
		if sum.OK() && !bytes.Equal(b, good.Bytes()) {
			// Another dump may pass only if its digest is right.
			d, err := dumpfile.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("passed, but does not open: %v", err)
			}
			for {
				if _, _, _, err := d.Next(); err != nil {
					if err != io.EOF {
						t.Fatalf("passed, but the dump reader says %v", err)
					}
					break
				}
			}
		}
	})
}
