//go:build !unix

package dlist

import "time"

func cpuTime() time.Duration { return 0 }
