package syncrec

import (
	"strings"
	"testing"

	"github.com/mbtool/mbtool/guid"
)

// LoseFile expunges a record once, gives it the MODSEQ above the
// mailbox's HIGHESTMODSEQ, keeps everything else as dumped, takes the
// record out of SYNC_CRC, and reports nothing for one expunged already.
func TestLoseFile(t *testing.T) {
	g := guid.GUID{1, 2, 3}
	r := &Record{UID: 7, Modseq: 9, GUID: g, Size: 10, Flags: []string{`\Seen`}}
	withFile := NewCRC()
	withFile.Add(r)
	lost := LoseFile(r, 40)
	if lost == nil || lost.UID != 7 || lost.GUID != g || !r.Expunged() || r.UID != 7 || r.Modseq != 41 || r.Size != 10 || r.Flags[0] != `\Seen` {
		t.Fatalf("LoseFile: %v, record %+v", lost, r)
	}
	if !strings.Contains(lost.Error(), "UID 7: the dump has no message file for GUID "+g.String()) {
		t.Errorf("error %q", lost.Error())
	}
	after := NewCRC()
	after.Add(r)
	if after != NewCRC() || withFile == NewCRC() {
		t.Errorf("SYNC_CRC: %+v with the file, %+v after LoseFile; want the empty mailbox's %+v", withFile, after, NewCRC())
	}
	if again := LoseFile(r, 50); again != nil || len(r.Flags) != 2 || r.Modseq != 41 {
		t.Errorf("second LoseFile: %v, flags %v", again, r.Flags)
	}
}
