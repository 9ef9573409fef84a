package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

var (
	benchData = flag.String("benchdata", "", "TestGenerateBenchData writes a generated dump (bench.dlist) and its message files (msgs/) to this `directory`")
	benchSize = flag.Int64("benchsize", 1<<30, "message bytes of the dump TestGenerateBenchData writes")
)

// generate writes a synthetic dump of about total message bytes: users
// of 8 mailboxes of at most 2000 messages each, message sizes mostly a
// few KiB with a tail up to 1 MiB (the mean is about 15 KiB, like a real
// spool's), records with correct CRCs. When msgDir is set each message is
// also written there as a file, for comparisons with other tools.
func generate(w io.Writer, msgDir string, total int64, seed uint64) (dumpfile.Counts, error) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	fill := rand.NewChaCha8([32]byte{byte(seed)})
	fw, err := dumpfile.NewWriter(w, dumpfile.Header{Created: time.Unix(1795882234, 0), Host: "bench", Version: "bench"}, dumpfile.Options{})
	if err != nil {
		return dumpfile.Counts{}, err
	}
	dl := fw.DL()
	var c dumpfile.Counts
	msg := make([]byte, 1<<20)
	type rec struct {
		g    guid.GUID
		size uint32
	}
	for box := 0; c.Bytes < total; box++ {
		name := fmt.Sprintf("user.u%d.box%d", box/8, box%8)
		var recs []rec
		inLine := 0
		for len(recs) < 2000 && c.Bytes < total {
			var n int
			switch p := rnd.IntN(100); {
			case p < 80:
				n = 1024 + rnd.IntN(7*1024)
			case p < 99:
				n = 8192 + rnd.IntN(56*1024)
			default:
				n = 65536 + rnd.IntN(len(msg)-65536)
			}
			b := msg[:n]
			fill.Read(b)
			g := guid.GUID(sha1.Sum(b))
			if inLine == 0 {
				dl.BeginLine("APPLY", "MESSAGE")
				dl.BeginList()
			}
			if err := dl.File("default", g, int64(n), bytes.NewReader(b)); err != nil {
				return c, err
			}
			if inLine++; inLine == 1024 {
				dl.EndList()
				if err := dl.EndLine(); err != nil {
					return c, err
				}
				inLine = 0
			}
			if msgDir != "" {
				dir := filepath.Join(msgDir, name)
				if len(recs) == 0 {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						return c, err
					}
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(len(recs)+1)), b, 0o644); err != nil {
					return c, err
				}
			}
			recs = append(recs, rec{g, uint32(n)})
			c.Messages++
			c.Bytes += int64(n)
		}
		if inLine > 0 {
			dl.EndList()
			if err := dl.EndLine(); err != nil {
				return c, err
			}
		}
		record := func(i int) *syncrec.Record {
			return &syncrec.Record{UID: uint32(i + 1), Modseq: uint64(i + 2), LastUpdated: 1795882100,
				Flags: []string{syncrec.FlagSeen}, InternalDate: 1795882000 + int64(i), Size: recs[i].size, GUID: recs[i].g}
		}
		crc := syncrec.NewCRC()
		for i := range recs {
			crc.Add(record(i))
		}
		mb := &syncrec.Mailbox{UniqueID: fmt.Sprintf("bench%019d", box), Name: name, SyncCRC: crc.Basic, SyncCRCAnnot: crc.Annot,
			LastUID: uint32(len(recs)), HighestModseq: uint64(len(recs) + 1), UIDValidity: 1795882000, Partition: "default",
			ACL: fmt.Sprintf("u%d\tlrswipkxtecdan\t", box/8), Options: "P"}
		i := 0
		err := syncrec.WriteMailbox(dl, "APPLY", mb, func() (*syncrec.Record, error) {
			if i == len(recs) {
				return nil, nil
			}
			i++
			return record(i - 1), nil
		})
		if err != nil {
			return c, err
		}
		c.Mailboxes++
	}
	return c, fw.Close(c)
}

// TestGenerateBenchData writes the data for scripts/bench-verify.sh; it
// runs only when -benchdata is given.
func TestGenerateBenchData(t *testing.T) {
	if *benchData == "" {
		t.Skip("no -benchdata directory")
	}
	f, err := os.Create(filepath.Join(*benchData, "bench.dlist"))
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	c, err := generate(bw, filepath.Join(*benchData, "msgs"), *benchSize, 1)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d mailboxes, %d messages, %d bytes", c.Mailboxes, c.Messages, c.Bytes)
}

// BenchmarkVerify verifies a generated dump of 128 MiB of messages held in
// memory; MB/s counts message bytes. The sha1 benchmark hashes the same
// messages on one core with Go's crypto/sha1, the floor of a sequential
// checker (coreutils' sha1sum is slower still: see scripts/bench-verify.sh).
func BenchmarkVerify(b *testing.B) {
	var buf bytes.Buffer
	c, err := generate(&buf, "", 128<<20, 1)
	if err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(c.Bytes)
		for b.Loop() {
			sum, err := Run(context.Background(), bytes.NewReader(data), Options{})
			if err != nil || !sum.OK() {
				b.Fatalf("%v %+v", err, sum)
			}
		}
	})
	b.Run("sha1", func(b *testing.B) {
		// The message bytes only, found by re-reading the dump's literals
		// once up front.
		var msgs [][]byte
		d, _ := dumpfile.NewReader(bytes.NewReader(data))
		for {
			_, name, _, err := d.Next()
			if err != nil {
				break
			}
			if name != "MESSAGE" {
				continue
			}
			for {
				tok, err := d.DL().Next()
				if err != nil || tok.Kind == dlist.End {
					break
				}
				if tok.Kind != dlist.File {
					continue
				}
				m, _ := io.ReadAll(d.DL().Body())
				msgs = append(msgs, m)
			}
		}
		b.SetBytes(c.Bytes)
		for b.Loop() {
			for _, m := range msgs {
				sha1.Sum(m)
			}
		}
	})
}
