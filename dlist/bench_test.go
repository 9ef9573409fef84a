package dlist

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/mbtool/mbtool/guid"
)

// writeMailbox streams an APPLY MAILBOX line with n records shaped like
// Cyrus 3.6's (see testdata/transcript.txt): flags, GUID, and the savedate
// and createdmodseq annotations every 3.6 record carries.
func writeMailbox(out io.Writer, n int) error {
	w := NewWriter(out)
	w.BeginLine("APPLY", "MAILBOX")
	w.BeginKVList()
	w.Key("UNIQUEID")
	w.Atom("369fn41sok46atep19lprx3l")
	w.Key("MBOXNAME")
	w.Atom("user.erin")
	w.Key("SYNC_CRC")
	w.Num(3765135817)
	w.Key("LAST_UID")
	w.Num(uint64(n))
	w.Key("ACL")
	w.Atom("erin\tlrswipkxtecdan\t")
	w.Key("RECORD")
	w.BeginList()
	flagSets := [][]string{{`\Seen`}, {`\Answered`, `\Seen`}, {}, {`\Flagged`, `\Seen`, "$Label1"}}
	for i := 1; i <= n; i++ {
		writeRecord(w, uint64(i), flagSets[i%len(flagSets)])
	}
	w.EndList()
	w.EndList()
	w.EndLine()
	return w.Flush()
}

func writeRecord(w *Writer, uid uint64, flags []string) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uid)
	g := guid.GUID(sha1.Sum(b[:]))
	w.BeginKVList()
	w.Key("UID")
	w.Num(uid)
	w.Key("MODSEQ")
	w.Num(uid + 1)
	w.Key("LAST_UPDATED")
	w.Num(1795877704 + uid)
	w.Key("FLAGS")
	w.BeginList()
	for _, f := range flags {
		w.Flag(f)
	}
	w.EndList()
	w.Key("INTERNALDATE")
	w.Num(1700003600 + uid*3600)
	w.Key("SIZE")
	w.Num(189 + uid%1000)
	w.Key("GUID")
	w.GUID(g)
	w.Key("ANNOTATIONS")
	w.BeginList()
	for _, a := range [...]struct {
		entry string
		v     uint64
	}{{"/vendor/cmu/cyrus-imapd/savedate", 1795877704}, {"/vendor/cmu/cyrus-imapd/createdmodseq", uid + 1}} {
		w.BeginKVList()
		w.Key("ENTRY")
		w.Atom(a.entry)
		w.Key("USERID")
		w.Atom("")
		w.Key("MODSEQ")
		w.Num(0)
		w.Key("VALUE")
		w.Num(a.v)
		w.EndList()
	}
	w.EndList()
	w.EndList()
}

// walkMailbox reads an APPLY MAILBOX line with the pull API: Next up to
// the RECORD list, then each record with ReadValue (tree) or with Next
// only (tokens), checking UIDs. It returns the number of records.
func walkMailbox(r *Reader, tree bool) (int, error) {
	for i := 0; i < 3; i++ { // APPLY MAILBOX %(
		if _, err := r.Next(); err != nil {
			return 0, err
		}
	}
	records := 0
	for {
		t, err := r.Next()
		if err != nil {
			return 0, err
		}
		if t.Kind == End {
			break
		}
		if string(t.Bytes) != "RECORD" {
			if _, err := r.ReadValue(); err != nil {
				return 0, err
			}
			continue
		}
		if _, err := r.Next(); err != nil { // (
			return 0, err
		}
		for {
			if tree {
				v, err := r.ReadValue()
				if err != nil {
					return 0, err
				}
				if v.Kind == End {
					break
				}
				if uid, err := v.Get("UID").Num32(); err != nil || int(uid) != records+1 {
					return 0, fmt.Errorf("record %d: uid %d, %v", records+1, uid, err)
				}
			} else {
				t, err := r.Next() // %( or )
				if err != nil {
					return 0, err
				}
				if t.Kind == End {
					break
				}
				for depth := 1; depth > 0; {
					t, err := r.Next()
					if err != nil {
						return 0, err
					}
					switch t.Kind {
					case List, KVList:
						depth++
					case End:
						depth--
					}
				}
			}
			records++
		}
	}
	if t, err := r.Next(); err != nil || t.Kind != EOL {
		return 0, fmt.Errorf("after the kvlist: %v %v", t.Kind, err)
	}
	return records, nil
}

const benchRecords = 100000

func mailboxBytes(tb testing.TB, n int) []byte {
	var buf bytes.Buffer
	if err := writeMailbox(&buf, n); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// plainReader and plainWriter hide bytes.Reader's WriteTo and io.Discard's
// ReadFrom, so that every side of a comparison copies once.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

type plainWriter struct{}

func (plainWriter) Write(b []byte) (int, error) { return len(b), nil }

func BenchmarkParseMailbox(b *testing.B) {
	data := mailboxBytes(b, benchRecords)
	for _, mode := range []string{"Next", "ReadValue"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				r := NewReader(plainReader{bytes.NewReader(data)})
				n, err := walkMailbox(r, mode == "ReadValue")
				if err != nil || n != benchRecords {
					b.Fatal(n, err)
				}
			}
			reportRecords(b, cpu0, &ms0)
		})
	}
}

func BenchmarkPrintMailbox(b *testing.B) {
	size := int64(len(mailboxBytes(b, benchRecords)))
	b.SetBytes(size)
	b.ReportAllocs()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := writeMailbox(plainWriter{}, benchRecords); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, cpu0, &ms0)
}

// reportRecords reports records per second of wall time and of CPU time
// (the machine may be shared), and allocations per record.
func reportRecords(b *testing.B, cpu0 time.Duration, ms0 *runtime.MemStats) {
	cpu := cpuTime() - cpu0
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	recs := float64(b.N) * benchRecords
	b.ReportMetric(recs/b.Elapsed().Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(recs/cpu.Seconds(), "records/cpu-s")
	}
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/recs, "allocs/record")
}

// BenchmarkFileLiteral compares streaming a 64 MiB file literal through
// Reader.Body and Writer.File with io.Copy of the same bytes.
func BenchmarkFileLiteral(b *testing.B) {
	const size = 64 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	var g guid.GUID
	header := []byte(fmt.Sprintf("APPLY MESSAGE (%%{default %s %d}\r\n", g, size))
	input := append(append(header, body...), ")\r\n"...)
	b.Run("io.Copy", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			if _, err := io.Copy(plainWriter{}, plainReader{bytes.NewReader(body)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Reader.Body", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			r := NewReader(plainReader{bytes.NewReader(input)})
			for j := 0; j < 4; j++ {
				r.Next()
			}
			n, err := io.Copy(plainWriter{}, r.Body())
			if err != nil || n != size {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("Reader.Body.Read", func(b *testing.B) {
		b.SetBytes(size)
		buf := make([]byte, 32<<10)
		for i := 0; i < b.N; i++ {
			r := NewReader(plainReader{bytes.NewReader(input)})
			for j := 0; j < 4; j++ {
				r.Next()
			}
			n, err := io.CopyBuffer(plainWriter{}, struct{ io.Reader }{r.Body()}, buf)
			if err != nil || n != size {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("Writer.File", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			w := NewWriter(plainWriter{})
			w.BeginLine("APPLY", "MESSAGE")
			w.BeginList()
			w.File("default", g, size, plainReader{bytes.NewReader(body)})
			w.EndList()
			w.EndLine()
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestHeapFlat walks 10,000 and 200,000 records through the pull API from
// a generator (nothing is held anywhere) and checks that the heap does not
// grow with the record count.
func TestHeapFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("walks 200,000 records")
	}
	heapAfter := func(n int, tree bool) uint64 {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeMailbox(pw, n)) }()
		r := NewReader(pr)
		var peak uint64
		for i := 0; i < 3; i++ {
			r.Next()
		}
		got := 0
		for {
			tok, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if tok.Kind == End {
				break
			}
			if string(tok.Bytes) != "RECORD" {
				r.ReadValue()
				continue
			}
			r.Next()
			for {
				var v *Value
				if tree {
					v, err = r.ReadValue()
				} else {
					var tk Token
					tk, err = r.Next()
					v = &Value{Kind: tk.Kind}
					d := 0
					if tk.Kind == KVList {
						d = 1
					}
					for err == nil && d > 0 {
						tk, err = r.Next()
						switch tk.Kind {
						case List, KVList:
							d++
						case End:
							d--
						}
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if v.Kind == End {
					break
				}
				got++
				if got%25000 == 0 {
					var ms runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&ms)
					if ms.HeapAlloc > peak {
						peak = ms.HeapAlloc
					}
				}
			}
		}
		if got != n {
			t.Fatalf("%d records, want %d", got, n)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > peak {
			peak = ms.HeapAlloc
		}
		runtime.KeepAlive(r)
		return peak
	}
	for _, tree := range []bool{false, true} {
		small := heapAfter(10000, tree)
		large := heapAfter(200000, tree)
		t.Logf("tree=%v: heap after 10k records %d KiB, after 200k records %d KiB", tree, small>>10, large>>10)
		if large > small+512<<10 {
			t.Errorf("tree=%v: heap grew from %d to %d bytes", tree, small, large)
		}
	}
}
