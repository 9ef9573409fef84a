package partition

import "testing"

// TestLookupIDEmpty: an empty uniqueid names no mailbox, without taking
// mailboxes.db's lock or walking the database for its I records, as
// before LookupID became LookupIDs of one.
func TestLookupIDEmpty(t *testing.T) {
	s, _ := openFixture(t)
	before := s.MailboxesHolds()
	e, ok, err := s.LookupID("")
	if err != nil || ok || e.Name != "" {
		t.Fatalf("LookupID(\"\"): %+v, %v, %v; want nothing", e, ok, err)
	}
	if n := s.MailboxesHolds() - before; n != 0 {
		t.Errorf("LookupID(\"\") took mailboxes.db's lock %d times; want none", n)
	}
	if s.idCheckDone {
		t.Error("LookupID(\"\") checked the database's I records")
	}
}
