package commands

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiles starts the profiles that MBTOOL_CPUPROFILE and
// MBTOOL_MEMPROFILE ask for (developer aids: see docs/benchmarks.md). The
// returned function writes them; it reports failures to stderr and never
// changes the run's outcome.
func startProfiles(stderr io.Writer) (stop func()) {
	cpuPath, memPath := os.Getenv("MBTOOL_CPUPROFILE"), os.Getenv("MBTOOL_MEMPROFILE")
	var cpu *os.File
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mbtool: MBTOOL_CPUPROFILE: %v\n", err)
		} else {
			cpu = f
		}
	}
	if memPath != "" {
		runtime.MemProfileRate = 64 << 10
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if memPath != "" {
			f, err := os.Create(memPath)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				fmt.Fprintf(stderr, "mbtool: MBTOOL_MEMPROFILE: %v\n", err)
			}
		}
	}
}
