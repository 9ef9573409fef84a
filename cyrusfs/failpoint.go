package cyrusfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// EnvKillAt names the environment variable of the testing hook: "N" makes
// the process kill itself with SIGKILL at the N-th step this package
// takes, "KIND:N" at the N-th step of that kind. The kinds are the points
// between system calls where a crash must leave a tree that a rerun
// repairs: "create" (before a file is made), "chown" (made, owner not yet
// set), "owned" (owner and mode set, no name yet), "link" (before it gets
// its name), "linked", "mkdir" (before a directory is made), "rename"
// (before a rename, exchange or hard link), "renamed".
const EnvKillAt = "MBTOOL_CYRUSFS_KILL_AT"

// EnvTrace names the environment variable of the other testing hook: set
// to a file name, every step is appended to that file as a line "KIND N
// PATH" (the N-th step of that kind, at PATH), so that a test can choose
// where to kill.
const EnvTrace = "MBTOOL_CYRUSFS_TRACE"

// StepKinds lists the kinds of steps, for tests.
var StepKinds = []string{"create", "chown", "owned", "link", "linked", "mkdir", "rename", "renamed"}

var (
	killKind string
	killAt   int64
	steps    atomic.Int64
	trace    = os.Getenv(EnvTrace)
	traceMu  sync.Mutex
	kinds    = map[string]int{}
)

func init() {
	v := os.Getenv(EnvKillAt)
	if k, n, ok := strings.Cut(v, ":"); ok {
		killKind, v = k, n
	}
	killAt, _ = strconv.ParseInt(v, 10, 64)
}

// tracing reports whether a testing hook is set, so that a caller builds
// the path of a step only then.
func tracing() bool { return trace != "" || killAt > 0 }

// step marks a point of the given kind between two system calls, about
// path.
func step(kind, path string) {
	if trace != "" {
		traceStep(kind, path)
	}
	if killAt <= 0 || killKind != "" && kind != killKind {
		return
	}
	if steps.Add(1) == killAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // until the signal lands
	}
}

func traceStep(kind, path string) {
	traceMu.Lock()
	defer traceMu.Unlock()
	kinds[kind]++
	f, err := os.OpenFile(trace, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %d %s\n", kind, kinds[kind], path)
	f.Close()
}

// stepAt is step about name in d, its path joined only when a testing
// hook is set.
func stepAt(kind string, d *Dir, name string) {
	if tracing() {
		step(kind, d.Join(name))
	}
}
