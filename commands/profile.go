package commands

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts the profiles that MBTOOL_CPUPROFILE,
// MBTOOL_MEMPROFILE, MBTOOL_BLOCKPROFILE, MBTOOL_MUTEXPROFILE and
// MBTOOL_TRACE ask for (developer aids: see docs/benchmarks.md). The
// returned function writes them; it reports failures to stderr and never
// changes the run's outcome.
func startProfiles(stderr io.Writer) (stop func()) {
	cpuPath, memPath := os.Getenv("MBTOOL_CPUPROFILE"), os.Getenv("MBTOOL_MEMPROFILE")
	blockPath, mutexPath := os.Getenv("MBTOOL_BLOCKPROFILE"), os.Getenv("MBTOOL_MUTEXPROFILE")
	tracePath := os.Getenv("MBTOOL_TRACE")
	var cpu, tr *os.File
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
	if tracePath != "" {
		// The execution trace shows where a run waits (go tool trace
		// -pprof=net, sync, syscall or sched).
		f, err := os.Create(tracePath)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mbtool: MBTOOL_TRACE: %v\n", err)
		} else {
			tr = f
		}
	}
	if memPath != "" {
		runtime.MemProfileRate = 64 << 10
	}
	if blockPath != "" {
		runtime.SetBlockProfileRate(10_000) // one sample per 10 µs blocked
	}
	if mutexPath != "" {
		runtime.SetMutexProfileFraction(10)
	}
	write := func(env, path, profile string) {
		if path == "" {
			return
		}
		f, err := os.Create(path)
		if err == nil {
			err = pprof.Lookup(profile).WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "mbtool: %s: %v\n", env, err)
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if tr != nil {
			trace.Stop()
			tr.Close()
		}
		write("MBTOOL_MEMPROFILE", memPath, "allocs")
		write("MBTOOL_BLOCKPROFILE", blockPath, "block")
		write("MBTOOL_MUTEXPROFILE", mutexPath, "mutex")
	}
}
