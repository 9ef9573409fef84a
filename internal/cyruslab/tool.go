package cyruslab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrToolName is returned for a tool name that is not a plain file name.
var ErrToolName = errors.New("cyruslab: bad tool name")

// Command prepares the Cyrus program name (from Bin, e.g. "mbexamine") with
// "-C <Conf>" and args, to run as the user cyrus through runuser, with the
// lab's syslog shim. The caller may set Stdin, Stdout and Stderr. Cyrus
// tools work whether or not the lab's master runs; some (ctl_mboxlist -u,
// reconstruct of a new mailbox) should only be used while it is stopped.
func (l *Lab) Command(name string, args ...string) (*exec.Cmd, error) {
	cmd, err := ToolCommand(l.Conf, name, args...)
	if err != nil {
		return nil, err
	}
	cmd.Env = l.env()
	cmd.Dir = l.Dir
	return cmd, nil
}

// ToolCommand prepares the Cyrus program name from DefaultBin with
// "-C conf" and args, to run as the user cyrus through runuser. It serves
// Cyrus trees that are not labs, such as an unpacked fixture (which must be
// owned by cyrus; see Chown).
func ToolCommand(conf, name string, args ...string) (*exec.Cmd, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("%w: %q", ErrToolName, name)
	}
	runuser, err := lookPath("runuser")
	if err != nil {
		return nil, fmt.Errorf("cyruslab: %w", err)
	}
	argv := append([]string{"-u", "cyrus", "--", filepath.Join(DefaultBin, name), "-C", conf}, args...)
	return exec.Command(runuser, argv...), nil
}

// ToolError is the error of a Cyrus tool that failed; it carries what the
// tool wrote to stderr.
type ToolError struct {
	Args   []string // the tool and its arguments, without runuser and -C
	Stderr string
	Err    error // from exec: usually an *exec.ExitError
}

// Error names the tool, its exit status and what it wrote to stderr.
func (e *ToolError) Error() string {
	msg := fmt.Sprintf("cyruslab: %s: %v", strings.Join(e.Args, " "), e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Unwrap returns the exec error.
func (e *ToolError) Unwrap() error { return e.Err }

// RunTool runs a Cyrus tool as Command does, with stdin as its input (nil
// for none), and returns its stdout. A failure (an exit status other than 0)
// is a *ToolError carrying stderr.
func (l *Lab) RunTool(stdin io.Reader, name string, args ...string) (string, error) {
	cmd, err := l.Command(name, args...)
	if err != nil {
		return "", err
	}
	return runTool(cmd, stdin, name, args)
}

// RunToolConf is RunTool for any imapd.conf (see ToolCommand).
func RunToolConf(conf string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd, err := ToolCommand(conf, name, args...)
	if err != nil {
		return "", err
	}
	return runTool(cmd, stdin, name, args)
}

func runTool(cmd *exec.Cmd, stdin io.Reader, name string, args []string) (string, error) {
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &ToolError{Args: append([]string{name}, args...), Stderr: errb.String(), Err: err}
	}
	return out.String(), nil
}
