package dlist

import "strconv"

// appendAString appends s by Cyrus 3.6's astring rules (prot_printastring
// and, for BUF values, dlist_print):
//   - empty: ""
//   - an atom (imparse_isatom: 1 to 1023 bytes, none of 0x00-0x1e, 0x7f,
//     8-bit, SP { ( ) " % * \) other than NIL: bare
//   - else, fewer than 1024 bytes and none 8-bit, CR, LF, " % \: quoted,
//     without escapes (prot_printstring)
//   - else a literal, {n+} or, when sync, {n}.
//
// Cyrus's strings cannot hold NUL; one that does is printed as a literal,
// as Cyrus prints a BUF holding NUL.
func appendAString[T ~string | ~[]byte](dst []byte, s T, sync bool) []byte {
	n := len(s)
	if n == 0 {
		return append(dst, '"', '"')
	}
	if n < 1024 {
		atom, quote := true, true
		for i := 0; i < n; i++ {
			c := s[i]
			atom = atom && bareAtom[c]
			if !quotable[c] {
				quote = false
				break
			}
		}
		if atom && !(n == 3 && s[0] == 'N' && s[1] == 'I' && s[2] == 'L') {
			return append(dst, s...)
		}
		if quote {
			dst = append(dst, '"')
			dst = append(dst, s...)
			return append(dst, '"')
		}
	}
	dst = append(dst, '{')
	dst = strconv.AppendInt(dst, int64(n), 10)
	if !sync {
		dst = append(dst, '+')
	}
	dst = append(dst, '}', '\r', '\n')
	return append(dst, s...)
}

// validVerb reports whether s can be printed as a line's verb: 1 or more
// bytes, none of them an atom terminator or NUL.
func validVerb(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if atomStop[s[i]] {
			return false
		}
	}
	return true
}

// validKey reports whether s can be a name: anything without NUL (Cyrus
// refuses NUL in a key, even in a literal).
func validKey(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

// validFlag reports whether s, printed verbatim, parses back as a Flag or
// Atom of the same text.
func validFlag(s string) bool {
	if !validVerb(s) || s == "NIL" || s[0] == '{' || s[0] == '%' {
		return false
	}
	return true
}

// validText reports whether s can be a status line's text.
func validText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' || s[i] == 0 {
			return false
		}
	}
	return true
}
