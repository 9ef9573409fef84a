// Package cyrustool runs Cyrus's own programs against a spool, as the user
// Cyrus runs as. mbtool writes Cyrus's files itself wherever their format
// is a fact it can reproduce; some state, though, is derived by Cyrus's
// code from the mailboxes and written only by it, in formats that change
// with Cyrus's internals (the conversations database: its counts, folder
// numbers and message-id map; the archive partition's placement by
// Cyrus's archive policy and the archive cache). For those, the only
// exact writer is Cyrus, and restore asks it (docs/restore.md).
package cyrustool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mbtool/mbtool/cyrusfs"
)

// ErrNotFound is returned when no directory holds the program.
var ErrNotFound = errors.New("Cyrus program not found")

// Dirs are where distributions install Cyrus's programs, searched in
// order when no directory is given: Debian and Ubuntu, Fedora and RHEL,
// SUSE, and the source build's defaults.
var Dirs = []string{
	"/usr/lib/cyrus/bin",
	"/usr/libexec/cyrus-imapd",
	"/usr/lib/cyrus-imapd",
	"/usr/local/libexec/cyrus-imapd",
	"/usr/cyrus/bin",
}

// maxOutput bounds what a program's stdout and stderr are kept of.
const maxOutput = 64 << 10

// Runner runs Cyrus programs for one imapd.conf.
type Runner struct {
	// Dir holds the programs; "" searches Dirs.
	Dir string
	// Conf is the imapd.conf passed as -C.
	Conf string
	// Owner is the user and group the programs run as: Cyrus's tools
	// refuse to run as root. UID -1 runs them as the current user.
	Owner cyrusfs.Owner
}

// Path returns the program name's path: in r.Dir, or in the first of
// Dirs that has it.
func (r Runner) Path(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("cyrustool: bad program name %q", name)
	}
	dirs := Dirs
	if r.Dir != "" {
		dirs = []string{r.Dir}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("cyrustool: %w", err)
		}
	}
	return "", fmt.Errorf("%w: %s in %s (give the directory with --cyrus-bin)", ErrNotFound, name, strings.Join(dirs, ", "))
}

// Run runs the program name with -C r.Conf and args, and returns its
// standard output (at most 64 KiB are kept). A failure names the program,
// its arguments, its exit status and what it wrote to stderr.
func (r Runner) Run(ctx context.Context, name string, args ...string) (string, error) {
	p, err := r.Path(name)
	if err != nil {
		return "", err
	}
	if r.Conf == "" {
		return "", fmt.Errorf("cyrustool: %s: no imapd.conf file to pass it", name)
	}
	conf, err := filepath.Abs(r.Conf)
	if err != nil {
		return "", fmt.Errorf("cyrustool: %w", err)
	}
	argv := append([]string{"-C", conf}, args...)
	cmd := exec.CommandContext(ctx, p, argv...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.Dir = "/"
	if r.Owner.UID >= 0 && r.Owner.UID != os.Geteuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(r.Owner.UID), Gid: uint32(r.Owner.GID), Groups: []uint32{},
		}}
	}
	var out, errb limited
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := fmt.Sprintf("%s %s: %v", name, strings.Join(argv, " "), err)
		if s := strings.TrimSpace(errb.String()); s != "" {
			msg += ": " + s
		}
		return out.String(), errors.New(msg)
	}
	return out.String(), nil
}

// limited keeps the first maxOutput bytes written to it. (Not an
// embedded bytes.Buffer: its ReadFrom would be used and read everything.)
type limited struct{ b bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if room := maxOutput - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

func (l *limited) String() string { return l.b.String() }
