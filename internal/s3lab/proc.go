package s3lab

import (
	"errors"
	"fmt"
	"io"
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
	from  int64 // where the output of the last start begins in log
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
	p.from = 0
	if fi, err := logf.Stat(); err == nil {
		p.from = fi.Size()
	}
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
		return p.exited()
	case err != nil:
		p.kill()
		return fmt.Errorf("s3lab: %s did not listen on %v within %v: %s", p.name, p.addrs, startTimeout, tail(p.log))
	}
	return nil
}

// exited returns the error for a process that exited while starting,
// naming the line of this start's output that says why (glog's fatal
// line, which comes before a dump of every goroutine's stack, or Go's
// panic line). It wraps errPortTaken when that line, or the log's last
// lines if there is none, says a port was in use: a bind that failed on
// an optional port and was only logged is not why a server stops.
func (p *proc) exited() error {
	reason := exitReason(since(p.log, p.from))
	msg := reason + tail(p.log)
	if strings.Contains(reason, "address already in use") || reason == "" && strings.Contains(msg, "address already in use") {
		return fmt.Errorf("%w: %s exited during start: %s", errPortTaken, p.name, msg)
	}
	return fmt.Errorf("s3lab: %s exited during start: %s", p.name, msg)
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

// since returns what the log file name holds from offset from on (at most
// 4 MiB of it).
func since(name string, from int64) string {
	f, err := os.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(io.NewSectionReader(f, from, 1<<62), 4<<20))
	return string(b)
}

// exitReason returns, followed by " | ", the first line of out that says
// why a weed server stopped: glog's fatal lines (glog.Fatalf, "F1202
// 12:00:00.000000 ...") and Go's "panic:" both come before a dump of every
// goroutine's stack, so the log's last lines never show them; "" if out
// has none.
func exitReason(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") ||
			len(line) > 5 && line[0] == 'F' && line[1] >= '0' && line[1] <= '9' && line[4] >= '0' && line[4] <= '9' {
			return strings.TrimSpace(line) + " | "
		}
	}
	return ""
}

// tail returns the last lines of a log file, for error messages.
func tail(name string) string { return loopback.Tail(name, 8) }

// errPortTaken is wrapped by start errors that look like a port another
// process took between FreePort and the server's bind; the caller retries
// with new ports.
var errPortTaken = errors.New("s3lab: a port was taken")
