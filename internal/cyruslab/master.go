package cyruslab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mbtool/mbtool/internal/loopback"
)

// ErrRunning is returned by Launch when the lab's master already runs.
var ErrRunning = errors.New("cyruslab: already running")

// Timeouts for starting and stopping an instance.
const (
	startTimeout = 20 * time.Second
	stopTimeout  = 15 * time.Second
)

func (l *Lab) pidFile() string { return l.path("run", "master.pid") }

// MasterLog is the file that receives the master's stdout and stderr.
func (l *Lab) MasterLog() string { return l.path("run", "master.err") }

// Launch starts the lab's Cyrus master and waits until IMAP, LMTP (and
// sync_server) answer. Unless detach is set, the master is tied to this
// process: it receives SIGTERM when this process dies. With detach it runs
// on in its own session after this process exits (the command does that);
// Shutdown finds it again through its pid file.
func (l *Lab) Launch(detach bool) error {
	if pid, ok := l.runningPID(); ok {
		return fmt.Errorf("%w: %s (pid %d)", ErrRunning, l.Dir, pid)
	}
	_ = os.Remove(l.pidFile())
	logf, err := os.OpenFile(l.MasterLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cyruslab: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(l.Bin, "master"), "-C", l.Conf, "-M", l.MasterConf, "-p", l.pidFile())
	cmd.Env = l.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if !detach {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	m, err := loopback.Start(cmd)
	if err != nil {
		return fmt.Errorf("cyruslab: starting master of %s: %w", l.Dir, err)
	}
	if err := l.waitReady(m); err != nil {
		m.Kill()
		return err
	}
	if detach {
		// The Wait goroutine reaps the master should it exit while this
		// process still runs; nothing else refers to it.
		return nil
	}
	l.master = m
	return nil
}

// waitReady polls until every service of the lab answers, or the master
// exits, or startTimeout passes.
func (l *Lab) waitReady(m *loopback.Child) error {
	addrs := []string{l.IMAPAddr}
	for _, a := range []string{l.SyncAddr, l.SieveAddr} {
		if a != "" {
			addrs = append(addrs, a)
		}
	}
	// Another lab could have grabbed a port between freePort and the
	// master's bind: WaitServing requires that our master holds it.
	switch err := m.WaitServing(addrs, func() bool { return fileExists(l.LMTPSocket) }, startTimeout); {
	case errors.Is(err, loopback.ErrExited):
		return fmt.Errorf("cyruslab: master of %s exited during start: %s%s", l.Dir, tail(l.MasterLog()), l.syslogHint())
	case err != nil:
		return fmt.Errorf("cyruslab: master of %s did not come up in %v: %s%s", l.Dir, startTimeout, tail(l.MasterLog()), l.syslogHint())
	}
	return nil
}

// Running reports whether the lab's master runs.
func (l *Lab) Running() bool {
	_, ok := l.runningPID()
	return ok
}

// runningPID returns the pid of the lab's live master: this process's own
// child, or the one named by the pid file if that process's command line
// names this lab's imapd.conf.
func (l *Lab) runningPID() (int, bool) {
	if l.master != nil {
		return l.master.Pid(), l.master.Running()
	}
	b, err := os.ReadFile(l.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !l.ownsProcess(pid) {
		return 0, false
	}
	return pid, true
}

// ownsProcess reports whether the live process pid was started with this
// lab's imapd.conf on its command line (the master and every service).
func (l *Lab) ownsProcess(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, arg := range bytes.Split(b, []byte{0}) {
		if string(arg) == l.Conf {
			return true
		}
	}
	return false
}

// processes returns the pids of live processes started with this lab's
// imapd.conf: the master and its services.
func (l *Lab) processes() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if l.ownsProcess(pid) && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// zombie reports whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// Shutdown stops the lab's master with SIGTERM (master stops its services)
// and waits until no process of the lab is left, so the files under Dir are
// quiescent when it returns. Processes that outlive stopTimeout are killed.
// Shutting down a stopped lab does nothing.
func (l *Lab) Shutdown() error {
	if pid, ok := l.runningPID(); ok {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if l.master != nil {
		l.master.WaitOrKill(stopTimeout)
		l.master = nil
	}
	// Services (and a detached master) are not our children: poll.
	deadline := time.Now().Add(stopTimeout)
	for {
		pids := l.processes()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
			if pids = l.processes(); len(pids) > 0 {
				return fmt.Errorf("cyruslab: processes %v of %s survive SIGKILL", pids, l.Dir)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(l.pidFile())
	return nil
}

// syslogHint names the syslog file for error messages, if there is one.
func (l *Lab) syslogHint() string {
	if l.SyslogFile == "" {
		return ""
	}
	return "; see " + l.SyslogFile + ": " + tail(l.SyslogFile)
}

// tail returns the last few lines of a log file, for error messages.
func tail(name string) string { return loopback.Tail(name, 5) }

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
