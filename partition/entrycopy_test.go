package partition

import (
	"context"
	"testing"
)

// fixtureEntry returns an entry of the sample spool with an ACL, as the
// plan holds it (stamped: Spool.current hands it back unread).
func fixtureEntry(t testing.TB, s *Spool) Entry {
	t.Helper()
	es, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if len(e.ACL) > 0 && e.stamp != 0 {
			return e
		}
	}
	t.Fatal("no stamped mailbox with an ACL in the sample spool")
	return Entry{}
}

// The Entry of an open mailbox is its own: a caller editing its ACL
// changes neither the entry it opened the mailbox with (the plan's, which
// Spool.current hands back while mailboxes.db is unchanged) nor what a
// later open of it says.
func TestOpenMailboxEntryIsACopy(t *testing.T) {
	s, _ := openFixture(t)
	e := fixtureEntry(t, s)
	want := FormatACL(e.ACL)
	m, err := s.OpenMailboxIf(context.Background(), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Entry.ACL[0].Rights = "edited"
	m.Close()
	if got := FormatACL(e.ACL); got != want {
		t.Errorf("the plan's entry of %s has ACL %q after an edit of the open mailbox's, want %q", e.Name, got, want)
	}
	m, err = s.OpenMailboxIf(context.Background(), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := FormatACL(m.Entry.ACL); got != want {
		t.Errorf("%s opened again: ACL %q, want %q", e.Name, got, want)
	}
}

// BenchmarkOpenMailbox opens and closes a mailbox of the sample spool
// with a stamped entry, as dump does per mailbox (allocs/op).
func BenchmarkOpenMailbox(b *testing.B) {
	s, _ := openFixture(b)
	e := fixtureEntry(b, s)
	b.ReportAllocs()
	for b.Loop() {
		m, err := s.OpenMailboxIf(context.Background(), e, nil)
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}
