package partition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/mbtool/mbtool/cyrusdb"
)

// SeenRecord is one record of a user's seen database: the user's \Seen
// state in a mailbox the user does not own (docs/cyrus/files.md §3, §4).
type SeenRecord struct {
	// UniqueID is the mailbox uniqueid (the key).
	UniqueID   string
	LastRead   int64
	LastUID    uint32
	LastChange int64
	// SeenUIDs is the seen sequence set as stored ("1:5,7"), passed on
	// unchecked as imap/seen_db.c seen_foreach (and so replication) does.
	SeenUIDs string
	// Raw is the stored value, byte for byte.
	Raw []byte
}

// userFilePath is imap/mboxname.c mboxname_conf_getpath for a user: the
// uniqueid directory of the user's INBOX unless the INBOX is missing or in
// the legacy layout, else the hashed <user>.<suffix> file.
func (s *Spool) userFilePath(user, suffix string) (string, error) {
	return s.userFilePathBy(user, suffix, s.lookupAny)
}

// userFilePathBy is userFilePath looking the INBOX up with lookup (in a
// view of mailboxes.db: MailboxesView).
func (s *Spool) userFilePathBy(user, suffix string, lookup func(name string) (Entry, bool, error)) (string, error) {
	path, err := s.userFilesBy(user, lookup)
	if err != nil {
		return "", err
	}
	return path(suffix), nil
}

// userFiles looks user's INBOX up once and returns userFilePath's rule
// for every suffix.
func (s *Spool) userFiles(user string) (func(suffix string) string, error) {
	return s.userFilesBy(user, s.lookupAny)
}

func (s *Spool) userFilesBy(user string, lookup func(name string) (Entry, bool, error)) (func(suffix string) string, error) {
	if user == "" {
		return nil, errors.New("empty userid")
	}
	inbox, ok, err := lookup(s.userInbox(user))
	if err != nil {
		return nil, err
	}
	if ok && inbox.UniqueID != "" && !inbox.LegacyDirs() {
		return func(suffix string) string { return s.Config.confIDPath(inbox.UniqueID, suffix) }, nil
	}
	return func(suffix string) string { return s.Config.confUserPath(user, suffix) }, nil
}

// UserDBPaths returns the paths of user's seen database and subscription
// database (SeenPath, SubsPath) from one look-up of the user's INBOX.
func (s *Spool) UserDBPaths(user string) (seen, subs string, err error) {
	return s.userDBPathsBy(user, s.lookupAny)
}

// UserDBPaths is Spool.UserDBPaths in the view: the paths of many users'
// databases under one hold of mailboxes.db's shared lock (restore writes
// the seen dbs and subscription files of a batch of users).
func (v *MailboxesView) UserDBPaths(user string) (seen, subs string, err error) {
	return v.s.userDBPathsBy(user, v.Lookup)
}

func (s *Spool) userDBPathsBy(user string, lookup func(name string) (Entry, bool, error)) (seen, subs string, err error) {
	path, err := s.userFilesBy(user, lookup)
	if err != nil {
		return "", "", err
	}
	return path("seen"), path("sub"), nil
}

// SeenPath returns the path of user's seen database (docs/cyrus/files.md
// §4). The file need not exist.
func (s *Spool) SeenPath(user string) (string, error) {
	return s.userFilePath(user, "seen")
}

// ReadSeen returns every record of user's seen database in key order, or
// nil when the user has none. The twoskip and flat backends are read
// (seenstate_db).
func (s *Spool) ReadSeen(user string) ([]SeenRecord, error) {
	path, err := s.SeenPath(user)
	if err != nil {
		return nil, fmt.Errorf("seen db of %s: %w", user, err)
	}
	return s.ReadSeenAt(user, path)
}

// ReadSeenAt is ReadSeen of the seen database at path (UserDBPaths).
func (s *Spool) ReadSeenAt(user, path string) ([]SeenRecord, error) {
	var out []SeenRecord
	err := s.readUserDB(path, s.Config.SeenDB, func(k, v []byte) error {
		r, err := ParseSeen(k, v)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seen db of %s: %w", user, err)
	}
	return out, nil
}

// readUserDB walks a per-user database of the given backend; a missing
// file is an empty database.
func (s *Spool) readUserDB(path, backend string, fn func(k, v []byte) error) error {
	switch backend {
	case "twoskip":
		db, err := openTwoskip(context.Background(), path, s.openRead)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		err = db.ForEach(nil, fn)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		return err
	case "flat":
		// Flat readers take no lock; writers replace the file by rename.
		f, err := s.openRead(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		return cyrusdb.ReadFlat(path, f, fn)
	}
	return fmt.Errorf("%s: backend %s not supported", path, backend)
}

// ParseSeen decodes a seen record the way imap/seen_db.c parse_data does:
// version 1, then lastread, lastuid and lastchange as integers, then the
// rest, after blanks, as the seen set.
func ParseSeen(key, value []byte) (SeenRecord, error) {
	r := SeenRecord{UniqueID: string(key), Raw: bytes.Clone(value)}
	bad := func(why string) (SeenRecord, error) {
		return r, fmt.Errorf("%w: seen record %q: %s", ErrBadFormat, key, why)
	}
	rest := string(value)
	field := func() (string, bool) {
		rest = strings.TrimLeft(rest, " \t\n\r\v\f")
		i := strings.IndexAny(rest, " \t\n\r\v\f")
		if i < 0 {
			i = len(rest)
		}
		f := rest[:i]
		rest = rest[i:]
		return f, f != ""
	}
	v, ok := field()
	if !ok || v != "1" {
		return bad("version is not 1")
	}
	var err error
	var f string
	if f, ok = field(); !ok {
		return bad("missing lastread")
	}
	if r.LastRead, err = strconv.ParseInt(f, 10, 64); err != nil {
		return bad("lastread " + strconv.Quote(f))
	}
	if f, ok = field(); !ok {
		return bad("missing lastuid")
	}
	uid, err := strconv.ParseUint(f, 10, 32)
	if err != nil {
		return bad("lastuid " + strconv.Quote(f))
	}
	r.LastUID = uint32(uid)
	if f, ok = field(); !ok {
		return bad("missing lastchange")
	}
	if r.LastChange, err = strconv.ParseInt(f, 10, 64); err != nil {
		return bad("lastchange " + strconv.Quote(f))
	}
	r.SeenUIDs = strings.TrimLeft(rest, " \t\n\r\v\f")
	return r, nil
}
