package partition

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Separators of mailboxes.db names (imap/mboxlist.c DB_DOMAINSEP_CHAR,
// DB_HIERSEP_CHAR).
const (
	dbDomainSep = 0x1D
	dbHierSep   = 0x1F
)

// hashChar is lib/util.c dir_hash_c: the one-character directory that
// hashimapspool and the config directory use. With full off it is the
// lowercased first letter, or 'q' for anything else; with fulldirhash it
// hashes the bytes up to the first '.' into 'A'..'W'.
func hashChar(s string, full bool) byte {
	if full {
		var n uint32
		for i := 0; i < len(s) && s[i] != '.'; i++ {
			n = ((n << 3) ^ (n >> 5)) ^ uint32(s[i])
		}
		return 'A' + byte(n%23)
	}
	if s == "" {
		return 'q'
	}
	c := s[0]
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	if c < 'a' || c > 'z' {
		return 'q'
	}
	return c
}

// mbname is an internal mailbox name taken apart the way
// imap/mboxname.c mbname_from_intname does it.
type mbname struct {
	domain    string   // "" when none (or the default domain)
	comps     []string // all components, '^' turned back into '.'
	localpart string   // the user for user.* (and DELETED.user.*) names
	deleted   bool     // under the deleted prefix, with a trailing hex time
}

// parseName splits an internal name ("example.com!user.jo^doe.Sent").
func (c *Config) parseName(name string) mbname {
	var m mbname
	if i := strings.IndexByte(name, '!'); i >= 0 {
		m.domain = name[:i]
		name = name[i+1:]
		if m.domain == c.DefaultDomain {
			m.domain = ""
		}
	}
	if name == "" {
		return m
	}
	// The components in one slice sized first (strings.Split would make
	// a second one): the owner of every mailbox a dump plans and opens
	// is found this way.
	m.comps = make([]string, 0, strings.Count(name, ".")+1)
	for {
		i := strings.IndexByte(name, '.')
		p := name
		if i >= 0 {
			p = name[:i]
		}
		m.comps = append(m.comps, strings.ReplaceAll(p, "^", "."))
		if i < 0 {
			break
		}
		name = name[i+1:]
	}
	boxes := m.comps
	if len(boxes) > 2 && boxes[0] == c.DeletedPrefix {
		m.deleted = true
		boxes = boxes[1 : len(boxes)-1]
	}
	if len(boxes) > 1 && boxes[0] == "user" {
		m.localpart = boxes[1]
	}
	return m
}

// userid is imap/mboxname.c mbname_userid: localpart[@domain], or "".
func (m mbname) userid() string {
	if m.localpart == "" {
		return ""
	}
	if m.domain != "" {
		return m.localpart + "@" + m.domain
	}
	return m.localpart
}

// escapeComp writes a component as in internal names and paths: a literal
// '.' becomes '^' (imap/mboxname.c _append_intbuf).
func escapeComp(s string) string { return strings.ReplaceAll(s, ".", "^") }

// hashPath is imap/mboxname.c mboxname_hash: the legacy (name-based)
// directory of name under root. It is also the layout of lock files.
func (c *Config) hashPath(root, name string) string {
	if name != "" && strings.IndexAny(name, "!.^") < 0 {
		// One component, no domain, nothing to escape: a uniqueid's
		// name lock, taken for every mailbox a dump opens, is built in
		// one concatenation, as the loop below would build it.
		if c.HashSpool {
			return root + "/" + string(hashChar(name, c.FullDirHash)) + "/" + name
		}
		return root + "/" + name
	}
	return c.hashPathParsed(root, name)
}

// hashPathParsed is hashPath for any name, from its parsed components.
func (c *Config) hashPathParsed(root, name string) string {
	m := c.parseName(name)
	var b strings.Builder
	b.WriteString(root)
	if m.domain != "" {
		b.WriteString("/domain/")
		if c.HashSpool {
			b.WriteByte(hashChar(m.domain, c.FullDirHash))
			b.WriteByte('/')
		}
		b.WriteString(m.domain)
	}
	comps := m.comps
	if m.deleted {
		// mboxname_hash re-prints the deletion time with "%X".
		last := comps[len(comps)-1]
		if t, err := strconv.ParseUint(last, 16, 32); err == nil {
			comps = append(comps[:len(comps)-1:len(comps)-1], strings.ToUpper(strconv.FormatUint(t, 16)))
		}
	}
	if c.HashSpool && len(comps) > 0 {
		idx := comps[0]
		if len(comps) > 1 {
			idx = comps[1]
		}
		b.WriteByte('/')
		b.WriteByte(hashChar(idx, c.FullDirHash))
	}
	for _, p := range comps {
		b.WriteByte('/')
		b.WriteString(escapeComp(p))
	}
	return b.String()
}

// idPath is imap/mboxname.c mboxname_id_hash: root/uuid/U0/U1/U.
func idPath(root, id string) string {
	if len(id) < 2 {
		// Cyrus would read past a too-short id; keep it readable instead.
		return filepath.Join(root, "uuid", id)
	}
	return root + "/uuid/" + id[:1] + "/" + id[1:2] + "/" + id
}

// lockPath is imap/mboxname.c mboxname_lockpath_suffix for a lock name.
func (c *Config) lockPath(lockname string) string {
	return c.hashPath(c.LockPath, lockname) + ".lock"
}

// namespaceLockName is imap/user.c _namelock_name_from_userid.
func namespaceLockName(userid string) string {
	return "*U*" + strings.ReplaceAll(userid, ".", "^")
}

// dbnameToName converts a mailboxes.db name (domain 0x1D, components
// joined by 0x1F, literal dots) to an internal name: the domain as it
// is and '!' for its separator, then '.' for 0x1F and '^' for a literal
// dot. The two forms have the same length, byte for byte, so it is made
// in one allocation (none when nothing changes), once for every entry of
// mailboxes.db a dump plans.
func dbnameToName(db string) string {
	i := strings.IndexByte(db, dbDomainSep)
	return mapName(db, i, '!', func(c byte) byte {
		switch c {
		case dbHierSep:
			return '.'
		case '.':
			return '^'
		}
		return c
	})
}

// nameToDBName is the inverse of dbnameToName: the domain as it is and
// 0x1D for its '!', then 0x1F for '.' and '.' for '^'.
func nameToDBName(name string) string {
	i := strings.IndexByte(name, '!')
	return mapName(name, i, dbDomainSep, func(c byte) byte {
		switch c {
		case '.':
			return dbHierSep
		case '^':
			return '.'
		}
		return c
	})
}

// mapName returns s with its byte at sep (if sep >= 0) replaced by
// sepTo and every byte after it mapped by f, the bytes before it as they
// are; s itself when that changes nothing.
func mapName(s string, sep int, sepTo byte, f func(byte) byte) string {
	j := sep + 1
	for j < len(s) && f(s[j]) == s[j] {
		j++
	}
	if sep < 0 && j == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	if sep >= 0 {
		b.WriteString(s[:sep])
		b.WriteByte(sepTo)
		b.WriteString(s[sep+1 : j])
	} else {
		b.WriteString(s[:j])
	}
	for ; j < len(s); j++ {
		b.WriteByte(f(s[j]))
	}
	return b.String()
}

// confUserPath is imap/mboxname.c mboxname_conf_getpath_legacy: the
// per-user file <configdir>[/domain/H/dom]/user/H/<local>.<suffix>.
// fulldirhash applies; hashimapspool does not.
func (c *Config) confUserPath(user, suffix string) string {
	local, domain := user, ""
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		local, domain = user[:i], user[i+1:]
	}
	if domain == c.DefaultDomain {
		domain = ""
	}
	p := c.ConfigDir
	if domain != "" {
		p += "/domain/" + string(hashChar(domain, c.FullDirHash)) + "/" + domain
	}
	return p + "/user/" + string(hashChar(local, c.FullDirHash)) + "/" + local + "." + suffix
}

// confIDPath is imap/mboxname.c mboxid_conf_getpath: the per-user file
// <configdir>/user/uuid/U0/U1/U/<suffix>.db for an INBOX uniqueid U.
func (c *Config) confIDPath(id, suffix string) string {
	return idPath(c.ConfigDir+"/user", id) + "/" + suffix + ".db"
}
