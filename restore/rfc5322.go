package restore

import "time"

// timeFromRFC5322 is Cyrus 3.6's time_from_rfc5322 (lib/times.c), the
// parser behind a record's sentdate (dateOnly: the date's calendar day at
// midnight in the server's time zone, its time and zone ignored) and
// gmtime (the full date-time in UTC). It is ported token for token rather
// than replaced by a general date parser, because its answers are stored
// in the index and compared by reconstruct: it accepts `1 Jan 2024` for
// the day alone, a weekday only as three letters followed by a comma,
// "." as a time separator, and any zone it does not know as +0000; it
// refuses `Monday, ...`, `1 January 2024`, ISO 8601, and every time before
// 1970. Bytes from 0x80 on end a token (Cyrus's tables are indexed by a
// signed char there, so what it does with them is not defined).
func timeFromRFC5322(s string, dateOnly bool) (int64, bool) {
	b := dtbuf{s: s}
	var tm struct{ year, mon, mday, hour, min, sec int }
	var tz int

	b.skipWS()
	c := b.cur()
	if c == eob {
		return 0, false
	}
	if isAlpha(c) { // a weekday: three letters, whichever, and a comma
		tok, ok := b.token()
		if !ok || len(tok) != 3 {
			return 0, false
		}
		if b.cur() != ',' {
			return 0, false
		}
		b.next()
		b.skipWS()
	}

	// The day of the month: one or two digits.
	tok, ok := b.token()
	if !ok || len(tok) < 1 || len(tok) > 2 || !isDigit(int(tok[0])) {
		return 0, false
	}
	if tm.mday = toInt(tok); tm.mday < 0 {
		return 0, false
	}
	// One separator is skipped, whatever it is, and blanks after it.
	if isSpecial(b.next()) {
		b.skipWS()
	}

	// The month: its three-letter name.
	tok, ok = b.token()
	if !ok || len(tok) != 3 || !isAlpha(int(tok[0])) {
		return 0, false
	}
	tm.mon = -1
	for i, m := range monthNames {
		if upper(tok[0]) == m[0] && lower(tok[1]) == m[1] && lower(tok[2]) == m[2] {
			tm.mon = i
			break
		}
	}
	if tm.mon < 0 {
		return 0, false
	}
	if isSpecial(b.next()) {
		b.skipWS()
	}

	// The year: two digits (70-99 for 1970-1999, else 20xx), or 1900 on.
	tok, ok = b.token()
	if !ok {
		return 0, false
	}
	if tm.year = toInt(tok); tm.year < 0 {
		return 0, false
	}
	if len(tok) == 2 {
		if tm.year < 70 {
			tm.year += 100
		}
	} else {
		if tm.year < 1900 {
			return 0, false
		}
		tm.year -= 1900
	}

	if !dateOnly {
		b.skipWS()
		var ok bool
		if tm.hour, ok = b.timeField(); !ok {
			return 0, false
		}
		if c := b.cur(); c != ':' && c != '.' {
			return 0, false
		}
		b.next()
		if tm.min, ok = b.timeField(); !ok {
			return 0, false
		}
		if c := b.cur(); c == ':' || c == '.' {
			b.next()
			if tm.sec, ok = b.timeField(); !ok {
				return 0, false
			}
		}
		b.skipWS()
		sign := b.cur()
		if sign == '+' || sign == '-' {
			b.next()
		}
		if tok, ok := b.token(); ok {
			tz = tzOffset(tok, sign)
		}
	}

	var t int64
	if dateOnly { // mktime: the server's time zone
		t = time.Date(1900+tm.year, time.Month(tm.mon+1), tm.mday, 0, 0, 0, 0, time.Local).Unix()
	} else { // timegm
		t = time.Date(1900+tm.year, time.Month(tm.mon+1), tm.mday, tm.hour, tm.min, tm.sec, 0, time.UTC).Unix()
	}
	if t < 0 {
		return 0, false
	}
	return t - int64(tz)*60, true
}

var monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// eob is Cyrus's EOB: no character at or past the end of the string.
const eob = -1

// dtbuf walks a string as lib/times.c's rfc5322dtbuf does, including its
// quirk that stepping onto the end yields the terminating NUL (0) rather
// than EOB.
type dtbuf struct {
	s   string
	off int
}

func (b *dtbuf) cur() int {
	if b.off < len(b.s) {
		return int(b.s[b.off])
	}
	return eob
}

func (b *dtbuf) next() int {
	if b.off < len(b.s) {
		b.off++
		if b.off < len(b.s) {
			return int(b.s[b.off])
		}
		return 0
	}
	return eob
}

func (b *dtbuf) skipWS() {
	for c := b.cur(); c != eob && isSpecial(c); {
		c = b.next()
	}
}

// maxToken is RFC5322_DATETIME_MAX: a longer token is cut there.
const maxToken = 32

// token reads letters and digits (get_next_token); false only when the
// string has ended before it.
func (b *dtbuf) token() (string, bool) {
	c := b.cur()
	if c == eob {
		return "", false
	}
	start := b.off
	for n := 0; isAlpha(c) || isDigit(c); n++ {
		if n >= maxToken {
			break
		}
		c = b.next()
	}
	return b.s[start:b.off], true
}

// timeField reads an hour, minute or second: one or two digits.
func (b *dtbuf) timeField() (int, bool) {
	tok, ok := b.token()
	if !ok || len(tok) < 1 || len(tok) > 2 || !isDigit(int(tok[0])) {
		return 0, false
	}
	n := toInt(tok)
	return n, n >= 0
}

// tzOffset is compute_tzoffset, in minutes east of UTC, quirks included:
// a single letter is a military zone (computed from the letter as
// written), a three-letter US zone ends in T, four digits without a sign
// or after "-" count west, and anything else is 0.
func tzOffset(tok string, sign int) int {
	switch len(tok) {
	case 1:
		c := int(tok[0])
		switch u := int(upper(tok[0])); {
		case u < 'J':
			return (c - 'A' + 1) * 60
		case u == 'J':
			return 0
		case u <= 'M':
			return (c - 'A') * 60
		case u < 'Z':
			return ('M' - c) * 60
		}
		return 0
	case 3:
		if upper(tok[2]) != 'T' {
			return 0
		}
		const zones = "AECMPYHB"
		i := -1
		for j := 0; j < len(zones); j++ {
			if zones[j] == upper(tok[0]) {
				i = j
				break
			}
		}
		if i < 0 {
			return 0
		}
		off := (len(zones) - i - 12) * 60
		switch upper(tok[1]) {
		case 'D':
			return off + 60
		case 'S':
			return off
		}
		return 0
	case 4:
		for i := 0; i < 4; i++ {
			if !isDigit(int(tok[i])) {
				return 0
			}
		}
		off := (int(tok[0]-'0')*10+int(tok[1]-'0'))*60 + int(tok[2]-'0')*10 + int(tok[3]-'0')
		if sign == '+' {
			return off
		}
		return -off
	}
	return 0
}

// toInt is to_int: the token's digits as a number, or -1 (Cyrus's
// -9999) when it has anything else; "" is 0. Cyrus's int arithmetic is
// kept, wrapping included.
func toInt(tok string) int {
	var n int32
	for i := 0; i < len(tok); i++ {
		if !isDigit(int(tok[i])) {
			return -1
		}
		n = n*10 + int32(tok[i]-'0')
	}
	if n < 0 {
		return -1
	}
	return int(n)
}

func isSpecial(c int) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
func isDigit(c int) bool   { return c >= '0' && c <= '9' }
func isAlpha(c int) bool   { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 32
	}
	return c
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 32
	}
	return c
}
