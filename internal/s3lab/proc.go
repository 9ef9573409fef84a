package s3lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	name  string   // for messages: "master", "volume 2", "s3"
	bin   string   // the weed binary
	args  []string // weed's arguments, subcommand first
	dir   string   // working directory (weed reads *.toml from it)
	log   string   // stdout and stderr
	addrs []string // loopback addresses it must listen on to be up
	child *loopback.Child
}

// start starts the process and waits until it listens on every one of its
// addresses (not some other process that took the port meanwhile), or
// exits, or startTimeout passes. The process gets SIGKILL should this
// process die first.
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
	if p.child, err = loopback.Start(cmd); err != nil {
		return fmt.Errorf("s3lab: starting %s: %w", p.name, err)
	}
	switch err := p.child.WaitServing(p.addrs, nil, startTimeout); {
	case errors.Is(err, loopback.ErrExited):
		msg := tail(p.log)
		if strings.Contains(msg, "address already in use") {
			return fmt.Errorf("%w: %s exited during start: %s", errPortTaken, p.name, msg)
		}
		return fmt.Errorf("s3lab: %s exited during start: %s", p.name, msg)
	case err != nil:
		p.kill()
		return fmt.Errorf("s3lab: %s did not listen on %v within %v: %s", p.name, p.addrs, startTimeout, tail(p.log))
	}
	return nil
}

// running reports whether the process runs.
func (p *proc) running() bool { return p.child != nil && p.child.Running() }

// stop stops the process with SIGTERM, or SIGKILL after stopTimeout, and
// waits for it. Stopping a stopped process does nothing.
func (p *proc) stop() {
	if p.running() {
		p.child.Stop(stopTimeout)
	}
}

// kill kills the process with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill() {
	if p.running() {
		p.child.Kill()
	}
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
func tail(name string) string { return loopback.Tail(name, 8) }

// errPortTaken is wrapped by start errors that look like a port another
// process took between FreePort and the server's bind; the caller retries
// with new ports.
var errPortTaken = errors.New("s3lab: a port was taken")
