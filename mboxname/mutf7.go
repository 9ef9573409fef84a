package mboxname

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 §5.1.3), the encoding of mailbox names in
// Cyrus's internal names and on IMAP without UTF8=ACCEPT: printable ASCII
// stands for itself except '&', written "&-"; any other run of characters
// is "&", its UTF-16BE code units in base64 with ',' for '/' and no
// padding, and "-". Cyrus converts UTF-8 names the same way
// (lib/charset.c, charset_utf8_to_mutf7 behind mboxname_from_external).
var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

func direct(r rune) bool { return r >= 0x20 && r <= 0x7e && r != '&' }

// EncodeMUTF7 returns s, UTF-8, in modified UTF-7.
func EncodeMUTF7(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '&':
			b.WriteString("&-")
			i += n
		case direct(r):
			b.WriteRune(r)
			i += n
		default:
			var units []uint16
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if direct(r) || r == '&' {
					break
				}
				units = utf16.AppendRune(units, r)
				i += n
			}
			raw := make([]byte, 2*len(units))
			for k, u := range units {
				raw[2*k], raw[2*k+1] = byte(u>>8), byte(u)
			}
			b.WriteByte('&')
			b.WriteString(b64.EncodeToString(raw))
			b.WriteByte('-')
		}
	}
	return b.String()
}

// DecodeMUTF7 returns s, modified UTF-7, in UTF-8; ok is false when s is
// not valid modified UTF-7 (a byte outside printable ASCII, a '&' not
// closed, base64 that is not UTF-16 or that encodes printable ASCII).
func DecodeMUTF7(s string) (string, bool) {
	if !strings.Contains(s, "&") {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return "", false
			}
		}
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", false
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", false
		}
		enc := s[i+1 : i+1+j]
		i += j + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := b64.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", false
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError || direct(r) || r == '&' {
				return "", false
			}
			b.WriteRune(r)
		}
	}
	return b.String(), true
}

// internalComponent turns one component of a name typed by an operator
// into its internal form: modified UTF-7 ("Entwürfe" -> "Entw&APw-rfe";
// ASCII that already is valid modified UTF-7 is kept as it is) with a '.'
// inside the component written '^'. Wildcards pass through.
func internalComponent(c string) string {
	ascii := true
	for i := 0; i < len(c); i++ {
		if c[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii || !validMUTF7(c) {
		// Encode the runs between wildcards, so that '*' and '%' stay
		// wildcards.
		var b strings.Builder
		for {
			i := strings.IndexAny(c, "*%")
			if i < 0 {
				b.WriteString(EncodeMUTF7(c))
				break
			}
			b.WriteString(EncodeMUTF7(c[:i]))
			b.WriteByte(c[i])
			c = c[i+1:]
		}
		c = b.String()
	}
	return strings.ReplaceAll(c, ".", "^")
}

func validMUTF7(s string) bool {
	_, ok := DecodeMUTF7(s)
	return ok
}
