// Command cyruslab runs a private Cyrus IMAP instance under one directory,
// for humans and scripts; tests use package cyruslab directly.
//
// Usage:
//
//	cyruslab start [-legacy-dirs] [-sync] DIR   create DIR if needed and start Cyrus
//	cyruslab populate DIR                       fill it with the standard content
//	cyruslab stop DIR                           stop it and wait for every process
//	cyruslab env DIR                            print shell exports (eval "$(cyruslab env DIR)")
//
// Options of start take effect when DIR is created. Cyrus must be installed
// in /usr/lib/cyrus/bin and the command must run as root; DIR must be
// reachable by the user cyrus (not under /root). Exit status: 0 ok,
// 1 failure, 2 usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mbtool/mbtool/internal/cyruslab"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: cyruslab start [-legacy-dirs] [-sync] DIR
       cyruslab populate DIR
       cyruslab stop DIR
       cyruslab env DIR
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("cyruslab "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts cyruslab.Options
	if args[0] == "start" {
		fs.BoolVar(&opts.LegacyDirs, "legacy-dirs", false, "name-based mailbox directories (mailbox_legacy_dirs: yes)")
		fs.BoolVar(&opts.SyncPort, "sync", false, "also run a sync_server on a loopback port")
	}
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	dir := fs.Arg(0)
	var err error
	switch args[0] {
	case "start":
		err = start(dir, opts, stdout)
	case "populate":
		err = populate(dir, stdout)
	case "stop":
		err = stop(dir, stdout)
	case "env":
		err = env(dir, stdout)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "cyruslab: error: %v\n", err)
		return 1
	}
	return 0
}

func start(dir string, opts cyruslab.Options, stdout io.Writer) error {
	lab, err := cyruslab.Open(dir)
	if errors.Is(err, cyruslab.ErrNotLab) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		lab, err = cyruslab.Create(dir, opts)
	}
	if err != nil {
		return err
	}
	if lab.Running() {
		fmt.Fprintf(stdout, "already running: imap %s\n", lab.IMAPAddr)
		return nil
	}
	if err := lab.Launch(true); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "started: imap %s, lmtp %s\n", lab.IMAPAddr, lab.LMTPSocket)
	return nil
}

func populate(dir string, stdout io.Writer) error {
	lab, err := cyruslab.Open(dir)
	if err != nil {
		return err
	}
	if !lab.Running() {
		return fmt.Errorf("%s is not running; run: cyruslab start %s", lab.Dir, dir)
	}
	if err := lab.Fill(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "populated: users alice, bob (carol is empty)")
	return nil
}

func stop(dir string, stdout io.Writer) error {
	lab, err := cyruslab.Open(dir)
	if err != nil {
		return err
	}
	if !lab.Running() {
		fmt.Fprintln(stdout, "not running")
	}
	if err := lab.Shutdown(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}

func env(dir string, stdout io.Writer) error {
	lab, err := cyruslab.Open(dir)
	if err != nil {
		return err
	}
	host, port := splitAddr(lab.IMAPAddr)
	_, syncPort := splitAddr(lab.SyncAddr)
	vars := [][2]string{
		{"CYRUS_LAB", lab.Dir}, {"CYRUS_CONF", lab.Conf}, {"CYRUS_PARTITION", lab.Partition},
		{"CYRUS_CONFIGDIR", lab.ConfigDir}, {"CYRUS_IMAP_HOST", host}, {"CYRUS_IMAP_PORT", port},
		{"CYRUS_SYNC_PORT", syncPort}, {"CYRUS_LMTP_SOCKET", lab.LMTPSocket},
		{"CYRUS_ADMIN", lab.Admin}, {"CYRUS_PASSWORD", lab.Password}, {"CYRUS_BIN", lab.Bin},
		{"CYRUS_SYSLOG", lab.SyslogFile},
	}
	for _, v := range vars {
		fmt.Fprintf(stdout, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	fmt.Fprintf(stdout, "export PATH=\"$PATH\":%s\n", shellQuote(filepath.Clean(lab.Bin)))
	return nil
}

func splitAddr(addr string) (host, port string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	out := "'"
	for _, c := range s {
		if c == '\'' {
			out += `'\''`
		} else {
			out += string(c)
		}
	}
	return out + "'"
}
