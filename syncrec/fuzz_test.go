package syncrec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/mbtool/mbtool/dlist"
)

// FuzzDecode reads one APPLY line (MAILBOX, SEEN, SUB, QUOTA) as restore
// reads a dump's: it must never panic; every error must wrap ErrInvalid or
// one of dlist's sentinels; and what decodes must print (Write*) to text
// that decodes and prints to the same bytes again.
//
// Seeds: every APPLY/* MAILBOX line real Cyrus 3.6 sent in the replication
// transcript (testdata/mailboxes.txt), and one line of each other kind.
// Crashers found are kept under testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	fh, err := os.Open("testdata/mailboxes.txt")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimPrefix(sc.Bytes(), []byte("* "))
		if !bytes.HasPrefix(line, []byte("APPLY ")) {
			line = append([]byte("APPLY "), line...)
		}
		f.Add(append(bytes.Clone(line), "\r\n"...))
	}
	fh.Close()
	for _, s := range []string{
		"APPLY SEEN %(USERID bob UNIQUEID a93hfw3kcinqp73puc2chx3z LASTREAD 1795882100 LASTUID 3 LASTCHANGE 1795882100 SEENUIDS 1:2)\r\n",
		"APPLY SUB %(USERID alice MBOXNAME \"user.alice.Old Stuff\")\r\n",
		"APPLY QUOTA %(ROOT user.alice STORAGE 512000 MODSEQ 4)\r\n",
		"APPLY MAILBOX %(UNIQUEID x MBOXNAME user.x RECORD (%(UID 1 FLAGS (\\Seen {3+}\r\nabc))))\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		first, err := decodeLine(in)
		if err != nil {
			if !known(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if first == nil {
			return // decoded, but Write refused it
		}
		second, err := decodeLine(first)
		if err != nil {
			t.Fatalf("printed %q does not decode: %v", first, err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("printed differently:\n%q\n%q", first, second)
		}
	})
}

// decodeLine decodes one APPLY line and prints what it decoded; it returns
// nil bytes and no error when decoding worked but printing refused.
func decodeLine(in []byte) ([]byte, error) {
	r := dlist.NewReader(bytes.NewReader(in))
	r.SetLimits(dlist.Limits{MaxLiteral: 1 << 16, MaxAtom: 1 << 12, MaxDepth: 16, MaxLine: 1 << 20})
	verb, err := r.Next()
	if err != nil {
		return nil, err
	}
	name, err := r.Next()
	if err != nil {
		return nil, err
	}
	if verb.Kind != dlist.Atom || name.Kind != dlist.Atom || string(verb.Bytes) != "APPLY" {
		return nil, ErrInvalid
	}
	var out bytes.Buffer
	w := dlist.NewWriter(&out)
	switch string(name.Bytes) {
	case "MAILBOX":
		var recs []*Record
		mb, err := ReadMailbox(r, func(rec *Record) error {
			if len(recs) >= 1000 {
				return ErrInvalid
			}
			recs = append(recs, rec)
			return nil
		})
		if err != nil {
			return nil, err
		}
		i := 0
		err = WriteMailbox(w, "APPLY", mb, func() (*Record, error) {
			if i == len(recs) {
				return nil, nil
			}
			i++
			return recs[i-1], nil
		})
		if err != nil {
			return nil, nil
		}
	case "SEEN", "SUB", "QUOTA":
		v, err := r.ReadValue()
		if err != nil {
			return nil, err
		}
		switch string(name.Bytes) {
		case "SEEN":
			s, err := DecodeSeen(v)
			if err != nil {
				return nil, err
			}
			err = WriteSeen(w, s)
		case "SUB":
			s, err := DecodeSub(v)
			if err != nil {
				return nil, err
			}
			err = WriteSub(w, s)
		case "QUOTA":
			q, err := DecodeQuota(v)
			if err != nil {
				return nil, err
			}
			err = WriteQuota(w, q)
		}
		if err != nil {
			return nil, nil
		}
	default:
		return nil, ErrInvalid
	}
	if err := w.Flush(); err != nil {
		return nil, nil
	}
	return out.Bytes(), nil
}

// known reports whether err wraps a sentinel a caller can act on.
func known(err error) bool {
	if err == io.EOF {
		return true
	}
	for _, s := range []error{ErrInvalid, dlist.ErrSyntax, dlist.ErrLimit, dlist.ErrTruncated,
		dlist.ErrType, dlist.ErrRange, dlist.ErrMissing} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// TestDecodeLineSeeds checks the fuzz harness itself: every real whole
// mailbox line decodes and prints back to what Cyrus sent.
func TestDecodeLineSeeds(t *testing.T) {
	b, err := os.ReadFile("testdata/mailboxes.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		// As TestWriteMailboxByteIdentical: whole mailboxes only (Cyrus's
		// incremental lines carry SINCE_* keys that a dump never has).
		if !bytes.HasPrefix(line, []byte("APPLY ")) || !bytes.Contains(line, []byte(" RECORD (")) ||
			bytes.Contains(line, []byte("SINCE_MODSEQ")) || !bytes.Contains(line, []byte("SYNC_CRC_ANNOT")) {
			continue
		}
		in := append(bytes.Clone(line), "\r\n"...)
		got, err := decodeLine(in)
		if err != nil || !bytes.Equal(got, in) {
			i := 0
			for i < len(in) && i < len(got) && in[i] == got[i] {
				i++
			}
			t.Errorf("line %d differs at byte %d: Cyrus %q, printed %q (%v)", n, i, in[max(0, i-40):min(len(in), i+40)], got[max(0, i-40):min(len(got), i+40)], err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no APPLY lines in testdata/mailboxes.txt")
	}
}
