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
	if os.Getenv("GOMEMLIMIT") == "" {
		// mbtool streams: its live heap is a few fixed buffers plus one
		// GUID per message. A soft limit keeps the garbage collector from
		// letting the heap grow to twice that, so peak RSS stays well under
		// 64 MiB on large runs. GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(40 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return Run(ctx, args, stdin, stdout, stderr)
}
