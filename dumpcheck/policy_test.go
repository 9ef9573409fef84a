package dumpcheck

import (
	"errors"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/syncrec"
)

func goodMailbox() *syncrec.Mailbox {
	return &syncrec.Mailbox{UniqueID: "abcdefghijklmnopqrstuvwx", Name: "user.alice.Sent", LastUID: 10,
		HighestModseq: 20, UIDValidity: 5, Partition: "default", ACL: "alice\tlrswipkxtecdan\t"}
}

func goodRecord(uid uint32) *syncrec.Record {
	return &syncrec.Record{UID: uid, Modseq: 3, Size: 100, GUID: guid.GUID{1, 2, byte(uid)}, Flags: []string{`\Seen`, "$Label1"}}
}

// Finding 7 of issue 13: userids that name files outside the config
// directory, or longer than a file name, pass no check.
func TestUserIDFinding7(t *testing.T) {
	for _, id := range []string{"bob@..", "bob@.", "bob@a..b", "bob@", "bob@.example.com", "a!b",
		strings.Repeat("x", 255), strings.Repeat("x", 201) + "@example.com", "bob@x@y"} {
		if err := CheckUserID(id); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("CheckUserID(%.40q) = %v, want ErrUnsafeName", id, err)
		}
	}
	for _, id := range []string{"bob", "bob@example.com", "jo.doe", strings.Repeat("x", 200), "group:staff", "anyone"} {
		if err := CheckUserID(id); err != nil {
			t.Errorf("CheckUserID(%.40q) = %v", id, err)
		}
	}
	// A user mailbox whose name implies such an owner is refused too.
	mb := goodMailbox()
	mb.Name = "user." + strings.Repeat("x", 250)
	if _, err := NewDump().Mailbox(mb); !errors.Is(err, ErrUnsafeName) {
		t.Errorf("owner of 250 bytes: %v", err)
	}
}

// Finding 9 of issue 13: what one path refused, another let through.
func TestPolicyFinding9(t *testing.T) {
	keys := []struct {
		name string
		edit func(*syncrec.Mailbox)
		kind Kind
	}{
		{"dot-dot component", func(m *syncrec.Mailbox) { m.Name = "user.alice.^^" }, KindUnsafe},
		{"slash", func(m *syncrec.Mailbox) { m.Name = "user.alice/x" }, KindUnsafe},
		{"user itself", func(m *syncrec.Mailbox) { m.Name = "user" }, KindUnsafe},
		{"domain user itself", func(m *syncrec.Mailbox) { m.Name = "example.com!user" }, KindUnsafe},
		{"bad uniqueid", func(m *syncrec.Mailbox) { m.UniqueID = "../x" }, KindUnsafe},
		{"bad partition", func(m *syncrec.Mailbox) { m.Partition = "a/b" }, KindUnsafe},
		{"no partition", func(m *syncrec.Mailbox) { m.Partition = "" }, KindUnsafe},
		{"ACL id", func(m *syncrec.Mailbox) { m.ACL = "bob@..\tlrs\t" }, KindUnsafe},
		{"annotation entry", func(m *syncrec.Mailbox) {
			m.Annotations = []syncrec.Annotation{{Entry: "comment", Value: []byte("x")}}
		}, KindUnsafe},
		{"MBOXTYPE", func(m *syncrec.Mailbox) { m.MboxType = "d" }, KindUnsafe},
	}
	for _, tt := range keys {
		mb := goodMailbox()
		tt.edit(mb)
		_, err := NewDump().Mailbox(mb)
		if err == nil || KindOf(err) != tt.kind {
			t.Errorf("%s: %v (kind %s), want %s", tt.name, err, KindOf(err), tt.kind)
		}
	}
	recs := []struct {
		name string
		edit func(*syncrec.Record)
		kind Kind
	}{
		{"UID above LAST_UID", func(r *syncrec.Record) { r.UID = 11 }, KindUIDRange},
		{"UID 0", func(r *syncrec.Record) { r.UID = 0 }, KindUIDOrder},
		{"MODSEQ above HIGHESTMODSEQ", func(r *syncrec.Record) { r.Modseq = 21 }, KindModseq},
		{`\Recent`, func(r *syncrec.Record) { r.Flags = append(r.Flags, `\Recent`) }, KindUnsafe},
		{"SIZE 0", func(r *syncrec.Record) { r.Size = 0 }, KindInvalid},
		{"null GUID", func(r *syncrec.Record) { r.GUID = guid.Null }, KindInvalid},
		{"flag with space", func(r *syncrec.Record) { r.Flags = []string{"a b"} }, KindUnsafe},
		{"annotation user", func(r *syncrec.Record) {
			r.Annotations = []syncrec.Annotation{{Entry: "/comment", UserID: "../x", Value: []byte("x")}}
		}, KindUnsafe},
		{"savedate", func(r *syncrec.Record) {
			r.Annotations = []syncrec.Annotation{{Entry: syncrec.AnnotSaveDate, Value: []byte("x")}}
		}, KindInvalid},
	}
	for _, tt := range recs {
		chk, err := NewDump().Mailbox(goodMailbox())
		if err != nil {
			t.Fatal(err)
		}
		r := goodRecord(5)
		tt.edit(r)
		err = chk.Record(r)
		if err == nil || KindOf(err) != tt.kind {
			t.Errorf("%s: %v (kind %s), want %s", tt.name, err, KindOf(err), tt.kind)
		}
	}
	// Order, and a mailbox listed twice.
	d := NewDump()
	chk, _ := d.Mailbox(goodMailbox())
	if err := chk.Record(goodRecord(3)); err != nil {
		t.Fatal(err)
	}
	if err := chk.Record(goodRecord(3)); KindOf(err) != KindUIDOrder {
		t.Errorf("UID twice: %v", err)
	}
	if _, err := d.Mailbox(goodMailbox()); KindOf(err) != KindDuplicate || !errors.Is(err, ErrDamaged) {
		t.Errorf("mailbox twice: %v", err)
	}
	// 129 user flags.
	chk, _ = NewDump().Mailbox(goodMailbox())
	r := goodRecord(1)
	r.Flags = nil
	for i := 0; i < 129; i++ {
		r.Flags = append(r.Flags, "f"+strings.Repeat("x", i))
	}
	if err := chk.Record(r); err == nil {
		t.Error("129 user flags accepted")
	}
}

func TestPolicyCRC(t *testing.T) {
	mb := goodMailbox()
	r := goodRecord(1)
	c := syncrec.NewCRC()
	c.Add(r)
	mb.SyncCRC, mb.SyncCRCAnnot = c.Basic, c.Annot
	chk, err := NewDump().Mailbox(mb)
	if err != nil {
		t.Fatal(err)
	}
	chk.Record(r)
	if err := chk.End(); err != nil {
		t.Errorf("matching CRC: %v", err)
	}
	mb.SyncCRC++
	chk, _ = NewDump().Mailbox(mb)
	chk.Record(r)
	if err := chk.End(); KindOf(err) != KindCRC {
		t.Errorf("CRC off by one: %v", err)
	}
}
