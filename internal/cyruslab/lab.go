package cyruslab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mbtool/mbtool/internal/loopback"
)

// DefaultBin is where Debian installs the Cyrus programs.
const DefaultBin = "/usr/lib/cyrus/bin"

// Fixed credentials and names of every lab. They are for loopback test
// instances only.
const (
	// Admin is the Cyrus admin user (listed in admins:).
	Admin = "admin"
	// Password is every lab user's password.
	Password = "secret"
	// Realm is the servername and the SASL realm.
	Realm = "cyrus-lab"
)

// Users are the SASL users of every lab besides Admin. carol starts with no
// mailbox; she is a target for restore tests.
var Users = []string{"alice", "bob", "carol"}

// ErrUnavailable is wrapped by the error Available returns when this machine
// cannot run a lab.
var ErrUnavailable = errors.New("cyruslab: real Cyrus unavailable")

// ErrNotLab is returned by Open for a directory that holds no lab.
var ErrNotLab = errors.New("cyruslab: not a lab directory")

// Options choose how a new lab is configured. They take effect when the lab
// directory is created and are kept with it.
type Options struct {
	// LegacyDirs sets mailbox_legacy_dirs: yes, so new mailboxes get
	// name-based paths (a/user/alice/Sent) instead of 3.6's uuid paths.
	LegacyDirs bool
	// SyncPort runs a sync_server (Cyrus replication) on a loopback port,
	// Lab.SyncAddr. The admin user may log in to it.
	SyncPort bool
	// ExtraConfig is appended to imapd.conf, one "key: value" per line.
	// Cyrus refuses a key given twice: the options below set the keys the
	// lab writes itself.
	ExtraConfig string
	// AltNamespace and UnixHierarchySep set altnamespace and
	// unixhierarchysep (both off in Debian's stock imapd.conf).
	AltNamespace, UnixHierarchySep bool
	// Sieve runs timsieved (ManageSieve) on a loopback port,
	// Lab.SieveAddr; lmtpd runs the users' active scripts.
	Sieve bool
	// SecondPartition configures a second spool partition, named
	// SecondPartitionName, in Lab.Partition2 (the default one stays the
	// default).
	SecondPartition bool
}

// SecondPartitionName is the name of the partition of
// Options.SecondPartition.
const SecondPartitionName = "second"

// Lab is one private Cyrus instance under Dir.
type Lab struct {
	Dir        string // the instance's root; everything lives below it
	Conf       string // Dir/imapd.conf, for every tool's -C
	MasterConf string // Dir/cyrus.conf
	ConfigDir  string // the configdirectory, Dir/config
	Partition  string // the default partition, Dir/spool
	Partition2 string // the partition SecondPartitionName, Dir/spool2, if Options.SecondPartition
	IMAPAddr   string // host:port of IMAP on loopback
	SyncAddr   string // host:port of sync_server, empty unless Options.SyncPort
	SieveAddr  string // host:port of timsieved, empty unless Options.Sieve
	LMTPSocket string // path of lmtpd's Unix socket
	Admin      string // the admin user
	Password   string // every user's password
	Realm      string // servername and SASL realm
	SyslogFile string // Cyrus's syslog lines, when a C compiler built the shim
	Bin        string // directory of the Cyrus programs
	Options    Options

	master *loopback.Child // the master this process started, if any
}

// stateFile holds a lab's Lab fields so Open can find them again.
const stateFile = "lab.json"

// Available reports whether this machine can run a lab: Cyrus installed in
// DefaultBin, the helper programs runuser and saslpasswd2, the user cyrus,
// and root privileges (master switches to cyrus itself). The error wraps
// ErrUnavailable and says what is missing.
func Available() error {
	for _, p := range []string{"master", "imapd", "lmtpd", "ctl_cyrusdb"} {
		if _, err := os.Stat(filepath.Join(DefaultBin, p)); err != nil {
			return fmt.Errorf("%w: %s/%s is missing (install cyrus-imapd)", ErrUnavailable, DefaultBin, p)
		}
	}
	for _, p := range []string{"runuser", "saslpasswd2"} {
		if _, err := lookPath(p); err != nil {
			return fmt.Errorf("%w: %s not found (install util-linux, sasl2-bin)", ErrUnavailable, p)
		}
	}
	if _, err := user.Lookup("cyrus"); err != nil {
		return fmt.Errorf("%w: no user cyrus: %v", ErrUnavailable, err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: must run as root (master switches to user cyrus)", ErrUnavailable)
	}
	return nil
}

// lookPath is exec.LookPath that also searches the sbin directories, which
// are often missing from a test's PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// Create makes a new lab in dir, which must be empty or not exist and must
// be reachable by the user cyrus: it writes the configuration, the SASL
// users and the directory tree, picks free loopback ports, and hands
// everything to cyrus:mail. It does not start Cyrus (see Launch).
func Create(dir string, opts Options) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cyruslab: lab dir %s: %w", dir, err)
	}
	if ents, err := os.ReadDir(d); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("cyruslab: lab dir %s is not empty", d)
	}
	l := &Lab{
		Dir:        d,
		Conf:       filepath.Join(d, "imapd.conf"),
		MasterConf: filepath.Join(d, "cyrus.conf"),
		ConfigDir:  filepath.Join(d, "config"),
		Partition:  filepath.Join(d, "spool"),
		LMTPSocket: filepath.Join(d, "run", "socket", "lmtp"),
		Admin:      Admin,
		Password:   Password,
		Realm:      Realm,
		Bin:        DefaultBin,
		Options:    opts,
	}
	if l.IMAPAddr, err = freePort(); err != nil {
		return nil, err
	}
	if opts.SyncPort {
		if l.SyncAddr, err = freePort(); err != nil {
			return nil, err
		}
	}
	if opts.Sieve {
		if l.SieveAddr, err = freePort(); err != nil {
			return nil, err
		}
	}
	dirs := []string{
		l.Partition, filepath.Dir(l.LMTPSocket), l.path("run", "proc"), l.path("run", "lock"),
	}
	if opts.SecondPartition {
		l.Partition2 = filepath.Join(d, "spool2")
		dirs = append(dirs, l.Partition2)
	}
	// db/ holds the skiplist stamp and socket/ the service lock files;
	// without them Cyrus logs DBERRORs.
	for _, sub := range []string{"db", "socket", "log", "msg", "user", "quota", "sieve"} {
		dirs = append(dirs, filepath.Join(l.ConfigDir, sub))
	}
	for _, p := range dirs {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("cyruslab: %w", err)
		}
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return nil, fmt.Errorf("cyruslab: %w", err)
	}
	if err := l.writeConfig(); err != nil {
		return nil, err
	}
	if err := l.writeSASL(); err != nil {
		return nil, err
	}
	l.buildSyslogShim()
	if err := l.save(); err != nil {
		return nil, err
	}
	if err := chownTree(d); err != nil {
		return nil, err
	}
	if !reachableByCyrus(d) {
		return nil, fmt.Errorf("cyruslab: lab dir %s is not reachable by user cyrus (a parent directory is closed?)", d)
	}
	return l, nil
}

// Open returns the lab that Create made in dir, running or not.
func Open(dir string) (*Lab, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cyruslab: lab dir %s: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(d, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotLab, d, stateFile)
	}
	if err != nil {
		return nil, fmt.Errorf("cyruslab: %w", err)
	}
	l := new(Lab)
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("cyruslab: reading %s: %w", filepath.Join(d, stateFile), err)
	}
	if l.Dir != d {
		return nil, fmt.Errorf("%w: %s was created as %s (labs cannot move)", ErrNotLab, d, l.Dir)
	}
	return l, nil
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("cyruslab: %w", err)
	}
	return writeFile(l.path(stateFile), append(b, '\n'), 0o644)
}

// path joins elem to the lab's directory.
func (l *Lab) path(elem ...string) string {
	return filepath.Join(append([]string{l.Dir}, elem...)...)
}

// freePort returns a loopback address with a port the kernel just handed out.
func freePort() (string, error) {
	a, err := loopback.FreePort()
	if err != nil {
		return "", fmt.Errorf("cyruslab: %w", err)
	}
	return a, nil
}

// writeSASL creates the lab's users in its own sasldb.
func (l *Lab) writeSASL() error {
	prog, err := lookPath("saslpasswd2")
	if err != nil {
		return fmt.Errorf("cyruslab: %w", err)
	}
	for _, u := range append([]string{l.Admin}, Users...) {
		cmd := exec.Command(prog, "-p", "-c", "-f", l.path("sasldb2"), "-u", l.Realm, u)
		cmd.Stdin = strings.NewReader(l.Password)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cyruslab: saslpasswd2 %s: %w: %s", u, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// cyrusIDs returns the uid of cyrus and the gid of mail (cyrus's group if
// there is no mail group).
func cyrusIDs() (uid, gid int, err error) {
	u, err := user.Lookup("cyrus")
	if err != nil {
		return 0, 0, fmt.Errorf("cyruslab: %w", err)
	}
	g := u.Gid
	if mg, err := user.LookupGroup("mail"); err == nil {
		g = mg.Gid
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(g)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("cyruslab: ids of cyrus:mail: %w", err)
	}
	return uid, gid, nil
}

// Chown gives dir and everything below it to cyrus:mail, as Cyrus's tools
// expect of a spool and configdirectory they open.
func Chown(dir string) error { return chownTree(dir) }

// chownTree gives dir and everything below it to cyrus:mail.
func chownTree(dir string) error {
	uid, gid, err := cyrusIDs()
	if err != nil {
		return err
	}
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("cyruslab: chown %s: %w", dir, err)
	}
	return nil
}

// writeFile writes a small file whole.
func writeFile(name string, b []byte, perm os.FileMode) error {
	if err := os.WriteFile(name, b, perm); err != nil {
		return fmt.Errorf("cyruslab: %w", err)
	}
	return nil
}

// NewTempDir makes a fresh 0755 directory that the user cyrus can reach,
// under os.TempDir, /var/tmp or /tmp; the caller removes it.
func NewTempDir() (string, error) {
	var errs []error
	for _, base := range []string{os.TempDir(), "/var/tmp", "/tmp"} {
		dir, err := os.MkdirTemp(base, "cyruslab-")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Chmod(dir, 0o755); err == nil && reachableByCyrus(dir) {
			return dir, nil
		}
		os.Remove(dir)
		errs = append(errs, errors.New(filepath.Clean(base)+" is not reachable by user cyrus"))
	}
	return "", errors.Join(append([]error{errors.New("cyruslab: no directory for a lab")}, errs...)...)
}

// reachableByCyrus reports whether the user cyrus can enter dir.
func reachableByCyrus(dir string) bool {
	runuser, err := lookPath("runuser")
	if err != nil {
		return false
	}
	return exec.Command(runuser, "-u", "cyrus", "--", "test", "-x", dir).Run() == nil
}
