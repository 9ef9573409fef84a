package restore

import (
	"strings"
	"time"
)

// msgInfo is what Cyrus derives from a message file's header for its
// index record (imap/message.c message_create_record): the size of the
// header including the blank line, and the Date: header as a UTC time
// (gmtime) and as that calendar day at midnight in the server's time zone
// (sentdate); 0 when the Date: header is missing or Cyrus's parser
// refuses it. A dump does not carry them. A record gets them through
// recordDates, which puts in the INTERNALDATE where they are 0, as Cyrus
// does when it appends or reconstructs a record.
type msgInfo struct {
	headerSize       uint32
	gmtime, sentdate uint32
}

// recordDates returns the gmtime and sentdate of a record with
// INTERNALDATE internaldate whose message file has mi: where the Date:
// header gave 0, Cyrus uses the INTERNALDATE, and for sentdate that day at
// midnight in the server's time zone (imap/mailbox.c
// mailbox_append_index_record and mailbox_reconstruct_compare_update).
func (mi msgInfo) recordDates(internaldate uint32) (gmtime, sentdate uint32) {
	gmtime, sentdate = mi.gmtime, mi.sentdate
	if gmtime == 0 {
		gmtime = internaldate
	}
	if sentdate == 0 {
		t := time.Unix(int64(internaldate), 0).In(time.Local)
		sentdate = uint32(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.Local).Unix())
	}
	return gmtime, sentdate
}

// maxDate bounds how much of the Date: header's value is kept; Cyrus's
// parser reads at most a few tokens of 32 characters, so nothing past
// this can change its result.
const maxDate = 1000

// maxHeaderLines is Cyrus's default maxheaderlines: header lines after
// the 1000th are not looked at (imap/message.c message_parse_headers).
const maxHeaderLines = 1000

// headerScanner finds a message's header size and Date: header while the
// message streams through it as an io.Writer, as imap/message.c
// message_parse_headers does: the header ends with the first line that
// begins with CR LF (a line of a bare LF does not end it), and the last
// Date: header among the first maxheaderlines lines counts, unfolded
// (message_parse_string). Memory is bounded whatever the input.
type headerScanner struct {
	n     int64 // bytes seen
	done  bool  // the line ending the header was seen
	hsize int64
	lines int  // header lines begun so far
	bol   bool // at the beginning of a line
	state int  // where in the current line: stName, ...
	name  int  // bytes of "date" matched in the current line's name
	date  []byte
	// inDate: the current or last header line is a Date: header, so a
	// continuation line belongs to its value.
	inDate bool
	cr     bool // the last byte kept of the value is a CR
	seen   bool // a Date: header was seen
	nul    bool // a NUL byte ended the header text Cyrus looks at
}

const (
	stName  = iota // in a header name
	stValue        // in a Date: value
	stOther        // in the rest of any other line
	stCR           // after a CR that begins a line
)

// Write implements io.Writer; it never fails.
func (s *headerScanner) Write(p []byte) (int, error) {
	if s.done {
		s.n += int64(len(p))
		return len(p), nil
	}
	if s.n == 0 && len(p) > 0 {
		s.startLine()
	}
	for i, c := range p {
		if c == 0 && !s.nul {
			// Cyrus keeps the header as a C string: from a NUL on it
			// sees nothing more of it, and its size ends there. (Cyrus
			// refuses to append a message with a NUL; a replica may
			// still have one.)
			s.nul = true
			s.hsize = s.n + int64(i)
		}
		if s.state == stCR {
			if c == '\n' { // a line that begins with CR LF ends the header
				s.done = true
				if !s.nul {
					s.hsize = s.n + int64(i) + 1
				}
				s.n += int64(len(p))
				return len(p), nil
			}
			s.state = stName
			s.byte('\r')
		}
		if s.bol && c == '\r' {
			s.bol = false
			s.state = stCR
			continue
		}
		s.bol = false
		s.byte(c)
		if c == '\n' {
			s.startLine()
		}
	}
	s.n += int64(len(p))
	return len(p), nil
}

// startLine begins a header line.
func (s *headerScanner) startLine() {
	s.bol = true
	s.lines++
	s.state = stName
	s.name = 0
}

// byte takes one byte of a header line that does not begin with CR LF.
func (s *headerScanner) byte(c byte) {
	if s.nul {
		return
	}
	switch s.state {
	case stName:
		if s.name == 0 && (c == ' ' || c == '\t') {
			// A continuation line: part of the Date: value being read.
			s.state = stOther
			if s.inDate {
				s.state = stValue
				s.value(c)
			}
			return
		}
		s.inDate = false
		switch {
		case s.lines > maxHeaderLines+1:
			// message_parse_headers looks at no header line after
			// maxheaderlines (its count starts at 0 for line 1).
			s.state = stOther
		case c == ':' && s.name == 4:
			// A later Date: header replaces an earlier one
			// (message_parse_string discards the earlier value).
			s.inDate, s.seen, s.cr = true, true, false
			s.date = s.date[:0]
			s.state = stValue
		case s.name < 4 && c|0x20 == "date"[s.name]:
			s.name++
		default:
			s.state = stOther
		}
	case stValue:
		s.value(c)
	}
}

// value takes one byte of a Date: value. The line breaks of folding (CR
// LF or a bare LF) are removed, and so is the CR LF ending the value.
func (s *headerScanner) value(c byte) {
	if c == '\n' {
		if s.cr {
			s.date = s.date[:len(s.date)-1]
		}
		s.cr = false
		return
	}
	s.cr = false
	if len(s.date) < maxDate {
		s.date = append(s.date, c)
		s.cr = c == '\r'
	}
}

// info returns the result once the whole message has been written.
func (s *headerScanner) info() msgInfo {
	var mi msgInfo
	hs := s.hsize
	if !s.done && !s.nul {
		hs = s.n // no line ends the header: all header
	}
	mi.headerSize = uint32(min(hs, 1<<32-1))
	if !s.seen {
		return mi
	}
	v := strings.TrimLeft(string(s.date), " \t") // as message_parse_string
	if t, ok := timeFromRFC5322(v, true); ok {
		mi.sentdate = uint32(t)
	}
	if t, ok := timeFromRFC5322(v, false); ok {
		mi.gmtime = uint32(t)
	}
	return mi
}
