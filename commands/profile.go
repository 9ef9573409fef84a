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
	// start opens path and starts a profile that writes into it.
	start := func(env, path string, begin func(io.Writer) error) *os.File {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err == nil {
			if err = begin(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "mbtool: %s: %v\n", env, err)
			return nil
		}
		return f
	}
	cpu := start("MBTOOL_CPUPROFILE", cpuPath, pprof.StartCPUProfile)
	// The execution trace shows where a run waits (go tool trace
	// -pprof=net, sync, syscall or sched).
	tr := start("MBTOOL_TRACE", tracePath, trace.Start)
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
