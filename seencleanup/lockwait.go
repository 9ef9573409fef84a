package seencleanup

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mbtool/mbtool/lock"
)

// openLocked is lock.OpenLocked (Cyrus's reopen-on-replace loop) waiting
// for the lock only until ctx is done: a seen db or index that Cyrus keeps
// locked must not make mbtool deaf to SIGINT. An uncontended lock is
// granted at once; a contended one is polled (lock.Wait).
func openLocked(ctx context.Context, path string, flag int, exclusive bool) (*os.File, error) {
	for range 100 {
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			return nil, err
		}
		if err := lock.Wait(ctx, f, exclusive); err != nil {
			f.Close()
			return nil, err
		}
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			return f, nil
		}
		f.Close()
		if err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			return nil, err2
		}
	}
	return nil, fmt.Errorf("lock %s: file keeps being replaced", path)
}
