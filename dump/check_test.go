package dump

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

// dumpStats is what checkDump saw in a dump.
type dumpStats struct {
	literals  int
	mailboxes map[string]*syncrec.Mailbox
	records   map[string][]*syncrec.Record
	guidBoxes map[guid.GUID]map[string]bool // GUID -> mailboxes referencing it
	seen      int
	subs      int
	quotas    int
	trailer   *dumpfile.Trailer
}

// checkDump reads a dump the way verify does and fails the test on any
// inconsistency: each literal hashes to its GUID and appears once, every
// record's file is in the dump before its mailbox, every mailbox's CRCs are
// those of its records, and the trailer counts and digest are right.
func checkDump(t *testing.T, data []byte) *dumpStats {
	t.Helper()
	d, err := dumpfile.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	st := &dumpStats{mailboxes: map[string]*syncrec.Mailbox{}, records: map[string][]*syncrec.Record{},
		guidBoxes: map[guid.GUID]map[string]bool{}}
	var bytesTotal int64
	for {
		verb, name, off, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		if verb != "APPLY" {
			t.Fatalf("offset %d: verb %q", off, verb)
		}
		switch name {
		case "MESSAGE":
			r := d.DL()
			if tok, err := r.Next(); err != nil || tok.Kind != dlist.List {
				t.Fatalf("offset %d: APPLY MESSAGE: %v %v", off, tok.Kind, err)
			}
			for {
				tok, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				if tok.Kind == dlist.End {
					break
				}
				if tok.Kind != dlist.File {
					t.Fatalf("offset %d: %v in APPLY MESSAGE", tok.Offset, tok.Kind)
				}
				fi := tok.File
				if _, dup := st.guidBoxes[fi.GUID]; dup {
					t.Errorf("GUID %s embedded twice", fi.GUID)
				}
				g, n, err := guid.Of(r.Body())
				if err != nil || g != fi.GUID || n != fi.Size {
					t.Errorf("literal %s: hashes to %s, %d bytes, %v", fi.GUID, g, n, err)
				}
				st.guidBoxes[fi.GUID] = map[string]bool{}
				st.literals++
				bytesTotal += n
			}
			if err := d.EndLine(); err != nil {
				t.Fatal(err)
			}
		case "MAILBOX":
			var recs []*syncrec.Record
			mb, err := syncrec.ReadMailbox(d.DL(), func(r *syncrec.Record) error { recs = append(recs, r); return nil })
			if err != nil {
				t.Fatal(err)
			}
			crc := syncrec.NewCRC()
			var last uint32
			for _, r := range recs {
				crc.Add(r)
				if r.UID <= last || r.UID > mb.LastUID {
					t.Errorf("%s: UID %d out of order or above LAST_UID %d", mb.Name, r.UID, mb.LastUID)
				}
				last = r.UID
				if boxes, ok := st.guidBoxes[r.GUID]; ok {
					boxes[mb.Name] = true
				} else if !r.Expunged() {
					t.Errorf("%s UID %d: GUID %s not in the dump before its mailbox", mb.Name, r.UID, r.GUID)
				}
			}
			if crc.Basic != mb.SyncCRC || crc.Annot != mb.SyncCRCAnnot {
				t.Errorf("%s: SYNC_CRC %d SYNC_CRC_ANNOT %d, records give %d %d", mb.Name, mb.SyncCRC, mb.SyncCRCAnnot, crc.Basic, crc.Annot)
			}
			st.mailboxes[mb.Name] = mb
			st.records[mb.Name] = recs
			if err := d.EndLine(); err != nil {
				t.Fatal(err)
			}
		case "SEEN":
			st.seen++
		case "SUB":
			st.subs++
		case "QUOTA":
			st.quotas++
		default:
			t.Errorf("offset %d: unexpected APPLY %s", off, name)
		}
	}
	st.trailer = d.Trailer()
	if st.trailer == nil {
		t.Fatal("no trailer")
	}
	if st.trailer.Mailboxes != int64(len(st.mailboxes)) || st.trailer.Messages != int64(st.literals) || st.trailer.Bytes != bytesTotal {
		t.Errorf("trailer counts %+v, dump has %d mailboxes, %d literals, %d bytes", st.trailer.Counts, len(st.mailboxes), st.literals, bytesTotal)
	}
	return st
}

var _ = errors.New
