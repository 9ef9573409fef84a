package partition

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// debianConf is the lab's imapd.conf shape (Debian's stock namespace).
const debianConf = `configdirectory: /srv/cyrus/config
defaultpartition: default
partition-default: /srv/cyrus/spool
mboxname_lockpath: /srv/cyrus/run/lock
servername: cyrus-lab
# namespace and hashing as in Debian's stock /etc/imapd.conf
altnamespace: no
unixhierarchysep: no
hashimapspool: true
mailbox_legacy_dirs: 0
umask: 077
`

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(debianConf), "imapd.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		ConfigDir:         "/srv/cyrus/config",
		DefaultPartition:  "default",
		Partitions:        map[string]string{"default": "/srv/cyrus/spool"},
		MetaPartitions:    map[string]string{},
		ArchivePartitions: map[string]string{},
		HashSpool:         true,
		MboxlistDB:        "twoskip", SeenDB: "twoskip", SubDB: "flat",
		QuotaDB: "quotalegacy", AnnotationDB: "twoskip",
		MboxlistPath:   "/srv/cyrus/config/mailboxes.db",
		AnnotationPath: "/srv/cyrus/config/annotations.db",
		QuotaPath:      "/srv/cyrus/config/quotas.db",
		LockPath:       "/srv/cyrus/run/lock",
		DeletedPrefix:  "DELETED",
		DefaultDomain:  "internal",
		Raw:            cfg.Raw,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	if cfg.Raw["umask"] != "077" || cfg.Raw["servername"] != "cyrus-lab" {
		t.Errorf("unknown options not kept: %v", cfg.Raw)
	}
}

func TestParseConfigOptions(t *testing.T) {
	tests := []struct {
		name, conf string
		check      func(*Config) bool
	}{
		{"3.6 defaults", "configdirectory: /c\n", func(c *Config) bool {
			return c.UnixHierarchySep && c.AltNamespace && !c.HashSpool && !c.VirtDomains &&
				c.LockPath == "/c/lock" && c.DefaultPartition == ""
		}},
		{"switch words", "configdirectory: /c\nhashimapspool: on\nfulldirhash: yes\nmailbox_legacy_dirs: t\naltnamespace: off\nunixhierarchysep: false\n",
			func(c *Config) bool {
				return c.HashSpool && c.FullDirHash && c.LegacyDirs && !c.AltNamespace && !c.UnixHierarchySep
			}},
		{"virtdomains userid", "configdirectory: /c\nvirtdomains: userid\n", func(c *Config) bool { return c.VirtDomains }},
		{"virtdomains 0", "configdirectory: /c\nvirtdomains: 0\n", func(c *Config) bool { return !c.VirtDomains }},
		{"upper-case key, blanks, comments", "  # comment\n\nConfigDirectory:\t /c  \n", func(c *Config) bool { return c.ConfigDir == "/c" }},
		{"continuation", "configdirectory: /c\npartition-default: /sp\\\nool\n", func(c *Config) bool { return c.Partitions["default"] == "/spool" }},
		{"configdirectory substitution", "configdirectory: /c\nmboxlist_db_path: {configdirectory}/mb.db\n",
			func(c *Config) bool { return c.MboxlistPath == "/c/mb.db" }},
		{"partitions", "configdirectory: /c\npartition-p1: /a\nmetapartition-p1: /m\narchivepartition-p1: /ar\nmetapartition_files: header index annotations\n",
			func(c *Config) bool {
				return c.Partitions["p1"] == "/a" && c.MetaPartitions["p1"] == "/m" &&
					c.ArchivePartitions["p1"] == "/ar" && c.metaFile("annotations") && !c.metaFile("cache")
			}},
		{"defaultpartition lowercased", "configdirectory: /c\ndefaultpartition: Main\n", func(c *Config) bool { return c.DefaultPartition == "main" }},
		{"backends", "configdirectory: /c\nseenstate_db: flat\nquota_db: twoskip\n", func(c *Config) bool {
			return c.SeenDB == "flat" && c.QuotaDB == "twoskip" && c.QuotaPath == "/c/quotas.db"
		}},
		{"no final newline", "configdirectory: /c", func(c *Config) bool { return c.ConfigDir == "/c" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tt.conf), "test.conf")
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ name, conf, want string }{
		{"no configdirectory", "partition-default: /p\n", "configdirectory not set"},
		{"invalid key", "config directory: /c\n", "line 1: invalid imapd.conf: invalid option name"},
		{"no colon", "configdirectory /c\n", "invalid option name"},
		{"empty value", "configdirectory: /c\numask:   \n", "line 2: invalid imapd.conf: empty value for umask"},
		{"twice", "configdirectory: /c\nconfigdirectory: /d\n", "option configdirectory specified twice"},
		{"bad switch", "configdirectory: /c\nhashimapspool: maybe\n", "hashimapspool: not a switch value"},
		{"bad virtdomains", "configdirectory: /c\nvirtdomains: sometimes\n", "virtdomains"},
		{"bad backend", "configdirectory: /c\nmboxlist_db: berkeley\n", "unknown backend"},
		{"bad metafile", "configdirectory: /c\nmetapartition_files: headers\n", "unknown file kind"},
		{"bad directive", "@import: x\n", "invalid directive"},
		{"include from reader", "@include: /etc/other.conf\n", "@include not supported"},
		{"defaultpartition", "configdirectory: /c\ndefaultpartition: a-b\n", "not alphanumeric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.conf), "test.conf")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if !strings.HasPrefix(err.Error(), "test.conf") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.conf")
	main := filepath.Join(dir, "imapd.conf")
	os.WriteFile(inc, []byte("partition-default: /spool\n"), 0o644)
	os.WriteFile(main, []byte("configdirectory: /c\n@include: "+inc+"\n"), 0o644)
	cfg, err := LoadConfig(main)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != main || cfg.Partitions["default"] != "/spool" {
		t.Errorf("got %+v", cfg)
	}

	loop := filepath.Join(dir, "loop.conf")
	os.WriteFile(loop, []byte("configdirectory: /c\n@include: "+loop+"\n"), 0o644)
	if _, err := LoadConfig(loop); err == nil || !strings.Contains(err.Error(), "included twice") {
		t.Errorf("include loop: %v", err)
	}
	missing := filepath.Join(dir, "missing.conf")
	if _, err := LoadConfig(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
}

func TestOpenChecksDirs(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	os.Mkdir(spool, 0o755)
	conf := "configdirectory: " + filepath.Join(dir, "config") + "\npartition-default: " + spool + "\n"
	cfg, err := ParseConfig(strings.NewReader(conf), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "configdirectory") {
		t.Errorf("missing configdirectory: %v", err)
	}
	os.Mkdir(filepath.Join(dir, "config"), 0o755)
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "mailboxes.db") {
		t.Errorf("missing mailboxes.db: %v", err)
	}
	cfg.Partitions["other"] = filepath.Join(dir, "nope")
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "partition-other") {
		t.Errorf("missing partition: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(debianConf))
	f.Add([]byte("configdirectory: /c\nvirtdomains: on\nmetapartition_files: index\\\n cache\n"))
	f.Add([]byte("@include: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(strings.NewReader(string(b)), "fuzz.conf")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		if cfg.ConfigDir == "" || cfg.LockPath == "" || cfg.MboxlistPath == "" {
			t.Fatalf("incomplete config %+v", cfg)
		}
	})
}
