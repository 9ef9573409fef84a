package partition

import (
	"bytes"
	"fmt"
)

// subsVersionKey is the version record of a subscription database.
const subsVersionKey = "\x1fVER\x1f"

// SubsPath returns the path of user's subscription database (the same
// uniqueid-or-legacy rule as SeenPath, suffix "sub"). The file need not
// exist.
func (s *Spool) SubsPath(user string) (string, error) {
	return s.userFilePath(user, "sub")
}

// ReadSubs returns the internal names of the mailboxes user subscribes to,
// in database order, or nil when there are none. Keys are "N" + a
// mailboxes.db name, where the user's own INBOX is written "INBOX"
// (imap/mboxlist.c mboxlist_dbname_to_key).
func (s *Spool) ReadSubs(user string) ([]string, error) {
	path, err := s.SubsPath(user)
	if err != nil {
		return nil, fmt.Errorf("subscriptions of %s: %w", user, err)
	}
	return s.ReadSubsAt(user, path)
}

// ReadSubsAt is ReadSubs of the subscription database at path
// (UserDBPaths).
func (s *Spool) ReadSubsAt(user, path string) ([]string, error) {
	inbox := []byte(nameToDBName(s.userInbox(user)))
	var out []string
	err := s.readUserDB(path, s.Config.SubDB, func(k, v []byte) error {
		if string(k) == subsVersionKey {
			return nil
		}
		if len(k) < 2 || k[0] != 'N' {
			return fmt.Errorf("%s: %w: key %q", path, ErrBadFormat, k)
		}
		db := k[1:]
		if rest, ok := bytes.CutPrefix(db, []byte("INBOX")); ok {
			db = append(bytes.Clone(inbox), rest...)
		}
		out = append(out, dbnameToName(string(db)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions of %s: %w", user, err)
	}
	return out, nil
}
