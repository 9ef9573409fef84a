package cyrusfs

import (
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// EnvKillAt names the environment variable of the testing hook: set to N,
// the process kills itself with SIGKILL at the N-th step of this package.
const EnvKillAt = "MBTOOL_CYRUSFS_KILL_AT"

var (
	killAt, _ = strconv.ParseInt(os.Getenv(EnvKillAt), 10, 64)
	steps     atomic.Int64
)

// step marks a point between two system calls where a kill must leave the
// tree in a state a rerun repairs.
func step() {
	if killAt <= 0 {
		return
	}
	if steps.Add(1) == killAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // until the signal lands
	}
}
