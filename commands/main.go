package commands

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Main runs mbtool as a process: Run with a context that the first SIGINT
// or SIGTERM cancels. It returns the exit code for os.Exit.
//
// The first signal asks the command to stop cleanly (temporary files
// removed, locks released, exit 130). After it the default action is back,
// so a second signal ends mbtool at once, even one stuck writing to a pipe
// that nobody reads.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if os.Getenv("GOGC") == "" {
		// mbtool streams: its live heap is a few fixed buffers plus one
		// GUID per message. Collecting at 50% growth instead of Go's 100%
		// keeps peak RSS well under 64 MiB on a 100,000-message run. (A
		// fixed soft memory limit did too, but made the collector run
		// without pause once a million messages' GUIDs outgrew it.) GOGC
		// overrides it.
		debug.SetGCPercent(50)
	}
	// A reader of standard output that goes away (mbtool export | ssh
	// host ..., the connection lost) makes the next write fail with
	// EPIPE, which the command reports (exit 1), instead of Go's default
	// for standard output: ending mbtool silently by SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	defer startProfiles(stderr)()
	return Run(ctx, args, stdin, stdout, stderr)
}
