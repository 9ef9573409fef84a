package partition

import (
	"bytes"
	"fmt"
	"hash/crc32"
)

// HeaderMagic starts every cyrus.header (imap/mailbox.h MAILBOX_HEADER_MAGIC).
const HeaderMagic = "\241\002\213\015Cyrus mailbox header\n" +
	"\"The best thing about this system was that it had lots of goals.\"\n" +
	"\t--Jim Morris on Andrew\n"

// maxUserFlags is the number of user flag slots (MAX_USER_FLAGS).
const maxUserFlags = 128

// Header is the content of a cyrus.header file.
type Header struct {
	// Type is the mbtype letters (T); empty in the old format.
	Type string
	// Name is the internal mailbox name (N); empty in the old format.
	Name      string
	UniqueID  string
	QuotaRoot string
	ACL       []ACLEntry
	// UserFlags holds the user flag names by slot; "" marks an unused
	// slot. Trailing unused slots are dropped.
	UserFlags []string
	// Old reports the pre-3.0 three-line format.
	Old bool
	// FileCRC is the CRC-32 of the whole file, which the index header
	// keeps as HeaderFileCRC (a mismatch only makes Cyrus log a warning).
	FileCRC uint32
}

// ParseHeader parses a whole cyrus.header file, in the dlist form Cyrus
// 3.x writes or the old form it still reads (imap/mailbox.c
// mailbox_read_header).
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if !bytes.HasPrefix(b, []byte(HeaderMagic)) {
		return h, fmt.Errorf("%w: no cyrus.header magic", ErrBadFormat)
	}
	h.FileCRC = crc32.ChecksumIEEE(b)
	p := b[len(HeaderMagic):]
	eol := bytes.IndexByte(p, '\n')
	if eol < 0 {
		return h, fmt.Errorf("%w: header line %d not terminated", ErrBadFormat, 4)
	}
	if len(p) > 0 && p[0] == '%' {
		if err := parseHeaderDlist(p[:eol], &h); err != nil {
			return h, err
		}
		h.FileCRC = crc32.ChecksumIEEE(b)
		return h, nil
	}
	h.Old = true
	line := p[:eol]
	if i := bytes.IndexByte(line, '\t'); i >= 0 {
		h.QuotaRoot = string(line[:i])
		id := line[i+1:]
		if len(id) == 0 {
			return h, fmt.Errorf("%w: empty uniqueid", ErrBadFormat)
		}
		if j := bytes.IndexByte(id, '\t'); j >= 0 {
			id = id[:j]
		}
		h.UniqueID = string(id)
	} else {
		// Ancient header without a uniqueid: Cyrus logs "needs
		// reconstruct" and carries on.
		h.QuotaRoot = string(line)
	}
	p = p[eol+1:]
	eol = bytes.IndexByte(p, '\n')
	if eol < 0 {
		return h, fmt.Errorf("%w: header line %d not terminated", ErrBadFormat, 5)
	}
	for i, name := range bytes.Split(p[:eol], []byte{' '}) {
		if i >= maxUserFlags {
			break
		}
		h.UserFlags = append(h.UserFlags, string(name))
	}
	h.UserFlags = trimFlags(h.UserFlags)
	p = p[eol+1:]
	eol = bytes.IndexByte(p, '\n')
	if eol < 0 {
		return h, fmt.Errorf("%w: header line %d not terminated", ErrBadFormat, 6)
	}
	h.ACL = ParseACL(string(p[:eol]))
	return h, nil
}

// trimFlags drops trailing empty slots.
func trimFlags(f []string) []string {
	for len(f) > 0 && f[len(f)-1] == "" {
		f = f[:len(f)-1]
	}
	if len(f) == 0 {
		return nil
	}
	return f
}
