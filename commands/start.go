package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/s3store"
)

// What a command needs before it can start: the Cyrus spool of an
// imapd.conf, a dump to read, a file to write. One rule for every command
// (docs/errors.md): a file or name given on the command line, or the
// default imapd.conf, that cannot be used means the command could not
// start: exit 2, nothing written, the message naming the file and, for a
// path that comes from a configuration, which imapd.conf it came from.

// couldNotRun marks a failure that means the command did not start its
// work: exit 2, with a hint.
func couldNotRun(err error, hint string) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	switch {
	case errors.Is(err, dumpfile.ErrNotDump):
		hint = "mbtool reads the files that mbtool dump writes"
	case errors.Is(err, dumpfile.ErrVersion):
		hint = "the dump was written by a newer mbtool; use that version"
	}
	return &exitError{code: ExitUsage, err: &hintError{err: err, hint: hint}}
}

// openSpoolOf opens the Cyrus spool of the imapd.conf at path. An error
// says which imapd.conf led to it, and that -C names another.
func openSpoolOf(path string) (*partition.Spool, error) {
	which := path
	if path == DefaultConfig {
		which = path + ", the default"
	}
	hint := "name the Cyrus configuration with -C FILE (default " + DefaultConfig + ")"
	cfg, err := partition.LoadConfig(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && path == DefaultConfig {
			err = fmt.Errorf("no Cyrus configuration at %s, the default", path)
		}
		return nil, couldNotRun(err, hint)
	}
	spool, err := partition.Open(cfg)
	if err != nil {
		return nil, couldNotRun(fmt.Errorf("%w (as configured in %s)", err, which), hint+"; check configdirectory and partition-* there")
	}
	return spool, nil
}

// openInput opens the dump to read: a file, or standard input for "-".
// It returns the file's size for the progress bar (-1 when unknown). A
// file that cannot be opened, or is a directory, could not be read at
// all (exit 2).
func openInput(e *env, name string) (io.Reader, int64, func(), error) {
	stdin := e.stdin
	if s3store.IsURL(name) {
		return e.openS3Input(name) // storage.go
	}
	if name == "-" {
		if isTerminal(stdin) {
			return nil, 0, nil, couldNotRun(errors.New("refusing to read a dump from a terminal"),
				"redirect standard input from a dump, or name the file")
		}
		return stdin, -1, func() {}, nil
	}
	const hint = "name a dump file, or - for standard input"
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, nil, couldNotRun(err, hint)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, couldNotRun(err, hint)
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, nil, couldNotRun(fmt.Errorf("%s is a directory, not a dump", name), hint)
	}
	size := int64(-1)
	if fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, func() { f.Close() }, nil
}
