package commands

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/remote"
	"github.com/mbtool/mbtool/syncproto"
	"github.com/urfave/cli/v2"
)

// DefaultPasswordEnv is the environment variable the password is read
// from when --password-file is not given.
const DefaultPasswordEnv = "MBTOOL_PASSWORD"

const authHint = "check --auth-user and the password; the login must be an admin of the server (admins: in its imapd.conf)"

// serverOptions are the flags of --server, shared by dump and restore.
type serverOptions struct {
	addr         string // HOST[:PORT]
	authUser     string
	passwordFile string
	passwordEnv  string
	tls          bool
	tlsCA        string
	insecure     bool
	noDeflate    bool
	timeout      time.Duration
}

// serverFlags returns the flags that make dump and restore talk to a
// running server instead of a partition.
func serverFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "server", Usage: "talk to a running Cyrus at `HOST[:PORT]` (sync_server, default port " +
			syncproto.DefaultPort + ", or imapd's replication commands) instead of reading or writing a partition"},
		&cli.StringFlag{Name: "auth-user", Value: "cyrus", Usage: "with --server: log in as `NAME`, an admin of the server"},
		&cli.StringFlag{Name: "password-file", Usage: "with --server: read the password from the first line of `FILE`", TakesFile: true},
		&cli.StringFlag{Name: "password-env", Value: DefaultPasswordEnv, Usage: "with --server: read the password from environment variable `NAME`"},
		&cli.BoolFlag{Name: "tls", Usage: "with --server: STARTTLS before logging in (required unless the server is on this host, or --insecure)"},
		&cli.StringFlag{Name: "tls-ca", Usage: "with --tls: trust the CA certificates in `FILE` (PEM) instead of the system's", TakesFile: true},
		&cli.BoolFlag{Name: "insecure", Usage: "with --server: allow a password in clear text to another host"},
		&cli.BoolFlag{Name: "no-deflate", Usage: "with --server: do not use COMPRESS DEFLATE on the connection"},
		&cli.DurationFlag{Name: "timeout", Value: syncproto.DefaultTimeout, Usage: "with --server: give up when connecting takes, or the server sends and takes nothing for, `DURATION`"},
	}
}

// serverOptionsFrom reads the --server flags.
func serverOptionsFrom(c *cli.Context) serverOptions {
	return serverOptions{
		addr:         c.String("server"),
		authUser:     c.String("auth-user"),
		passwordFile: c.String("password-file"),
		passwordEnv:  c.String("password-env"),
		tls:          c.Bool("tls"),
		tlsCA:        c.String("tls-ca"),
		insecure:     c.Bool("insecure"),
		noDeflate:    c.Bool("no-deflate"),
		timeout:      c.Duration("timeout"),
	}
}

// connector checks the --server flags and returns how to connect. It
// reads the password (never from the command line) and enforces TLS for
// a server on another host unless --insecure.
func (so serverOptions) connector() (remote.Connect, error) {
	addr := syncproto.WithPort(so.addr, syncproto.DefaultPort)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return nil, usagef("--server %q: use HOST or HOST:PORT", so.addr)
	}
	if so.authUser == "" {
		return nil, usagef("--auth-user is empty")
	}
	password, err := so.password()
	if err != nil {
		return nil, err
	}
	if so.timeout <= 0 {
		return nil, usagef("--timeout %s: give a positive duration, such as 5m", so.timeout)
	}
	cfg := syncproto.Config{AuthName: so.authUser, Password: password, Compress: !so.noDeflate, Timeout: so.timeout}
	switch {
	case so.tls:
		tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if so.tlsCA != "" {
			pem, err := os.ReadFile(so.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, usagef("--tls-ca %s: no PEM certificate in it", so.tlsCA)
			}
		}
		cfg.TLS = tc
	case so.tlsCA != "":
		return nil, usagef("--tls-ca needs --tls")
	case !so.insecure && !isLoopback(host):
		return nil, &hintError{err: &usageError{msg: fmt.Sprintf("refusing to send a password in clear text to %s", host)},
			hint: "use --tls (the server needs tls_server_cert and tls_server_key), or --insecure on a trusted network"}
	}
	return func(ctx context.Context) (*syncproto.Client, error) {
		return syncproto.Dial(ctx, addr, cfg)
	}, nil
}

// password reads the password from --password-file or the environment.
// Like ssh with a private key, it refuses a file that group or others may
// read or write, and it refuses an empty password.
func (so serverOptions) password() (string, error) {
	if so.passwordFile != "" {
		f, err := os.Open(so.passwordFile)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return "", &hintError{err: &usageError{msg: fmt.Sprintf("--password-file %s is open to group or others (mode %04o)", so.passwordFile, perm)},
				hint: "chmod 600 " + so.passwordFile}
		}
		if !fi.Mode().IsRegular() {
			return "", usagef("--password-file %s is not a regular file", so.passwordFile)
		}
		line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("--password-file %s: %w", so.passwordFile, err)
		}
		p := strings.TrimRight(line, "\r\n")
		if p == "" {
			return "", usagef("--password-file %s: the password (its first line) is empty", so.passwordFile)
		}
		return p, nil
	}
	if so.passwordEnv != "" {
		if p, ok := os.LookupEnv(so.passwordEnv); ok {
			if p == "" {
				return "", usagef("--password-env: environment variable %s is empty", so.passwordEnv)
			}
			return p, nil
		}
	}
	return "", &hintError{err: &usageError{msg: "--server needs a password"},
		hint: fmt.Sprintf("put it in a file for --password-file, or in the environment variable %s (--password-env); never on the command line", so.passwordEnv)}
}

// isLoopback reports whether host names this machine's loopback.
func isLoopback(host string) bool {
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return ip.IsLoopback()
	}
	if host != "localhost" && !strings.HasSuffix(host, ".localhost") {
		return false
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// spoolInput returns the dump to restore as a file that can be read twice:
// FILE itself when it is a regular file, else (standard input, a pipe) a
// temporary copy. cleanup removes the copy.
func spoolInput(e *env, input string) (f *os.File, cleanup func(), err error) {
	src, _, closeIn, err := openInput(e, input) // start.go: one rule for every command
	if err != nil {
		return nil, nil, err
	}
	if f, ok := src.(*os.File); ok && input != "-" {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return f, closeIn, nil
		}
	}
	defer closeIn()
	tmp, err := os.CreateTemp("", "mbtool-restore-*.dump")
	if err != nil {
		return nil, nil, fmt.Errorf("spooling the dump: %w", err)
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, src); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("spooling the dump to %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, err
	}
	return tmp, cleanup, nil
}

// runRestoreServer is restore --server: the dump is spooled if it comes
// from a pipe, checked whole, then sent to the server.
func runRestoreServer(ctx context.Context, e *env, o restoreOptions, so serverOptions) error {
	users, err := mapUsers(o.mapUsers)
	if err != nil {
		return err
	}
	connect, err := so.connector()
	if err != nil {
		return err
	}
	in, cleanup, err := spoolInput(e, o.input)
	if err != nil {
		return err
	}
	defer cleanup()

	bar := newProgress(e.stderr, o.quiet, "restore")
	start := time.Now()
	rep := newRestoreReport(e, o, bar)
	sum, err := remote.Restore(ctx, in, connect, remote.RestoreOptions{
		Partition: o.partition,
		MapUsers:  users,
		Select:    o.sel,
		DryRun:    o.dryRun,
		Replace:   o.replace,
		Undelete:  o.undelete,
		Into:      o.into,
		Messages:  o.messages,
		Progress: func(p remote.Progress) {
			if p.Phase == remote.PhaseSend {
				bar.set(p.Mailboxes, p.Messages, p.Bytes)
			}
		},
		Report: rep.mailbox,
	})
	bar.finish()
	if err == nil {
		err = ctx.Err() // interrupted while waiting for the answer to EXIT
	}
	if err != nil {
		if err := selectionError(err, noMatchHint); err != nil {
			return err
		}
		connected := sum != nil && sum.Began
		switch {
		case !connected && (errors.Is(err, remote.ErrDamaged) || errors.Is(err, remote.ErrUnsafeName)):
			return &hintError{err: err, hint: "nothing was sent to the server; `mbtool verify` tells more about the dump"}
		case errors.Is(err, syncproto.ErrAuth):
			return &hintError{err: err, hint: authHint}
		case connected:
			err = rep.stopped(sum, start, err)
			if errors.Is(err, remote.ErrChanged) {
				return &hintError{err: err, hint: "the command in flight was cut short, so the server applied nothing of it; run again with an unchanging dump"}
			}
		}
		return err
	}
	return rep.finish(sum, start, false)
}

// runDumpServer is dump --server: the same dump, pulled over the
// replication protocol.
func runDumpServer(ctx context.Context, e *env, o dumpOptions, so serverOptions) error {
	if o.all {
		return &hintError{err: &usageError{msg: "--all cannot be used with --server"},
			hint: "the replication protocol cannot list users: name them with --user"}
	}
	if len(o.users) == 0 && len(o.mailboxes) == 0 {
		return &hintError{err: &usageError{msg: "nothing to dump"},
			hint: "name users with --user, or mailboxes as arguments"}
	}
	compress, err := dumpCompression(o)
	if err != nil {
		return err
	}
	connect, err := so.connector()
	if err != nil {
		return err
	}
	out, err := createOutput(e, o.output)
	if err != nil {
		return err
	}
	defer out.abort()
	c, err := connect(ctx)
	if err != nil {
		if errors.Is(err, syncproto.ErrAuth) {
			return &hintError{err: err, hint: authHint}
		}
		return err
	}
	defer c.Close()

	bar := newProgress(e.stderr, o.quiet, "dump")
	start := time.Now()
	sum, err := remote.Dump(ctx, c, out.w, dump.Options{
		Users:     o.users,
		Mailboxes: o.mailboxes,
		NoDeleted: o.noDeleted,
		Compress:  compress,
		Host:      so.addr,
		Version:   version(),
		Progress:  func(p dump.Progress) { bar.set(p.Mailboxes, p.Messages, p.Bytes) },
	})
	bar.finish()
	if err != nil {
		if errors.Is(err, remote.ErrNoMailbox) {
			return &exitError{code: ExitFailure, err: err}
		}
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // interrupted while waiting for the answer to EXIT
	}
	return reportDump(e, o, out, sum.Counts, sum.Records, sum.Problems, so.addr, deletedNote(e, sum), start)
}
