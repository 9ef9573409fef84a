package partition

import (
	"errors"
	"fmt"

	"github.com/mbtool/mbtool/dlist"
)

// parseEntry decodes the value of an N record of mailboxes.db
// (imap/mboxlist.c mboxlist_parse_entry): a dlist kvlist
// %(T type I uniqueid P partition [S server] [V uidvalidity]
// [C createdmodseq] [F foldermodseq] M mtime [A %(id rights ...)]),
// parsed with Cyrus's SAX rules. dbname is the key without its "N".
func parseEntry(dbname, v []byte) (Entry, error) {
	e := Entry{Name: dbnameToName(string(dbname))}
	if len(v) == 0 {
		return e, fmt.Errorf("%w: empty value", ErrBadFormat)
	}
	if v[0] != '%' {
		// Cyrus 3.x converts the pre-3.0 text format when it upgrades
		// mailboxes.db; a 3.6 database never holds it.
		return e, fmt.Errorf("%w: pre-3.0 mailboxes.db entry", ErrBadFormat)
	}
	// The tree is parsed into reused memory (dlist.WithSAX): every
	// field kept is copied out of it.
	err := dlist.WithSAX(v, func(root *dlist.Value) error {
		if root.Kind != dlist.KVList {
			return fmt.Errorf("%w: value is a %s, not a kvlist", ErrBadFormat, root.Kind)
		}
		for _, c := range root.Children {
			var err error
			switch c.Key {
			case "T":
				e.Type, err = c.Atom()
			case "I":
				e.UniqueID, err = c.Atom()
			case "P":
				e.Partition, err = c.Atom()
			case "S":
				e.Server, err = c.Atom()
			case "V":
				e.UIDValidity, err = c.Num32()
			case "C":
				e.CreatedModseq, err = c.Num64()
			case "F":
				e.FolderModseq, err = c.Num64()
			case "M":
				var n uint64
				n, err = c.Num64()
				e.MTime = int64(n)
			case "A":
				e.ACL, err = parseACLList(c)
			}
			if err != nil {
				return fmt.Errorf("%w: key %s: %w", ErrBadFormat, c.Key, err)
			}
		}
		return nil
	})
	return e, badFormat(err)
}

// badFormat marks err, from dlist.WithSAX, with ErrBadFormat: the
// parser's errors are not, while every callback here returns one that
// already is.
func badFormat(err error) error {
	if err == nil || errors.Is(err, ErrBadFormat) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrBadFormat, err)
}

// parseACLList converts the A kvlist %(id rights ...) of a header or
// mailboxes.db entry.
func parseACLList(v *dlist.Value) ([]ACLEntry, error) {
	if v.Kind != dlist.KVList {
		return nil, fmt.Errorf("ACL is a %s, not a kvlist", v.Kind)
	}
	acl := make([]ACLEntry, 0, len(v.Children))
	for _, c := range v.Children {
		rights, err := c.Atom()
		if err != nil {
			return nil, fmt.Errorf("rights of %s: %w", c.Key, err)
		}
		acl = append(acl, ACLEntry{ID: c.Key, Rights: rights})
	}
	return acl, nil
}

// parseHeaderDlist decodes the dlist line of a 3.x cyrus.header
// (imap/mailbox.c _parse_header_data): %(T type N name I uniqueid
// [Q quotaroot] [A %(id rights ...)] [U (flag ...)]), where a NIL flag is
// an unused slot.
func parseHeaderDlist(line []byte, h *Header) error {
	// The tree is parsed into reused memory (dlist.WithSAX): every
	// field kept is copied out of it.
	err := dlist.WithSAX(line, func(root *dlist.Value) error {
		if root.Kind != dlist.KVList {
			return fmt.Errorf("%w: header line is a %s, not a kvlist", ErrBadFormat, root.Kind)
		}
		for _, c := range root.Children {
			var err error
			switch c.Key {
			case "T":
				h.Type, err = c.Atom()
			case "N":
				h.Name, err = c.Atom()
			case "I":
				h.UniqueID, err = c.Atom()
			case "Q":
				h.QuotaRoot, err = c.Atom()
			case "A":
				h.ACL, err = parseACLList(c)
			case "U":
				if c.Kind != dlist.List {
					err = fmt.Errorf("a %s, not a list", c.Kind)
					break
				}
				if len(c.Children) > maxUserFlags {
					err = fmt.Errorf("%d user flags, at most %d", len(c.Children), maxUserFlags)
					break
				}
				h.UserFlags = make([]string, 0, len(c.Children))
				for _, f := range c.Children {
					name, ferr := f.Atom()
					if ferr != nil {
						err = ferr
						break
					}
					h.UserFlags = append(h.UserFlags, name)
				}
				h.UserFlags = trimFlags(h.UserFlags)
			}
			if err != nil {
				return fmt.Errorf("%w: header key %s: %w", ErrBadFormat, c.Key, err)
			}
		}
		return nil
	})
	return badFormat(err)
}
