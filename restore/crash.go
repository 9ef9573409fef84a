package restore

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

// EnvCrashAt names the environment variable of a testing hook: set to N,
// the process kills itself with SIGKILL at the N-th crash point of the
// commit phase, to show that a run killed there leaves the target
// consistent. Unset or 0 disables it.
const EnvCrashAt = "MBTOOL_RESTORE_CRASH_AT"

var (
	crashAt, _ = strconv.Atoi(os.Getenv(EnvCrashAt))
	crashes    int
)

// crashPoint is a place where a kill must leave the target consistent.
func crashPoint() {
	if crashAt <= 0 {
		return
	}
	crashes++
	if crashes == crashAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // until the signal lands
	}
}
