package restore

import (
	"bytes"
	"net/mail"
	"strings"
	"time"
)

// msgInfo is what Cyrus derives from a message file's header for its
// index record (imap/message.c message_create_record): the size of the
// header including the blank line, and the Date: header as a UTC time
// (gmtime) and as that calendar day at midnight in the server's time zone
// (sentdate). A dump does not carry them. Cyrus recomputes all three when
// it repacks the restored mailbox (its cache is rebuilt then, because the
// restored index has none); these values serve until that happens.
type msgInfo struct {
	headerSize       uint32
	gmtime, sentdate uint32
}

// maxLine bounds how much of one header line is kept for inspection;
// longer lines are counted but not kept.
const maxLine = 1000

// headerScanner finds a message's header size and Date: header while the
// message streams through it as an io.Writer. Memory is bounded whatever
// the input.
type headerScanner struct {
	n      int64 // bytes seen
	done   bool  // the blank line ending the header was seen
	hsize  int64
	line   []byte // the current line, up to maxLine bytes
	date   []byte // the Date: value, unfolded, up to maxLine bytes
	inDate bool   // the last header line was Date:
}

// Write implements io.Writer; it never fails.
func (s *headerScanner) Write(p []byte) (int, error) {
	if s.done {
		s.n += int64(len(p))
		return len(p), nil
	}
	for i, c := range p {
		if len(s.line) < maxLine {
			s.line = append(s.line, c)
		}
		if c != '\n' {
			continue
		}
		if l := s.line; len(l) == 1 || len(l) == 2 && l[0] == '\r' {
			s.done = true
			s.hsize = s.n + int64(i) + 1
			s.n += int64(len(p))
			return len(p), nil
		}
		s.headerLine(bytes.TrimRight(s.line, "\r\n"))
		s.line = s.line[:0]
	}
	s.n += int64(len(p))
	return len(p), nil
}

func (s *headerScanner) headerLine(l []byte) {
	if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
		if s.inDate && len(s.date)+len(l) <= maxLine {
			s.date = append(s.date, l...)
		}
		return
	}
	s.inDate = len(l) >= 5 && strings.EqualFold(string(l[:5]), "date:")
	if s.inDate && len(s.date) == 0 { // the first Date: header counts
		s.date = append(s.date, l[5:]...)
	} else if s.inDate {
		s.inDate = false
	}
}

// info returns the result once the whole message has been written.
func (s *headerScanner) info() msgInfo {
	var mi msgInfo
	hs := s.hsize
	if !s.done {
		hs = s.n // no blank line: all header
	}
	mi.headerSize = uint32(min(hs, 1<<32-1))
	t, err := mail.ParseDate(strings.TrimSpace(string(s.date)))
	if err != nil || t.Unix() < 0 || t.Unix() >= 1<<32 {
		return mi
	}
	mi.gmtime = uint32(t.Unix())
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.Local).Unix()
	if day >= 0 && day < 1<<32 {
		mi.sentdate = uint32(day)
	}
	return mi
}
