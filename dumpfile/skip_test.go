package dumpfile

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/guid"
)

// SKIPPED lines round-trip, are passed over by Next and handed to OnSkip;
// a malformed one is a format error.
func TestSkipLines(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Created: time.Unix(1, 0), Host: "h", Version: "v"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := guid.Parse("5d69cd5e77a1b8aa8e2e2314526e928b781ef0a7")
	skips := []Skip{
		{Item: "user.alice.Sent", UID: 4, GUID: g, Reason: "open /x/4.: no such file or directory"},
		{Item: "user alice", Reason: "seen db: " + strings.Repeat("x", 2000)},
	}
	for _, s := range skips {
		if err := WriteSkip(w.DL(), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(Counts{}); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var got []Skip
	r.OnSkip = func(s Skip, off int64) { got = append(got, s) }
	if _, _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next: %v", err)
	}
	if len(got) != 2 || r.Skipped != 2 || got[0] != skips[0] || len(got[1].Reason) != maxReason || got[1].UID != 0 {
		t.Errorf("skips read: %+v (%d)", got, r.Skipped)
	}

	bad := strings.Replace(buf.String(), "ITEM user.alice.Sent UID 4", "ITEM user.alice.Sent UID x", 1)
	r, err = NewReader(strings.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.Next(); !errors.Is(err, ErrFormat) {
		t.Errorf("malformed SKIPPED: %v", err)
	}
}
