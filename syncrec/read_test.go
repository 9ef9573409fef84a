package syncrec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
)

func mailboxLine(t *testing.T, extraKeys string, nrec int) []byte {
	t.Helper()
	mb := &Mailbox{UniqueID: "abcdefghijklmnopqrstuvwx", Name: "user.alice", LastUID: uint32(nrec), HighestModseq: 9,
		UIDValidity: 7, Partition: "default", ACL: "alice\tlrswipkxtecdan\t"}
	i := 0
	var buf bytes.Buffer
	w := dlist.NewWriter(&buf)
	err := WriteMailbox(w, "APPLY", mb, func() (*Record, error) {
		if i == nrec {
			return nil, nil
		}
		i++
		return &Record{UID: uint32(i), Modseq: 3, Size: 10, GUID: guid.GUID{byte(i)}, Flags: []string{`\Seen`}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Flush()
	line := buf.Bytes()
	if extraKeys != "" {
		line = append(bytes.TrimSuffix(line, []byte(")\r\n")), extraKeys+")\r\n"...)
	}
	return line
}

func openLine(t *testing.T, line []byte) *dlist.Reader {
	r := dlist.NewReader(bytes.NewReader(line))
	r.SetLimits(Limits())
	r.Next() // APPLY
	r.Next() // MAILBOX
	return r
}

// A key after RECORD is refused: every mailbox key must be known before
// the first record is used.
func TestMailboxReaderKeyAfterRecord(t *testing.T) {
	mr, err := OpenMailbox(openLine(t, mailboxLine(t, " FOLDERMODSEQ 3", 2)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if r, err := mr.Next(); err != nil || r == nil {
			t.Fatalf("record %d: %v %v", i, r, err)
		}
	}
	if _, err = mr.Next(); !errors.Is(err, ErrInvalid) {
		t.Errorf("key after RECORD: %v", err)
	}
}

func TestMailboxReaderStreams(t *testing.T) {
	mr, err := OpenMailbox(openLine(t, mailboxLine(t, "", 3)))
	if err != nil {
		t.Fatal(err)
	}
	if mr.Mailbox().Name != "user.alice" || mr.Mailbox().LastUID != 3 {
		t.Errorf("mailbox %+v", mr.Mailbox())
	}
	n := 0
	for {
		r, err := mr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			break
		}
		n++
		if r.UID != uint32(n) || mr.RecordOffset() <= mr.Offset() {
			t.Errorf("record %d: UID %d offset %d", n, r.UID, mr.RecordOffset())
		}
	}
	if n != 3 {
		t.Errorf("%d records", n)
	}
}

// The memory bound: one value above MaxValue is refused by its declared
// size; many values that each fit but together exceed MaxHeld are refused
// too, naming the key and offset.
func TestMailboxReaderBounds(t *testing.T) {
	big := fmt.Sprintf("{%d+}\r\n%s", MaxValue+1, strings.Repeat("x", MaxValue+1))
	line := []byte("APPLY MAILBOX %(UNIQUEID abcdefghijklmnopqrstuvwx MBOXNAME user.alice ACL " + big + " HIGHESTMODSEQ 1)\r\n")
	if _, err := OpenMailbox(openLine(t, line)); !errors.Is(err, dlist.ErrLimit) {
		t.Errorf("one value above MaxValue: %v", err)
	}
	part := fmt.Sprintf("{%d+}\r\n%s", MaxValue-100, strings.Repeat("y", MaxValue-100))
	var b strings.Builder
	b.WriteString("APPLY MAILBOX %(UNIQUEID abcdefghijklmnopqrstuvwx MBOXNAME user.alice HIGHESTMODSEQ 1 ANNOTATIONS (")
	for i := 0; i < MaxHeld/MaxValue+1; i++ {
		fmt.Fprintf(&b, "%%(ENTRY /comment USERID alice MODSEQ 1 VALUE %s) ", part)
	}
	b.WriteString("))\r\n")
	_, err := OpenMailbox(openLine(t, []byte(b.String())))
	var fe *FieldError
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &fe) || fe.Offset == 0 {
		t.Errorf("values above MaxHeld together: %v", err)
	}
	// The same in a record's annotations, on top of the mailbox keys.
	b.Reset()
	b.WriteString("APPLY MAILBOX %(UNIQUEID abcdefghijklmnopqrstuvwx MBOXNAME user.alice HIGHESTMODSEQ 1 ANNOTATIONS (")
	for i := 0; i < MaxHeld/MaxValue/2; i++ {
		fmt.Fprintf(&b, "%%(ENTRY /comment USERID alice MODSEQ 1 VALUE %s) ", part)
	}
	b.WriteString(") RECORD (%(UID 1 MODSEQ 1 LAST_UPDATED 1 FLAGS () INTERNALDATE 1 SIZE 1 GUID 0000000000000000000000000000000000000001 ANNOTATIONS (")
	for i := 0; i < MaxHeld/MaxValue/2+1; i++ {
		fmt.Fprintf(&b, "%%(ENTRY /comment USERID alice MODSEQ 1 VALUE %s) ", part)
	}
	b.WriteString("))))\r\n")
	mr, err := OpenMailbox(openLine(t, []byte(b.String())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mr.Next(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("record values above MaxHeld with the keys: %v", err)
	}
}
