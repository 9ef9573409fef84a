package partition

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mbtool/mbtool/dlist"
)

// ErrNoQuota: the quota root does not exist.
var ErrNoQuota = errors.New("no such quota root")

// Quota resource names, as IMAP and replication name them.
const (
	QuotaStorage           = "STORAGE"
	QuotaMessage           = "MESSAGE"
	QuotaAnnotationStorage = "X-ANNOTATION-STORAGE"
	QuotaNumFolders        = "X-NUM-FOLDERS"
)

// quotaKeys maps the keys of a stored quota record (imap/quota_db.c
// quota_db_names) to resource names, in resource order.
var quotaKeys = []struct{ key, name string }{
	{"S", QuotaStorage}, {"M", QuotaMessage}, {"AS", QuotaAnnotationStorage}, {"NF", QuotaNumFolders},
}

// Quota is one quota root.
type Quota struct {
	Root string
	// Limits per resource; an absent resource is unlimited. STORAGE is
	// in KiB, the others are counts (annotation storage in bytes).
	Limits map[string]int64
	// Usage per resource; STORAGE in bytes.
	Usage  map[string]int64
	Modseq uint64
}

// QuotaPath returns the file of a quota root in the quotalegacy backend
// (lib/cyrusdb_quotalegacy.c hash_quota): under the directory of
// quota_db_path, quota/<H>/<root>, where H hashes the part after the
// first dot; with virtual domains a root "dom!rest" lives under
// domain/<H(dom)>/dom/, and "dom!" is that domain's "root".
func (s *Spool) QuotaPath(root string) (string, error) {
	cfg := s.Config
	if cfg.QuotaDB != "quotalegacy" {
		return "", fmt.Errorf("quota_db %s: only quotalegacy is supported", cfg.QuotaDB)
	}
	if root == "" || strings.Contains(root, "/") {
		return "", fmt.Errorf("quota root %q: %w", root, ErrBadFormat)
	}
	p := filepath.Dir(cfg.QuotaPath)
	if cfg.VirtDomains {
		if dom, qr, ok := strings.Cut(root, "!"); ok {
			p += "/domain/" + string(hashChar(dom, cfg.FullDirHash)) + "/" + dom
			if qr == "" {
				return p + "/quota/root", nil
			}
			root = qr
		}
	}
	idx := root
	if _, after, ok := strings.Cut(root, "."); ok {
		idx = after
	}
	return p + "/quota/" + string(hashChar(idx, cfg.FullDirHash)) + "/" + root, nil
}

// ReadQuota reads the quota root (e.g. "user.alice") from the quotalegacy
// database. A missing root is ErrNoQuota. Readers of quotalegacy files take
// no lock; writers replace them by rename (docs/cyrus/locks.md §4.6).
func (s *Spool) ReadQuota(root string) (Quota, error) {
	return s.readQuota(root, s.openReadFd)
}

func (s *Spool) readQuota(root string, open func(string) (int, error)) (Quota, error) {
	q := Quota{Root: root}
	path, err := s.QuotaPath(root)
	if err != nil {
		return q, err
	}
	b, err := readSmallFile(open, path, 1<<20)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(b) == 0 {
		return q, fmt.Errorf("quota root %s: %w", root, ErrNoQuota)
	}
	if err != nil {
		return q, fmt.Errorf("quota root %s: %w", root, err)
	}
	if err := ParseQuota(b, &q); err != nil {
		return q, &FileError{File: path, Offset: -1, Err: err}
	}
	return q, nil
}

// ParseQuota decodes a stored quota value into q (imap/quota_db.c
// quota_parseval): the dlist form %(S (used [limit]) M (...) AS (...)
// NF (...) MODSEQ n) that 3.x writes, or the historical text form
// "used limit [extra] [NAME used limit [extra]]...".
func ParseQuota(b []byte, q *Quota) error {
	q.Limits = make(map[string]int64)
	q.Usage = make(map[string]int64)
	if len(b) > 0 && b[0] == '%' {
		return parseQuotaDlist(b, q)
	}
	fields := strings.Fields(string(b))
	res := QuotaStorage
	for i := 0; ; {
		if i+2 > len(fields) {
			return fmt.Errorf("%w: quota %q", ErrBadFormat, b)
		}
		used, err1 := strconv.ParseInt(fields[i], 10, 64)
		limit, err2 := strconv.ParseInt(fields[i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%w: quota %q", ErrBadFormat, b)
		}
		i += 2
		q.Usage[res] = used
		if limit >= 0 {
			q.Limits[res] = limit
		}
		if i < len(fields) {
			if _, err := strconv.ParseInt(fields[i], 10, 64); err == nil {
				i++ // leftover of an interrupted quota -f
			}
		}
		if i == len(fields) {
			return nil
		}
		res = ""
		for _, k := range quotaKeys {
			if strings.EqualFold(fields[i], k.key) {
				res = k.name
			}
		}
		if res == "" {
			return fmt.Errorf("%w: quota resource %q", ErrBadFormat, fields[i])
		}
		i++
	}
}

// parseQuotaDlist reads the dlist form. Cyrus parses it with its stream
// parser; the SAX parser accepts everything Cyrus writes (single spaces,
// atoms), so it is used here.
func parseQuotaDlist(b []byte, q *Quota) error {
	// The tree is parsed into reused memory (dlist.WithSAX): a dump reads
	// a quota root per user, and only numbers are kept.
	err := dlist.WithSAX(bytes.TrimRight(b, "\r\n"), func(root *dlist.Value) error {
		var err error
		if root.Kind != dlist.KVList {
			return fmt.Errorf("%w: quota is a %s, not a kvlist", ErrBadFormat, root.Kind)
		}
		for _, k := range quotaKeys {
			item := root.Get(k.key)
			if item == nil {
				continue
			}
			if item.Kind != dlist.List || len(item.Children) == 0 {
				return fmt.Errorf("%w: quota %s is not (used [limit])", ErrBadFormat, k.key)
			}
			used, err := item.Children[0].Num64()
			if err != nil {
				return fmt.Errorf("%w: quota %s usage: %w", ErrBadFormat, k.key, err)
			}
			q.Usage[k.name] = int64(used)
			if len(item.Children) > 1 {
				limit, err := item.Children[1].Num64()
				if err != nil {
					return fmt.Errorf("%w: quota %s limit: %w", ErrBadFormat, k.key, err)
				}
				q.Limits[k.name] = int64(limit)
			}
		}
		if m := root.Get("MODSEQ"); m != nil {
			if q.Modseq, err = m.Num64(); err != nil {
				return fmt.Errorf("%w: quota MODSEQ: %w", ErrBadFormat, err)
			}
		}
		return nil
	})
	return badFormat(err)
}
