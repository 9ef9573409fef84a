package dlist

import (
	"errors"
	"testing"
)

func TestAccessors(t *testing.T) {
	parse := func(s string) *Value {
		v, err := ParseValue([]byte(s))
		if err != nil {
			t.Fatalf("ParseValue(%q): %v", s, err)
		}
		return v
	}
	type res struct {
		n   uint64
		err error
	}
	tests := []struct {
		in    string
		num64 res
		num32 res
		hex   res
	}{
		{"0", res{0, nil}, res{0, nil}, res{0, nil}},
		{"123", res{123, nil}, res{123, nil}, res{0x123, nil}},
		{"{3+}\r\n123", res{123, nil}, res{123, nil}, res{0x123, nil}},
		{`"42"`, res{42, nil}, res{42, nil}, res{0x42, nil}},
		{"18446744073709551615", res{1<<64 - 1, nil}, res{1<<32 - 1, nil}, res{0, ErrRange}},
		{"18446744073709551616", res{0, ErrRange}, res{0, ErrRange}, res{0, ErrRange}},
		{"4294967296", res{1 << 32, nil}, res{0, nil}, res{0x4294967296, nil}},
		{"4294967297", res{1<<32 + 1, nil}, res{1, nil}, res{0x4294967297, nil}},
		{"01f88ca2f0f26257", res{0, ErrType}, res{0, ErrType}, res{0x01f88ca2f0f26257, nil}},
		{"ABCDEF", res{0, ErrType}, res{0, ErrType}, res{0xabcdef, nil}},
		{"12x", res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
		{"-1", res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
		{"+1", res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
		{`""`, res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
		{`" 1"`, res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
		{"NIL", res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
		{`\1`, res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
		{"(1)", res{0, ErrType}, res{0, ErrType}, res{0, ErrType}},
	}
	for _, tt := range tests {
		v := parse(tt.in)
		n, err := v.Num64()
		if n != tt.num64.n || !errors.Is(err, tt.num64.err) || (tt.num64.err == nil) != (err == nil) {
			t.Errorf("%q.Num64() = %d, %v; want %d, %v", tt.in, n, err, tt.num64.n, tt.num64.err)
		}
		n32, err := v.Num32()
		if uint64(n32) != tt.num32.n || !errors.Is(err, tt.num32.err) || (tt.num32.err == nil) != (err == nil) {
			t.Errorf("%q.Num32() = %d, %v; want %d, %v", tt.in, n32, err, tt.num32.n, tt.num32.err)
		}
		if tt.num64.err == nil {
			if d, err := v.Date(); err != nil || uint64(d) != tt.num64.n {
				t.Errorf("%q.Date() = %d, %v", tt.in, d, err)
			}
		}
		h, err := v.Hex64()
		if (tt.hex.err == nil && (err != nil || h != tt.hex.n)) || !errors.Is(err, tt.hex.err) {
			t.Errorf("%q.Hex64() = %x, %v; want %x, %v", tt.in, h, err, tt.hex.n, tt.hex.err)
		}
	}

	// GUID
	g, err := parse("0A0A9F2A6772942557AB5355D76AF442F8F65E01").GUID()
	if err != nil || g.String() != "0a0a9f2a6772942557ab5355d76af442f8f65e01" {
		t.Errorf("GUID = %v, %v", g, err)
	}
	for _, s := range []string{"0a0a", "0a0a9f2a6772942557ab5355d76af442f8f65e0x", "NIL", "()"} {
		if _, err := parse(s).GUID(); !errors.Is(err, ErrType) {
			t.Errorf("%q.GUID(): %v", s, err)
		}
	}

	// Missing values: Get on an absent key gives nil, whose accessors
	// report ErrMissing (and ErrType).
	kv := parse("%(SIZE 12x UID 7 FLAGS () N NIL)")
	var missing *Value = kv.Get("NOPE")
	if missing != nil || kv.Get("NOPE").Get("X") != nil {
		t.Fatal("Get of an absent key is not nil")
	}
	if _, err := missing.Num64(); !errors.Is(err, ErrMissing) || !errors.Is(err, ErrType) || err.Error() != "dlist: number: dlist: missing value (dlist: wrong type)" {
		t.Errorf("missing.Num64() = %v", err)
	}
	if missing.IsNil() || !kv.Get("N").IsNil() || missing.String() != "" {
		t.Error("IsNil/String on missing or NIL")
	}
	if _, err := kv.Get("SIZE").Num32(); err == nil || err.Error() != `dlist: number SIZE "12x": not a decimal number: dlist: wrong type` {
		t.Errorf("SIZE.Num32() = %v", err)
	}
	if _, err := kv.Get("FLAGS").Num64(); err == nil || err.Error() != `dlist: number FLAGS: is a list: dlist: wrong type` {
		t.Errorf("FLAGS.Num64() = %v", err)
	}
	if uid, err := kv.Get("UID").Num32(); err != nil || uid != 7 {
		t.Errorf("UID = %d, %v", uid, err)
	}

	// Atom follows dlist_getatom.
	for _, tt := range []struct {
		in, want string
		err      error
	}{
		{"abc", "abc", nil},
		{`\Seen`, `\Seen`, nil},
		{"NIL", "", nil},
		{"{2+}\r\nab", "ab", nil},
		{"{2+}\r\na\x00", "", ErrType},
		{"()", "", ErrType},
	} {
		s, err := parse(tt.in).Atom()
		if s != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("%q.Atom() = %q, %v", tt.in, s, err)
		}
	}
	if parse("(a)").String() != "" || parse("{2+}\r\na\x00").String() != "a\x00" {
		t.Error("String of a list or a literal")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Atom: "atom", KVList: "kvlist", EOL: "eol", Text: "text", 0: "kind(0)", 200: "kind(200)"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}

func TestParseValue(t *testing.T) {
	for _, tt := range []struct{ in, err string }{
		{"%(S (2014216 512000) M (54))", ""},
		{"%(S 1)\n", "dlist: line 1, offset 6: end of value: 1 bytes after the value"},
		{" a", "dlist: line 1, offset 0: value: want a value, got SP"},
		{"", "dlist: line 1, offset 0: value: unexpected end of input at offset 0"},
		{"a b", "dlist: line 1, offset 1: end of value: 2 bytes after the value"},
	} {
		_, err := ParseValue([]byte(tt.in))
		if (err == nil && tt.err != "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("ParseValue(%q) = %v, want %q", tt.in, err, tt.err)
		}
	}
}
