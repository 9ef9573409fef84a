package partition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/lock"
)

// ownerToken is the userid Cyrus stores for the mailbox owner's private
// annotations (imap/annotate.c OWNER_USERID_TOKEN).
const ownerToken = "[.OwNeR.]"

// annotateFlagDeleted marks a deleted annotation (ANNOTATE_FLAG_DELETED).
const annotateFlagDeleted = 1

// Annotation is one stored annotation of a message or mailbox, in the form
// replication sends it (docs/cyrus/replication.md §3).
type Annotation struct {
	// Entry is the entry name as stored, without /shared or /private
	// ("/comment", "/specialuse", "/vendor/...").
	Entry string
	// UserID is "" for a shared value; otherwise the user owning the
	// private value (the owner's placeholder is resolved).
	UserID string
	Modseq uint64
	Value  []byte
}

// annotationValue decodes the value of an annotation database record
// (imap/annotate.c split_attribs): a 4-byte big-endian length and 4 more
// bytes (an unsigned long on 64-bit Cyrus), the value, NUL, the content
// type, NUL, 8 bytes of the old modifiedsince, an 8-byte big-endian modseq
// and a flags byte. The trailing fields are missing in old records.
func annotationValue(b []byte) (value []byte, modseq uint64, flags byte, err error) {
	if len(b) < 8 {
		return nil, 0, 0, fmt.Errorf("%w: annotation value of %d bytes", ErrBadFormat, len(b))
	}
	n := uint64(be.Uint32(b))
	rest := b[8:]
	if n > uint64(len(rest)) {
		return nil, 0, 0, fmt.Errorf("%w: annotation length %d beyond its %d bytes", ErrBadFormat, n, len(rest))
	}
	value = rest[:n]
	rest = rest[n:]
	if len(rest) > 0 {
		rest = rest[1:] // the value's NUL
	}
	if len(rest) > 0 {
		if i := bytes.IndexByte(rest, 0); i >= 0 {
			rest = rest[i+1:]
		} else {
			rest = nil
		}
		if len(rest) >= 8 {
			rest = rest[8:]
		} else {
			rest = nil
		}
	}
	if len(rest) >= 8 {
		modseq = be.Uint64(rest)
		rest = rest[8:]
	}
	if len(rest) > 0 {
		flags = rest[0]
	}
	return value, modseq, flags, nil
}

// splitAnnotationKey splits "<first> NUL <entry> NUL <userid> NUL" where
// first is a decimal uid (cyrus.annotations) or a mailbox uniqueid
// (annotations.db).
func splitAnnotationKey(k []byte) (first, entry, userid string, err error) {
	parts := bytes.SplitN(k, []byte{0}, 4)
	if len(parts) < 3 {
		return "", "", "", fmt.Errorf("%w: annotation key %q", ErrBadFormat, k)
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

// annotationSet gathers annotations the way imap/sync_support.c
// sync_annot_list_add does: deleted and empty values dropped, the owner
// placeholder replaced, sorted by entry, userid and value, duplicates
// merged keeping the highest modseq.
type annotationSet []Annotation

func (s *annotationSet) add(entry, userid, owner string, raw []byte) error {
	value, modseq, flags, err := annotationValue(raw)
	if err != nil {
		return err
	}
	if flags&annotateFlagDeleted != 0 || len(value) == 0 {
		return nil
	}
	if userid == ownerToken {
		userid = owner
	}
	*s = append(*s, Annotation{Entry: entry, UserID: userid, Modseq: modseq,
		Value: bytes.Clone(value)})
	return nil
}

func (s annotationSet) sorted() []Annotation {
	sort.SliceStable(s, func(i, j int) bool { return annotationLess(s[i], s[j]) })
	out := s[:0]
	for _, a := range s {
		if n := len(out); n > 0 && out[n-1].Entry == a.Entry && out[n-1].UserID == a.UserID &&
			bytes.Equal(out[n-1].Value, a.Value) {
			out[n-1].Modseq = max(out[n-1].Modseq, a.Modseq)
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func annotationLess(a, b Annotation) bool {
	if a.Entry != b.Entry {
		return a.Entry < b.Entry
	}
	if a.UserID != b.UserID {
		return a.UserID < b.UserID
	}
	return bytes.Compare(a.Value, b.Value) < 0
}

// parseUID parses the decimal uid at the start of a cyrus.annotations key.
func parseUID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: annotation key uid %q", ErrBadFormat, s)
	}
	return uint32(n), nil
}

// ServerAnnotations calls fn with every user's private annotations of the
// server (GETMETADATA "" /private/..., stored in annotations.db under an
// empty mailbox part: imap/annotate.c annotate_state_set_server), grouped
// by user in no particular order of users. Shared server annotations
// (userid "") are left out: they belong to no user. The cost is one walk
// of the server's annotations, whatever the number of users; since keys
// are in entry order, not user order, the walk holds all of them (users
// keep a handful at most).
func (s *Spool) ServerAnnotations(fn func(user string, as []Annotation) error) error {
	byUser := map[string]*annotationSet{}
	err := s.annotationsDB(s.tree(), []byte{0}, func(k, v []byte) error {
		_, entry, userid, err := splitAnnotationKey(k)
		if err != nil || userid == "" {
			return err
		}
		set := byUser[userid]
		if set == nil {
			set = &annotationSet{}
			byUser[userid] = set
		}
		return set.add(entry, userid, "", v)
	})
	if err != nil {
		return err
	}
	for u, set := range byUser {
		if as := set.sorted(); len(as) > 0 {
			if err := fn(u, as); err != nil {
				return err
			}
		}
	}
	return nil
}

// annotationsDB calls fn for the records of annotations.db whose keys
// start with prefix; there are none when the database does not exist.
// The database stays open between calls (Spool.annotdb), as Cyrus keeps
// it open: a dump reads it once per mailbox. It is opened beneath tree
// (s.tree(), or the view a mailbox is opened through) when it is not
// open: where it does not exist, that failed open is all a read costs.
func (s *Spool) annotationsDB(tree *cyrusfs.Tree, prefix []byte, fn func(k, v []byte) error) error {
	path := s.Config.AnnotationPath
	err := s.annotdb.with("annotations.db", path, func() (*os.File, error) {
		f, err := lock.Reopen(context.Background(), path, func() (*os.File, error) { return tree.Open(path, os.O_RDONLY) }, false)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoDB
		}
		return f, err
	}, func(db *cyrusdb.Twoskip, _ uint64) error {
		return db.ForEach(prefix, fn)
	})
	if err == errNoDB {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}
