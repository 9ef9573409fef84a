package restore

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/syncrec"
)

// TestSieveMailboxRefused: a user's #sieve mailbox (type f) is refused
// offline, in the dry run as in the real run, saying why and what to do,
// rather than restored with its scripts silently inactive.
func TestSieveMailboxRefused(t *testing.T) {
	var buf bytes.Buffer
	w, err := dumpfile.NewWriter(&buf, dumpfile.Header{Format: dumpfile.FormatVersion, Created: time.Unix(1, 0), Host: "h", Version: "t", IndexVersion: 17}, dumpfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mb := &syncrec.Mailbox{UniqueID: "abcdefghijklmnopqrstuvwx", Name: "user.alice.#sieve", MboxType: "f",
		HighestModseq: 1, UIDValidity: 1, Partition: "default", ACL: "alice\tlrswipkxtecdan\t", Options: "P"}
	if err := syncrec.WriteMailbox(w.DL(), "APPLY", mb, func() (*syncrec.Record, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(dumpfile.Counts{Mailboxes: 1}); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		target := emptyTarget(t, "")
		before := digest(t, target)
		sum, err := run(t, target, buf.Bytes(), Options{DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Mailboxes) != 1 || sum.Mailboxes[0].Action != ActionRefuse ||
			!strings.Contains(sum.Mailboxes[0].Reason, "restore --server") {
			t.Errorf("dry run %v: %+v", dry, sum.Mailboxes)
		}
		sameDigest(t, before, digest(t, target))
	}
}
