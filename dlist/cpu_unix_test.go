//go:build unix

package dlist

import (
	"syscall"
	"time"
)

// cpuTime returns the process's user and system CPU time, for rates that
// hold on a machine shared with other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
