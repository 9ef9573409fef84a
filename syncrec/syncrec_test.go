package syncrec

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dlist"
)

// cyrusMailboxLines returns the MAILBOX lines Cyrus sent, CRLF-terminated as
// on the wire.
func cyrusMailboxLines(t *testing.T) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/mailboxes.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(sc.Text()), '\r', '\n'))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 20 {
		t.Fatalf("only %d lines in testdata/mailboxes.txt", len(lines))
	}
	return lines
}

func readLine(t *testing.T, line []byte) (verb string, mb *Mailbox, recs []*Record) {
	t.Helper()
	r := dlist.NewReader(bytes.NewReader(line))
	v, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Next()
	if err != nil || string(n.Bytes) != "MAILBOX" {
		t.Fatalf("name: %v %v", n, err)
	}
	mb, err = ReadMailbox(r, func(rec *Record) error { recs = append(recs, rec); return nil })
	if err != nil {
		t.Fatalf("ReadMailbox(%.80s): %v", line, err)
	}
	if eol, err := r.Next(); err != nil || eol.Kind != dlist.EOL {
		t.Fatalf("after mailbox: %v %v", eol, err)
	}
	return string(v.Bytes), mb, recs
}

// Every record list Cyrus sent carries the CRCs its records give. A list
// for a mailbox already seen is a delta: it is merged by UID over the
// state so far, as the replica does (sync_support.c, sync_apply_mailbox).
func TestCRCMatchesCyrus(t *testing.T) {
	checked, withThrid, withAnnot := 0, 0, 0
	state := map[string]map[uint32]*Record{}
	for _, line := range cyrusMailboxLines(t) {
		if !bytes.Contains(line, []byte(" RECORD (")) || !bytes.Contains(line, []byte("SYNC_CRC_ANNOT")) {
			continue // GET answers without records, partial updates
		}
		_, mb, recs := readLine(t, line)
		known, ok := state[mb.UniqueID]
		if len(recs) == 0 {
			continue // an empty delta says nothing
		}
		if !ok {
			if bytes.Contains(line, []byte("SINCE_MODSEQ")) {
				continue // a delta with nothing to build on
			}
			known = map[uint32]*Record{}
			state[mb.UniqueID] = known
		}
		for _, r := range recs {
			known[r.UID] = r
		}
		crc := NewCRC()
		for _, r := range known {
			crc.Add(r)
			for _, a := range r.Annotations {
				switch {
				case a.Entry == AnnotThrID:
					withThrid++
				case !strings.HasPrefix(a.Entry, "/vendor/cmu/cyrus-imapd/"):
					withAnnot++
				}
			}
		}
		if crc.Basic != mb.SyncCRC || crc.Annot != mb.SyncCRCAnnot {
			t.Errorf("%s: records give SYNC_CRC %d SYNC_CRC_ANNOT %d, Cyrus sent %d %d",
				mb.Name, crc.Basic, crc.Annot, mb.SyncCRC, mb.SyncCRCAnnot)
		}
		checked++
	}
	if checked < 10 || withThrid == 0 || withAnnot == 0 {
		t.Fatalf("checked %d mailboxes (%d thrid, %d real annotations): the test data lost its variety", checked, withThrid, withAnnot)
	}
}

// Decoding a Cyrus line and writing it again gives Cyrus's bytes.
func TestWriteMailboxByteIdentical(t *testing.T) {
	n := 0
	for _, line := range cyrusMailboxLines(t) {
		if !bytes.Contains(line, []byte(" RECORD (")) || bytes.Contains(line, []byte("SINCE_MODSEQ")) ||
			!bytes.Contains(line, []byte("SYNC_CRC_ANNOT")) {
			continue
		}
		verb, mb, recs := readLine(t, line)
		var out bytes.Buffer
		w := dlist.NewWriter(&out)
		i := 0
		err := WriteMailbox(w, verb, mb, func() (*Record, error) {
			if i == len(recs) {
				return nil, nil
			}
			i++
			return recs[i-1], nil
		})
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), line) {
			t.Errorf("%s: printed\n%q\nCyrus sent\n%q", mb.Name, out.Bytes(), line)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d lines compared", n)
	}
}

func TestRecordCRCExample(t *testing.T) {
	// docs/cyrus/replication.md §4, verified against Cyrus: the string hashed for
	// this record is "1 14 1795877555 (4273189473) 1704103200 a9b4...".
	line := []byte("APPLY MAILBOX %(UNIQUEID x MBOXNAME user.fred HIGHESTMODSEQ 15 RECORD (%(UID 1 MODSEQ 14 LAST_UPDATED 1795877555 FLAGS (\\Answered \\Seen $Label1) INTERNALDATE 1704103200 SIZE 154 GUID a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d)))\r\n")
	_, _, recs := readLine(t, line)
	var flagcrc uint32
	for _, f := range []string{`\answered`, `\seen`, `$label1`} {
		flagcrc ^= crc32IEEE(f)
	}
	if flagcrc != 4273189473 {
		t.Fatalf("flag crc %d, spec says 4273189473", flagcrc)
	}
	basic, _ := RecordCRC(recs[0])
	if want := crc32IEEE("1 14 1795877555 (4273189473) 1704103200 a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d"); basic != want {
		t.Fatalf("basic %d, want %d", basic, want)
	}
	recs[0].Flags = append(recs[0].Flags, FlagExpunged)
	if b, a := RecordCRC(recs[0]); b != 0 || a != 0 {
		t.Fatalf("expunged record contributes %d %d", b, a)
	}
}

func TestRecordErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"%(UID 1 MODSEQ 2 LAST_UPDATED 3 FLAGS () INTERNALDATE 4 SIZE 5)", "GUID: invalid sync record: missing"},
		{"%(UID x MODSEQ 2 LAST_UPDATED 3 FLAGS () INTERNALDATE 4 SIZE 5 GUID a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d)", `UID: invalid sync record: "x" is not a number`},
		{"%(UID 1 MODSEQ 2 LAST_UPDATED 3 FLAGS () INTERNALDATE 4 SIZE 5 GUID a9b4)", "GUID: invalid sync record"},
		{"%(UID 4294967296 MODSEQ 2 LAST_UPDATED 3 FLAGS () INTERNALDATE 4 SIZE 5 GUID a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d)", "UID: invalid sync record"},
		{"%(UID 1 MODSEQ 2 LAST_UPDATED 3 FLAGS x INTERNALDATE 4 SIZE 5 GUID a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d)", "FLAGS: invalid sync record: expected a list"},
	}
	for _, tt := range tests {
		r := dlist.NewReader(strings.NewReader("APPLY RECORD " + tt.in + "\r\n"))
		r.Next()
		r.Next()
		open, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ReadRecord(r, open)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadRecord(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
