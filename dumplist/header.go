package dumplist

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/msghdr"
)

// Header is what a message file's header says, for a listing: the
// values of From, Subject (RFC 2047 encoded words decoded) and
// Message-ID, unfolded, each at most maxField bytes.
type Header struct {
	From, Subject, MessageID string
}

const (
	// maxHead bounds the bytes of a message file read for its header: a
	// header longer than that is listed with the fields found in it.
	maxHead = 64 << 10
	// headChunk is how much is read at a time until the header's end.
	headChunk = 4 << 10
	// maxField bounds a field's value as kept (RFC 5322's line limit).
	maxField = 998
)

// parseHeader finds From, Subject and Message-ID in the header at the
// start of b (which ends at the first empty line, or at the end of b),
// read by msghdr. The first of each counts.
func parseHeader(b []byte) Header {
	f := msghdr.Fields(b, "from", "subject", "message-id")
	return Header{From: decodeWords(f[0]), Subject: decodeWords(f[1]), MessageID: clean(f[2])}
}

var wordDecoder = mime.WordDecoder{}

// decodeWords decodes RFC 2047 encoded words; a value it cannot decode (a
// charset Go does not know) is kept as it is.
func decodeWords(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	return clean(s)
}

// clean makes a value safe to print on a terminal and bounds it: control
// characters become spaces, invalid UTF-8 is replaced.
func clean(s string) string {
	if len(s) > maxField {
		s = s[:maxField]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return ' '
		}
		return r
	}, s)
}

// headerStore keeps the Header of every message file read, by GUID: the
// headers in an unlinked temporary file, their offsets in a
// guidtable.Table. It also holds the records put aside until the end.
type headerStore struct {
	tab          *guidtable.Table
	f            *os.File
	pending      []byte // the last headers, not yet written to f
	size, synced int64  // bytes stored, and written to f (pending starts there)
	rbuf         []byte
	aside        *os.File
	aw           *bufio.Writer
	nAside       int64
	err          error
}

const (
	slotSize   = 12      // offset uint64, length uint32
	pendingMax = 1 << 20 // the headers kept in memory before they go to the file
)

func newHeaderStore() *headerStore {
	return &headerStore{tab: guidtable.New(guidtable.Options{ValueSize: slotSize})}
}

func (h *headerStore) close() {
	h.tab.Close()
	if h.f != nil {
		h.f.Close()
	}
	if h.aside != nil {
		h.aside.Close()
	}
}

func tempFile(what string) (*os.File, error) {
	f, err := os.CreateTemp("", "mbtool-list-*")
	if err != nil {
		return nil, fmt.Errorf("temporary file for %s: %w", what, err)
	}
	os.Remove(f.Name())
	return f, nil
}

// add reads the header of a message file from body (at most maxHead
// bytes; the rest is left for the dump reader to skip) and stores it,
// unless the GUID is known already.
func (h *headerStore) add(g guid.GUID, body io.Reader, buf *[]byte) error {
	if h.err != nil {
		return h.err
	}
	if cap(*buf) < maxHead {
		*buf = make([]byte, maxHead)
	}
	// Read up to the end of the header only: most are a few KiB, and
	// the dump reader skips the rest of the file without copying it.
	b := (*buf)[:maxHead]
	n := 0
	for n < len(b) {
		k, err := body.Read(b[n:min(n+headChunk, len(b))])
		// Look from just before the new bytes for an empty line.
		if msghdr.Ended(b[:n+k], max(n-3, 0)) {
			n += k
			break
		}
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	hd := parseHeader(b[:n])
	if h.f == nil {
		var err error
		if h.f, err = tempFile("message headers"); err != nil {
			return err
		}
	}
	rec := encodeHeader(h.rbuf[:0], &hd)
	h.rbuf = rec
	var slot [slotSize]byte
	binary.LittleEndian.PutUint64(slot[:8], uint64(h.size))
	binary.LittleEndian.PutUint32(slot[8:], uint32(len(rec)))
	if added, err := h.tab.Add(g, slot[:]); err != nil || !added {
		return err // a second copy of a file: the first one's header stays
	}
	if len(h.pending)+len(rec) > pendingMax {
		if _, err := h.f.Write(h.pending); err != nil {
			h.err = fmt.Errorf("temporary file for message headers: %w", err)
			return h.err
		}
		h.synced += int64(len(h.pending))
		h.pending = h.pending[:0]
	}
	h.pending = append(h.pending, rec...)
	h.size += int64(len(rec))
	return nil
}

// get finds the header of g's file; false if the dump held no such file
// so far.
func (h *headerStore) get(g guid.GUID, hd *Header) (bool, error) {
	var slot [slotSize]byte
	ok, err := h.tab.Get(g, slot[:])
	if err != nil || !ok {
		return false, err
	}
	off := int64(binary.LittleEndian.Uint64(slot[:8]))
	n := int(binary.LittleEndian.Uint32(slot[8:]))
	var b []byte
	if off >= h.synced {
		// Still in memory: a mailbox's records mostly follow their files.
		b = h.pending[off-h.synced : off-h.synced+int64(n)]
	} else {
		if cap(h.rbuf) < n {
			h.rbuf = make([]byte, n)
		}
		b = h.rbuf[:n]
		if _, err := h.f.ReadAt(b, off); err != nil {
			return false, fmt.Errorf("reading back message headers: %w", err)
		}
	}
	if err := decodeHeader(b, hd); err != nil {
		return false, fmt.Errorf("reading back message headers: %w", err)
	}
	return true, nil
}

func encodeHeader(b []byte, hd *Header) []byte {
	for _, s := range []string{hd.From, hd.Subject, hd.MessageID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeHeader(b []byte, hd *Header) error {
	for _, p := range []*string{&hd.From, &hd.Subject, &hd.MessageID} {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return fmt.Errorf("malformed record")
		}
		*p = string(b[k : k+int(n)])
		b = b[k+int(n):]
		if !utf8.ValidString(*p) {
			*p = strings.ToValidUTF8(*p, "\uFFFD")
		}
	}
	return nil
}

// putAside keeps a record whose file has not been seen yet.
func (h *headerStore) putAside(msg *Message) error {
	if h.aside == nil {
		f, err := tempFile("records")
		if err != nil {
			return err
		}
		h.aside, h.aw = f, bufio.NewWriterSize(f, 64<<10)
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := h.aw.Write(b); err != nil {
		return fmt.Errorf("temporary file for records: %w", err)
	}
	h.nAside++
	return nil
}

// eachAside calls fn with each record put aside, in order.
func (h *headerStore) eachAside(fn func(*Message) error) error {
	if h.aside == nil {
		return nil
	}
	if err := h.aw.Flush(); err != nil {
		return fmt.Errorf("temporary file for records: %w", err)
	}
	if _, err := h.aside.Seek(0, io.SeekStart); err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(h.aside, 64<<10))
	for i := int64(0); i < h.nAside; i++ {
		var msg Message
		if err := dec.Decode(&msg); err != nil {
			return fmt.Errorf("reading back records: %w", err)
		}
		if err := fn(&msg); err != nil {
			return err
		}
	}
	return nil
}
