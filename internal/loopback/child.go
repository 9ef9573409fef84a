package loopback

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Child is a server process that this process started and reaps.
type Child struct {
	Cmd    *exec.Cmd
	exited chan struct{} // closed when Cmd.Wait returns
}

// Start starts cmd, whose output and process attributes the caller has
// set, and reaps it when it exits.
func Start(cmd *exec.Cmd) (*Child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.exited) }()
	return c, nil
}

// Pid returns the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Running reports whether the child runs.
func (c *Child) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Kill kills the child with SIGKILL, as a crash would, and waits for it.
func (c *Child) Kill() {
	_ = c.Cmd.Process.Kill()
	<-c.exited
}

// Stop sends the child SIGTERM, or SIGKILL if it has not exited after
// timeout, and waits for it.
func (c *Child) Stop(timeout time.Duration) {
	_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	c.WaitOrKill(timeout)
}

// WaitOrKill waits for the child to exit, killing it with SIGKILL if it
// has not after timeout.
func (c *Child) WaitOrKill(timeout time.Duration) {
	select {
	case <-c.exited:
	case <-time.After(timeout):
		c.Kill()
	}
}

// ErrExited and ErrTimeout say why WaitServing gave up.
var (
	ErrExited  = errors.New("loopback: the server exited")
	ErrTimeout = errors.New("loopback: the server did not serve in time")
)

// WaitServing polls until the child serves every one of addrs (see
// Serves: it holds each listener and accepts a connection) and ready,
// if not nil, holds. It returns ErrExited if the child exits first, and
// ErrTimeout once timeout has passed.
func (c *Child) WaitServing(addrs []string, ready func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !c.Running() {
			return ErrExited
		}
		if (ready == nil || ready()) && Serves(c.Pid(), addrs) {
			return nil
		}
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Tail returns the last n lines of a server's log file joined by " | ",
// for error messages.
func Tail(name string, n int) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return "(no " + filepath.Base(name) + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if s := strings.Join(lines, " | "); s != "" {
		return s
	}
	return "(" + filepath.Base(name) + " is empty)"
}
