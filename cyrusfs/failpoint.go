package cyrusfs

import (
	"os"
	"strconv"
	"strings"
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

// StepKinds lists the kinds of steps, for tests.
var StepKinds = []string{"create", "chown", "owned", "link", "linked", "mkdir", "rename", "renamed"}

var (
	killKind string
	killAt   int64
	steps    atomic.Int64
)

func init() {
	v := os.Getenv(EnvKillAt)
	if k, n, ok := strings.Cut(v, ":"); ok {
		killKind, v = k, n
	}
	killAt, _ = strconv.ParseInt(v, 10, 64)
}

// step marks a point of the given kind between two system calls.
func step(kind string) {
	if killAt <= 0 || killKind != "" && kind != killKind {
		return
	}
	if steps.Add(1) == killAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // until the signal lands
	}
}
