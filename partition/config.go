package partition

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrConfig is wrapped by every error about the content of imapd.conf.
var ErrConfig = errors.New("invalid imapd.conf")

// maxConfigLine bounds one logical configuration line (continuations
// included). Cyrus has no limit; real lines are far shorter.
const maxConfigLine = 1 << 20

// maxIncludeDepth bounds @include nesting (Cyrus refuses only cycles).
const maxIncludeDepth = 16

// Config is the part of a Cyrus imapd.conf that locates mailboxes and their
// databases. Unset options carry Cyrus 3.6's defaults.
type Config struct {
	// Path is the configuration file read ("" when parsed from a reader).
	Path string
	// ConfigDir is configdirectory.
	ConfigDir string
	// DefaultPartition is defaultpartition, lowercased ("" if unset).
	DefaultPartition string
	// Partitions maps a partition name to its partition-<name> directory.
	Partitions map[string]string
	// MetaPartitions maps a partition name to metapartition-<name>.
	MetaPartitions map[string]string
	// ArchivePartitions maps a partition name to archivepartition-<name>.
	ArchivePartitions map[string]string
	// MetaFiles lists metapartition_files: which metadata files live on
	// the metapartition ("header", "index", "cache", "annotations", ...).
	MetaFiles []string
	// HashSpool is hashimapspool.
	HashSpool bool
	// FullDirHash is fulldirhash.
	FullDirHash bool
	// LegacyDirs is mailbox_legacy_dirs (new top-level mailboxes use
	// name-based directories). Existing mailboxes record their own layout
	// in mailboxes.db; this option does not change how they are found.
	LegacyDirs bool
	// UnixHierarchySep is unixhierarchysep (default on in 3.6).
	UnixHierarchySep bool
	// AltNamespace is altnamespace (default on in 3.6).
	AltNamespace bool
	// VirtDomains is virtdomains, true for "userid" and "on".
	VirtDomains bool
	// MboxlistDB, SeenDB, SubDB, QuotaDB and AnnotationDB are the database
	// backends: mboxlist_db, seenstate_db, subscription_db, quota_db and
	// annotation_db.
	MboxlistDB, SeenDB, SubDB, QuotaDB, AnnotationDB string
	// MboxlistPath is mboxlist_db_path or <configdirectory>/mailboxes.db.
	MboxlistPath string
	// AnnotationPath is annotation_db_path or <configdirectory>/annotations.db.
	AnnotationPath string
	// QuotaPath is quota_db_path or <configdirectory>/quotas.db. The
	// quotalegacy backend keeps one file per root under the directory
	// holding this path (lib/cyrusdb_quotalegacy.c strips the file name).
	QuotaPath string
	// LockPath is mboxname_lockpath or <configdirectory>/lock.
	LockPath string
	// DeletedPrefix is deletedprefix (default "DELETED").
	DeletedPrefix string
	// DefaultDomain is defaultdomain (default "internal"): a mailbox or
	// user in this domain is named without it.
	DefaultDomain string
	// Raw holds every option as read, keyed by lowercased name, after
	// {configdirectory} substitution, including options this package does
	// not interpret.
	Raw map[string]string
}

// Options whose type is a Cyrus switch, validated when read.
var switchOptions = map[string]bool{
	"hashimapspool": true, "fulldirhash": true, "mailbox_legacy_dirs": true,
	"unixhierarchysep": true, "altnamespace": true,
}

// String options that may start with {configdirectory} (lib/libconfig.c
// substitutes it only in known string options, not in partition-*).
var pathOptions = []string{
	"mboxname_lockpath", "mboxlist_db_path", "annotation_db_path",
	"quota_db_path", "seenstate_db_path", "subscription_db_path",
	"proc_path", "sievedir",
}

// Backend names accepted per database option (lib/imapoptions).
var backendOptions = map[string][]string{
	"mboxlist_db":     {"flat", "skiplist", "sql", "twoskip", "zeroskip"},
	"seenstate_db":    {"flat", "skiplist", "twoskip", "zeroskip"},
	"subscription_db": {"flat", "skiplist", "twoskip", "zeroskip"},
	"quota_db":        {"flat", "skiplist", "sql", "quotalegacy", "twoskip", "zeroskip"},
	"annotation_db":   {"skiplist", "twoskip", "zeroskip"},
}

var metaFileNames = []string{"header", "index", "cache", "expunge", "squat",
	"annotations", "lock", "dav", "archivecache"}

// LoadConfig reads the imapd.conf at path, following @include directives.
// It checks the syntax and the options this package uses, but not the
// directories they name; Open does that.
func LoadConfig(path string) (*Config, error) {
	raw := make(map[string]string)
	seen := make(map[string]bool)
	if err := readConfigFile(path, raw, seen, 0); err != nil {
		return nil, err
	}
	cfg, err := buildConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// ParseConfig parses imapd.conf syntax from r; name is used in errors.
// @include directives are refused, since there is no file system context.
func ParseConfig(r io.Reader, name string) (*Config, error) {
	raw := make(map[string]string)
	if err := parseConfig(r, name, raw, nil); err != nil {
		return nil, err
	}
	cfg, err := buildConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

func readConfigFile(path string, raw map[string]string, seen map[string]bool, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%s: %w: @include nested deeper than %d", path, ErrConfig, maxIncludeDepth)
	}
	if seen[path] {
		return fmt.Errorf("%s: %w: configuration file included twice", path, ErrConfig)
	}
	seen[path] = true
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading configuration: %w", err)
	}
	defer f.Close()
	include := func(p string) error { return readConfigFile(p, raw, seen, depth+1) }
	return parseConfig(f, path, raw, include)
}

// parseConfig follows lib/libconfig.c config_read_file: a trailing
// backslash continues a line; leading blanks are skipped; '#' starts a
// comment line; a key is [@]{alnum,-,_}+ (lowercased) followed by ':'; the
// value is trimmed and must not be empty; an option may appear once.
func parseConfig(r io.Reader, name string, raw map[string]string, include func(string) error) error {
	br := bufio.NewReader(r)
	var line []byte
	lineno := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			line = append(line, chunk...)
			if len(line) > maxConfigLine {
				return fmt.Errorf("%s: line %d: %w: line too long", name, lineno+1, ErrConfig)
			}
			continue
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		eof := err == io.EOF
		line = append(line, chunk...)
		if len(line) > maxConfigLine {
			return fmt.Errorf("%s: line %d: %w: line too long", name, lineno+1, ErrConfig)
		}
		if eof && len(line) == 0 {
			return nil
		}
		lineno++
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
			if n := len(line); n > 0 && line[n-1] == '\\' && !eof {
				line = line[:n-1]
				continue
			}
		}
		if err := configLine(line, name, lineno, raw, include); err != nil {
			return err
		}
		line = line[:0]
		if eof {
			return nil
		}
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func configLine(line []byte, name string, lineno int, raw map[string]string, include func(string) error) error {
	p := 0
	for p < len(line) && isSpace(line[p]) {
		p++
	}
	if p == len(line) || line[p] == '#' {
		return nil
	}
	start := p
	if line[p] == '@' {
		p++
	}
	for p < len(line) && (isAlnum(line[p]) || line[p] == '-' || line[p] == '_') {
		p++
	}
	if p == len(line) || line[p] != ':' || p == start {
		return fmt.Errorf("%s: line %d: %w: invalid option name", name, lineno, ErrConfig)
	}
	key := strings.ToLower(string(line[start:p]))
	value := string(bytes.TrimFunc(line[p+1:], func(r rune) bool { return r < 0x80 && isSpace(byte(r)) }))
	if value == "" {
		return fmt.Errorf("%s: line %d: %w: empty value for %s", name, lineno, ErrConfig, key)
	}
	if key[0] == '@' {
		if key != "@include" {
			return fmt.Errorf("%s: line %d: %w: invalid directive %s", name, lineno, ErrConfig, key)
		}
		if include == nil {
			return fmt.Errorf("%s: line %d: %w: @include not supported here", name, lineno, ErrConfig)
		}
		return include(value)
	}
	if _, dup := raw[key]; dup {
		return fmt.Errorf("%s: line %d: %w: option %s specified twice", name, lineno, ErrConfig, key)
	}
	raw[key] = value
	return nil
}

// parseSwitch follows lib/libconfig.c config_parse_switch, which looks
// only at the first one or two characters.
func parseSwitch(v string) (bool, bool) {
	switch {
	case v == "":
		return false, false
	case v[0] == '0' || v[0] == 'n' || v[0] == 'f' || strings.HasPrefix(v, "of"):
		return false, true
	case v[0] == '1' || v[0] == 'y' || v[0] == 't' || strings.HasPrefix(v, "on"):
		return true, true
	}
	return false, false
}

func buildConfig(raw map[string]string) (*Config, error) {
	cfg := &Config{
		Raw:               raw,
		Partitions:        make(map[string]string),
		MetaPartitions:    make(map[string]string),
		ArchivePartitions: make(map[string]string),
		UnixHierarchySep:  true,
		AltNamespace:      true,
		DeletedPrefix:     "DELETED",
	}
	cfg.ConfigDir = raw["configdirectory"]
	if cfg.ConfigDir == "" {
		return nil, fmt.Errorf("%w: configdirectory not set", ErrConfig)
	}
	for _, k := range pathOptions {
		if v, ok := raw[k]; ok && len(v) >= 17 && strings.EqualFold(v[:17], "{configdirectory}") {
			raw[k] = cfg.ConfigDir + v[17:]
		}
	}
	for k, v := range raw {
		if !switchOptions[k] {
			continue
		}
		b, ok := parseSwitch(v)
		if !ok {
			return nil, fmt.Errorf("%w: %s: not a switch value: %q", ErrConfig, k, v)
		}
		switch k {
		case "hashimapspool":
			cfg.HashSpool = b
		case "fulldirhash":
			cfg.FullDirHash = b
		case "mailbox_legacy_dirs":
			cfg.LegacyDirs = b
		case "unixhierarchysep":
			cfg.UnixHierarchySep = b
		case "altnamespace":
			cfg.AltNamespace = b
		}
	}
	if v, ok := raw["virtdomains"]; ok {
		switch v {
		case "off", "0", "no", "f", "false":
		case "userid", "on", "1", "yes", "t", "true":
			cfg.VirtDomains = true
		default:
			return nil, fmt.Errorf("%w: virtdomains: invalid value %q", ErrConfig, v)
		}
	}
	if v, ok := raw["defaultpartition"]; ok {
		for i := 0; i < len(v); i++ {
			if !isAlnum(v[i]) {
				return nil, fmt.Errorf("%w: defaultpartition %q: not alphanumeric", ErrConfig, v)
			}
		}
		cfg.DefaultPartition = strings.ToLower(v)
	}
	for k, v := range raw {
		switch {
		case strings.HasPrefix(k, "partition-"):
			cfg.Partitions[k[len("partition-"):]] = v
		case strings.HasPrefix(k, "metapartition-"):
			cfg.MetaPartitions[k[len("metapartition-"):]] = v
		case strings.HasPrefix(k, "archivepartition-"):
			cfg.ArchivePartitions[k[len("archivepartition-"):]] = v
		}
	}
	if v, ok := raw["metapartition_files"]; ok {
		for _, w := range strings.Fields(v) {
			if !contains(metaFileNames, w) {
				return nil, fmt.Errorf("%w: metapartition_files: unknown file kind %q", ErrConfig, w)
			}
			cfg.MetaFiles = append(cfg.MetaFiles, w)
		}
	}
	backend := func(key, def string) (string, error) {
		v, ok := raw[key]
		if !ok {
			return def, nil
		}
		if !contains(backendOptions[key], v) {
			return "", fmt.Errorf("%w: %s: unknown backend %q", ErrConfig, key, v)
		}
		return v, nil
	}
	var err error
	if cfg.MboxlistDB, err = backend("mboxlist_db", "twoskip"); err != nil {
		return nil, err
	}
	if cfg.SeenDB, err = backend("seenstate_db", "twoskip"); err != nil {
		return nil, err
	}
	if cfg.SubDB, err = backend("subscription_db", "flat"); err != nil {
		return nil, err
	}
	if cfg.QuotaDB, err = backend("quota_db", "quotalegacy"); err != nil {
		return nil, err
	}
	if cfg.AnnotationDB, err = backend("annotation_db", "twoskip"); err != nil {
		return nil, err
	}
	orDefault := func(key, def string) string {
		if v, ok := raw[key]; ok {
			return v
		}
		return def
	}
	cfg.MboxlistPath = orDefault("mboxlist_db_path", filepath.Join(cfg.ConfigDir, "mailboxes.db"))
	cfg.AnnotationPath = orDefault("annotation_db_path", filepath.Join(cfg.ConfigDir, "annotations.db"))
	cfg.QuotaPath = orDefault("quota_db_path", filepath.Join(cfg.ConfigDir, "quotas.db"))
	cfg.LockPath = orDefault("mboxname_lockpath", filepath.Join(cfg.ConfigDir, "lock"))
	cfg.DeletedPrefix = orDefault("deletedprefix", "DELETED")
	cfg.DefaultDomain = orDefault("defaultdomain", "internal")
	return cfg, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// metaFile reports whether kind is listed in metapartition_files.
func (c *Config) metaFile(kind string) bool { return contains(c.MetaFiles, kind) }

// Switch returns the value of a yes/no option of imapd.conf, or def when
// it is not set (or not a switch), as Cyrus's config_getswitch reads it.
func (c *Config) Switch(key string, def bool) bool {
	if b, ok := parseSwitch(c.Raw[key]); ok {
		return b
	}
	return def
}
