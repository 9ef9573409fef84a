package commands

import (
	"context"
	"io"
	"os"
	"os/signal"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return Run(ctx, args, stdin, stdout, stderr)
}
