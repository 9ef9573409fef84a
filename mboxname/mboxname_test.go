package mboxname

import (
	"errors"
	"strings"
	"testing"
)

func TestMUTF7(t *testing.T) {
	for _, c := range []struct{ utf8, mutf7 string }{
		{"Entwürfe", "Entw&APw-rfe"},
		{"R&D", "R&-D"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"Sent", "Sent"},
		{"😀", "&2D3eAA-"},
	} {
		if got := EncodeMUTF7(c.utf8); got != c.mutf7 {
			t.Errorf("EncodeMUTF7(%q) = %q, want %q", c.utf8, got, c.mutf7)
		}
		if got, ok := DecodeMUTF7(c.mutf7); !ok || got != c.utf8 {
			t.Errorf("DecodeMUTF7(%q) = %q, %v", c.mutf7, got, ok)
		}
	}
	for _, bad := range []string{"a&b", "&AGE-", "&Jjo!", "é"} {
		if _, ok := DecodeMUTF7(bad); ok {
			t.Errorf("DecodeMUTF7(%q) accepted", bad)
		}
	}
}

func TestOwner(t *testing.T) {
	for name, want := range map[string]string{
		"user.alice":                       "alice",
		"user.jo^doe.Sent":                 "jo.doe",
		"example.com!user.bob.Drafts":      "bob@example.com",
		"shared.news":                      "",
		"DELETED.user.alice.Gone.6B0F37A3": "",
		"user":                             "",
	} {
		if got := Owner(name); got != want {
			t.Errorf("Owner(%q) = %q, want %q", name, got, want)
		}
	}
	if o := DeletedOwner("DELETED.user.alice.Gone.6B0F37A3"); o != "alice" {
		t.Errorf("DeletedOwner = %q", o)
	}
	if orig, ok := Deleted("example.com!DELETED.user.bob.X.6B0F37A3"); !ok || orig != "example.com!user.bob.X" {
		t.Errorf("Deleted = %q, %v", orig, ok)
	}
	if ext, owner := External("user.alice.Entw&APw-rfe"); ext != "INBOX/Entwürfe" || owner != "alice" {
		t.Errorf("External = %q, %q", ext, owner)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, n string
		ok   bool
	}{
		{"user.alice.*", "user.alice.Sent.2024", true},
		{"user.alice.%", "user.alice.Sent.2024", false},
		{"user.alice.%", "user.alice.Sent", true},
		{"user.alice.*", "user.alice", false},
		{"user.%.Sent", "user.bob.Sent", true},
		{"*", "anything.at.all", true},
		{"user.a*e.S%", "user.alice.Sent", true},
	} {
		if got := Glob(c.p, c.n); got != c.ok {
			t.Errorf("Glob(%q, %q) = %v", c.p, c.n, got)
		}
	}
}

var dump = []string{
	"user.alice", "user.alice.Sent", "user.alice.Entw&APw-rfe", "user.alice.Spam",
	"DELETED.user.alice.Gone.6B0F37A3", "user.bob", "user.bob.Sent", "example.com!user.carol.Sent",
	"user.jo^doe.Archive", "shared.news",
}

func selected(t *testing.T, users, boxes []string) ([]string, error) {
	t.Helper()
	s, err := NewSelector(users, boxes)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range dump {
		if s.Match(n) {
			out = append(out, n)
		}
	}
	return out, s.Err()
}

// TestSameMailbox: every way an operator names alice's Sent or Entwürfe
// selects that mailbox and nothing else.
func TestSameMailbox(t *testing.T) {
	for _, c := range []struct {
		users []string
		box   string
		want  string
	}{
		{nil, "user.alice.Sent", "user.alice.Sent"},
		{nil, "alice/Sent", "user.alice.Sent"},
		{nil, "user/alice/Sent", "user.alice.Sent"},
		{nil, "alice.Sent", "user.alice.Sent"},
		{[]string{"alice"}, "INBOX.Sent", "user.alice.Sent"},
		{[]string{"alice"}, "INBOX/Sent", "user.alice.Sent"},
		{[]string{"alice"}, "Sent", "user.alice.Sent"},
		{[]string{"alice"}, "Entwürfe", "user.alice.Entw&APw-rfe"},
		{[]string{"alice"}, "Entw&APw-rfe", "user.alice.Entw&APw-rfe"},
		{nil, "alice/Entwürfe", "user.alice.Entw&APw-rfe"},
		{nil, "user.alice.Entw&APw-rfe", "user.alice.Entw&APw-rfe"},
		{nil, "carol@example.com/Sent", "example.com!user.carol.Sent"},
		{nil, "example.com!user.carol.Sent", "example.com!user.carol.Sent"},
		{nil, "jo.doe/Archive", "user.jo^doe.Archive"},
		{nil, "shared/news", "shared.news"},
		{nil, "DELETED.user.alice.Gone.6B0F37A3", "DELETED.user.alice.Gone.6B0F37A3"},
	} {
		got, err := selected(t, c.users, []string{c.box})
		if err != nil || len(got) != 1 || got[0] != c.want {
			t.Errorf("--user %v --mailbox %q selects %v (%v), want %s", c.users, c.box, got, err, c.want)
		}
	}
}

func TestPatternsAndUsers(t *testing.T) {
	got, err := selected(t, []string{"alice"}, nil)
	if err != nil || strings.Join(got, " ") != "user.alice user.alice.Sent user.alice.Entw&APw-rfe user.alice.Spam DELETED.user.alice.Gone.6B0F37A3" {
		t.Errorf("--user alice: %v %v", got, err)
	}
	got, err = selected(t, nil, []string{"user.%.Sent"})
	if err != nil || strings.Join(got, " ") != "user.alice.Sent user.bob.Sent" {
		t.Errorf("user.%%.Sent: %v %v", got, err)
	}
	got, err = selected(t, []string{"alice", "bob"}, []string{"S*"})
	if err != nil || strings.Join(got, " ") != "user.alice.Sent user.alice.Spam user.bob.Sent" {
		t.Errorf("--user alice --user bob S*: %v %v", got, err)
	}
	got, err = selected(t, nil, []string{"alice/*"})
	if err != nil || len(got) != 3 {
		t.Errorf("alice/*: %v %v", got, err)
	}
}

// TestTypo: a term that matches nothing is an error naming the nearest
// mailboxes (or users).
func TestTypo(t *testing.T) {
	_, err := selected(t, nil, []string{"user.alice.Sentx"})
	var nm *NoMatchError
	if !errors.As(err, &nm) || len(nm.Terms) != 1 || nm.Terms[0].Nearest[0] != "user.alice.Sent" {
		t.Fatalf("typo: %v", err)
	}
	if !strings.Contains(err.Error(), "--mailbox user.alice.Sentx matches no mailbox in the dump (nearest: user.alice.Sent, ") {
		t.Errorf("message: %v", err)
	}
	_, err = selected(t, []string{"alcie"}, nil)
	if !errors.As(err, &nm) || nm.Terms[0].Nearest[0] != "alice" {
		t.Fatalf("user typo: %v", err)
	}
	// One term of two matching is still an error, for the other.
	_, err = selected(t, nil, []string{"alice/Sent", "alice/Snet"})
	if !errors.As(err, &nm) || len(nm.Terms) != 1 || nm.Terms[0].Given != "alice/Snet" {
		t.Fatalf("half a typo: %v", err)
	}
	if s, _ := NewSelector(nil, nil); s.Err() != nil || !s.Match("x") || s.Active() {
		t.Error("nil selector")
	}
	if _, err := NewSelector(nil, []string{"INBOX.Sent"}); err == nil {
		t.Error("INBOX without --user accepted")
	}
}

func TestUserNames(t *testing.T) {
	tests := []struct{ user, inbox string }{
		{"alice", "user.alice"},
		{"john.doe", "user.john^doe"},
		{"alice@example.com", "example.com!user.alice"},
	}
	for _, tt := range tests {
		if got := UserInbox(tt.user); got != tt.inbox {
			t.Errorf("UserInbox(%q) = %q, want %q", tt.user, got, tt.inbox)
		}
		for _, name := range []string{tt.inbox, tt.inbox + ".Sent", tt.inbox + ".a.b"} {
			if got := Owner(name); got != tt.user {
				t.Errorf("Owner(%q) = %q, want %q", name, got, tt.user)
			}
		}
	}
	for _, name := range []string{"shared.team", "DELETED.user.alice.x.6B0AEB50", "userx.alice"} {
		if got := Owner(name); got != "" {
			t.Errorf("Owner(%q) = %q, want no owner", name, got)
		}
	}
}

func TestDeletedUnder(t *testing.T) {
	for _, c := range []struct {
		name, prefix, want string
		ok                 bool
	}{
		{"DELETED.user.alice.Gone.6B0F37A3", "DELETED", "user.alice.Gone", true},
		{"DELETED.user.alice.Gone.6B0F37A3", "", "user.alice.Gone", true},
		{"Trash.user.alice.A.B.6b0f37a3", "", "user.alice.A.B", true},
		{"example.com!DELETED.user.bob.X.6B0F37A3", "DELETED", "example.com!user.bob.X", true},
		{"DELETED.user.alice.Gone.6B0F37A3", "Trash", "", false},
		{"user.alice.Gone.6B0F37A3", "", "", false},
		{"DELETED.user.alice.Gone", "", "", false},
		{"DELETED.6B0F37A3", "", "", false},
	} {
		got, ok := DeletedUnder(c.name, c.prefix)
		if got != c.want || ok != c.ok {
			t.Errorf("DeletedUnder(%q, %q) = %q %v, want %q %v", c.name, c.prefix, got, ok, c.want, c.ok)
		}
	}
}

func TestParent(t *testing.T) {
	for name, want := range map[string]string{
		"user.alice.A.B":       "user.alice.A",
		"user.alice":           "user",
		"user":                 "",
		"example.com!user.bob": "example.com!user",
		"example.com!user":     "example.com!",
		"example.com!":         "",
		"":                     "",
	} {
		if got := Parent(name); got != want {
			t.Errorf("Parent(%q) = %q, want %q", name, got, want)
		}
	}
}
