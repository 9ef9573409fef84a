package partition

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// UserState reports whether user has a seen database or a subscriptions
// file, whether or not the user owns a mailbox: a user who only reads
// other users' and shared folders has both and no INBOX.
func (s *Spool) UserState(user string) (bool, error) {
	for _, path := range []func(string) (string, error){s.SeenPath, s.SubsPath} {
		p, err := path(user)
		if err != nil {
			return false, err
		}
		if _, err := os.Lstat(p); err == nil {
			return true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	return false, nil
}

// stateUsers adds to set every user with a seen database or subscriptions
// in the name-based layout, the one Cyrus uses for a user without an
// INBOX (imap/mboxname.c mboxname_conf_getpath):
// <configdirectory>/user/<h>/<user>.seen or .sub, and
// <configdirectory>/domain/<h>/<domain>/user/<h>/... with virtual domains.
// (A user with an INBOX in the uuid layout keeps them under the INBOX's
// uniqueid, and owns a mailbox anyway.) The cost is one directory listing
// per hash directory.
func (s *Spool) stateUsers(set map[string]bool) error {
	type root struct{ dir, domain string }
	roots := []root{{filepath.Join(s.Config.ConfigDir, "user"), ""}}
	if s.Config.VirtDomains {
		base := filepath.Join(s.Config.ConfigDir, "domain")
		hashes, err := readDirIfAny(base)
		if err != nil {
			return err
		}
		for _, h := range hashes {
			domains, err := readDirIfAny(filepath.Join(base, h.Name()))
			if err != nil {
				return err
			}
			for _, d := range domains {
				if d.IsDir() {
					roots = append(roots, root{filepath.Join(base, h.Name(), d.Name(), "user"), d.Name()})
				}
			}
		}
	}
	for _, r := range roots {
		hashes, err := readDirIfAny(r.dir)
		if err != nil {
			return err
		}
		for _, h := range hashes {
			if !h.IsDir() || len(h.Name()) != 1 { // "uuid" holds the uniqueid layout
				continue
			}
			files, err := readDirIfAny(filepath.Join(r.dir, h.Name()))
			if err != nil {
				return err
			}
			for _, f := range files {
				user, ok := strings.CutSuffix(f.Name(), ".seen")
				if !ok {
					user, ok = strings.CutSuffix(f.Name(), ".sub")
				}
				if !ok || user == "" || !f.Type().IsRegular() {
					continue
				}
				if r.domain != "" && r.domain != s.Config.DefaultDomain {
					user += "@" + r.domain
				}
				set[user] = true
			}
		}
	}
	return nil
}

// readDirIfAny is os.ReadDir, with no entries for a directory that does
// not exist.
func readDirIfAny(dir string) ([]os.DirEntry, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return es, err
}
