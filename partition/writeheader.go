package partition

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/mbtool/mbtool/dlist"
)

// printValue prints one dlist value the way Cyrus's dlist_printbuf does
// for the values it stores (cyrus.header, mailboxes.db, quota): build
// writes it through w as the value of a throw-away line, whose verb, name
// and CRLF are then cut off. The returned bytes are the caller's.
//
// A restore prints three values per mailbox, and a dlist.Writer holds a
// 68 KiB buffer: the printers are pooled, so a run of 20,000 mailboxes
// does not allocate and clear 4 GiB for values of a few hundred bytes.
func printValue(build func(w *dlist.Writer)) ([]byte, error) {
	p, _ := printers.Get().(*printer)
	if p == nil {
		p = &printer{}
		p.w = dlist.NewWriter(&p.buf)
	}
	p.buf.Reset()
	w := p.w
	w.BeginLine("X", "X")
	build(w)
	if err := w.EndLine(); err != nil {
		return nil, err // the Writer's error is sticky: not pooled again
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	b := bytes.Clone(bytes.TrimSuffix(p.buf.Bytes()[len("X X "):], []byte("\r\n")))
	printers.Put(p)
	return b, nil
}

// printer is a dlist.Writer printing into buf, between two values
// (after a whole line and a Flush, the Writer holds nothing).
type printer struct {
	buf bytes.Buffer
	w   *dlist.Writer
}

var printers sync.Pool

// writeACL writes the A key: %(id rights ...), empty for an empty ACL
// (imap/mailbox.c mailbox_acl_to_dlist).
func writeACL(w *dlist.Writer, acl []ACLEntry) {
	w.Key("A")
	w.BeginKVList()
	for _, a := range acl {
		w.Key(a.ID)
		w.Atom(a.Rights)
	}
	w.EndList()
}

// EncodeHeader returns the bytes of a cyrus.header file as Cyrus 3.6 writes
// it (imap/mailbox.c mailbox_commit_header): the magic, then one dlist line
// %(T type N name I uniqueid [Q quotaroot] A %(acl) [U (flags)]) and a LF.
// A "" slot in UserFlags is written as NIL; trailing ones are dropped. h.Old
// and h.FileCRC are ignored; the CRC of the result is what the index
// header's HeaderFileCRC must hold.
func EncodeHeader(h Header) ([]byte, error) {
	if h.Type == "" || h.Name == "" || h.UniqueID == "" {
		return nil, fmt.Errorf("cyrus.header of %q: type, name and uniqueid are required", h.Name)
	}
	flags := trimFlags(h.UserFlags)
	if len(flags) > maxUserFlags {
		return nil, fmt.Errorf("cyrus.header of %s: %d user flags, at most %d", h.Name, len(flags), maxUserFlags)
	}
	line, err := printValue(func(w *dlist.Writer) {
		w.BeginKVList()
		w.Key("T")
		w.Atom(h.Type)
		w.Key("N")
		w.Atom(h.Name)
		w.Key("I")
		w.Atom(h.UniqueID)
		if h.QuotaRoot != "" {
			w.Key("Q")
			w.Atom(h.QuotaRoot)
		}
		writeACL(w, h.ACL)
		if len(flags) > 0 {
			w.Key("U")
			w.BeginList()
			for _, f := range flags {
				if f == "" {
					w.Nil()
				} else {
					w.Atom(f)
				}
			}
			w.EndList()
		}
		w.EndList()
	})
	if err != nil {
		return nil, fmt.Errorf("cyrus.header of %s: %w", h.Name, err)
	}
	b := make([]byte, 0, len(HeaderMagic)+len(line)+1)
	b = append(b, HeaderMagic...)
	b = append(b, line...)
	return append(b, '\n'), nil
}
