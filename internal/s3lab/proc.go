package s3lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mbtool/mbtool/internal/loopback"
)

// Timeouts for starting and stopping a SeaweedFS server.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
)

// proc is one SeaweedFS server process that this process started: weed
// with a subcommand, its output appended to a log file.
type proc struct {
	name   string   // for messages: "master", "volume 2", "s3"
	bin    string   // the weed binary
	args   []string // weed's arguments, subcommand first
	dir    string   // working directory (weed reads *.toml from it)
	log    string   // stdout and stderr
	addrs  []string // loopback addresses it must listen on to be up
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returns
}

// start starts the process and waits until it listens on every one of its
// addresses, or exits, or startTimeout passes. The process gets SIGKILL
// should this process die first.
func (p *proc) start() error {
	logf, err := os.OpenFile(p.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("s3lab: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== s3lab: %s %s\n", p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	// No AWS_* or WEED_* settings of the caller reach the servers.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir, "TMPDIR=" + p.dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("s3lab: starting %s: %w", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if err := p.waitListening(); err != nil {
		p.kill()
		return err
	}
	return nil
}

// waitListening polls until the process holds a listener on each of its
// addresses (not some other process that took the port meanwhile).
func (p *proc) waitListening() error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.exited:
			msg := tail(p.log)
			if strings.Contains(msg, "address already in use") {
				return fmt.Errorf("%w: %s exited during start: %s", errPortTaken, p.name, msg)
			}
			return fmt.Errorf("s3lab: %s exited during start: %s", p.name, msg)
		default:
		}
		if loopback.Serves(p.cmd.Process.Pid, p.addrs) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("s3lab: %s did not listen on %v within %v: %s", p.name, p.addrs, startTimeout, tail(p.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running reports whether the process runs.
func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop stops the process with SIGTERM, or SIGKILL after stopTimeout, and
// waits for it. Stopping a stopped process does nothing.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.kill()
	}
}

// kill kills the process with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// freeAddrs returns n distinct free loopback addresses.
func freeAddrs(n int) ([]string, error) {
	seen := map[string]bool{}
	var addrs []string
	for len(addrs) < n {
		a, err := loopback.FreePort()
		if err != nil {
			return nil, fmt.Errorf("s3lab: %w", err)
		}
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// tail returns the last lines of a log file, for error messages.
func tail(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return "(no " + filepath.Base(name) + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	if s := strings.Join(lines, " | "); s != "" {
		return s
	}
	return "(" + filepath.Base(name) + " is empty)"
}

// errPortTaken is wrapped by start errors that look like a port another
// process took between FreePort and the server's bind; the caller retries
// with new ports.
var errPortTaken = errors.New("s3lab: a port was taken")
