package dumpcheck

import (
	"errors"
	"testing"
)

func TestCheckName(t *testing.T) {
	good := []string{"user.alice", "user.alice.Sent", "user.alice.Entw&APw-rfe", "user.alice.Old Stuff",
		"example.com!user.bob", "user.jo^doe", "shared.team"}
	bad := []string{"", "../etc", "user.alice/../../x", "/etc/passwd", "user..alice", "user.alice.",
		".user", "user.^^", "user.^x", "user.a\x00b", "user.a\nb", "user.\xe9", "!user.x", ".com!user.x",
		string(make([]byte, 491))}
	for _, n := range good {
		if err := CheckName("mailbox", n); err != nil {
			t.Errorf("CheckName(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if err := CheckName("mailbox", n); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("CheckName(%q) = %v, want ErrUnsafeName", n, err)
		}
	}
}

func TestCheckOthers(t *testing.T) {
	tests := []struct {
		fn   func(string) error
		good []string
		bad  []string
	}{
		{CheckUserID, []string{"alice", "bob@example.com", "anyone"}, []string{"", ".hidden", "a/b", "a\x00", "a\nb"}},
		{CheckUniqueID, []string{"6czsctw5vujqggbj06eud7mh", "0f1e2d3c-aaaa-bbbb-cccc-0123456789ab"}, []string{"", "x", "../x", "a/b", "a.b"}},
		{CheckPartition, []string{"default", "p2"}, []string{"", "a b", "../x", "a/b", "(x)"}},
		{CheckEntry, []string{"/comment", "/vendor/cmu/cyrus-imapd/savedate"}, []string{"", "comment", "/a//b", "/a/", "/a*"}},
		{CheckFlag, []string{`\Seen`, `\Expunged`, "$Label1", "Junk"}, []string{`\Recent`, "", "NIL", "a b", "a(b"}},
		{CheckACL, []string{"alice\tlrswipkxtecdan\t", "anyone\tlrs\t-bob\tw\t"}, []string{"../x\tlrs\t", "a/b\tlrs\t"}},
	}
	for i, tt := range tests {
		for _, s := range tt.good {
			if err := tt.fn(s); err != nil {
				t.Errorf("check %d: %q = %v", i, s, err)
			}
		}
		for _, s := range tt.bad {
			if err := tt.fn(s); !errors.Is(err, ErrUnsafeName) {
				t.Errorf("check %d: %q = %v, want ErrUnsafeName", i, s, err)
			}
		}
	}
}
