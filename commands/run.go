// Package commands is mbtool's command-line interface: flag parsing, help,
// the exit-code table and error printing. The work itself lives in the
// packages it calls (dump, restore, verify, seencleanup); only this package
// knows about flags and terminals.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/partition"
	"github.com/urfave/cli/v2"
)

// Exit codes. Scripts may rely on them; they are printed in every command's
// help under EXIT STATUS.
const (
	ExitOK          = 0   // success
	ExitFailure     = 1   // failure, including verify finding damage or differences
	ExitUsage       = 2   // bad command line, or a command that could not start
	ExitPartial     = 3   // finished, but some items were skipped; each was reported
	ExitInterrupted = 130 // interrupted by SIGINT or SIGTERM
)

const exitStatusHelp = `EXIT STATUS:
   0    success
   1    failure (for verify: damage or differences found)
   2    usage error
   3    partial: finished, but some items were skipped (each one reported)
   130  interrupted (SIGINT or SIGTERM)
`

// DefaultConfig is the imapd.conf used when -C is not given, as for Cyrus's
// own tools.
const DefaultConfig = "/etc/imapd.conf"

// Version is mbtool's version. Release builds set it with
// -ldflags "-X github.com/mbtool/mbtool/commands.Version=v1.2.3"; otherwise
// it comes from the module build information.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// usageError is a command-line mistake: exit 2, with a hint to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries an explicit exit code (for example ExitPartial) together
// with the error or summary that explains it.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// hintError adds a "mbtool: hint: ..." line under the error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func init() {
	// urfave/cli's documented way to rename its built-in version flag; -v
	// stays free for subcommands.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "print the version and exit"}
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprint(c.App.Writer, versionText()) }
}

// versionText is what --version prints: the version, then what the build
// information says of the module, the source revision and the toolchain,
// and what mbtool reads and writes.
func versionText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mbtool %s\n", version())
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(&b, "module:    %s %s\n", bi.Main.Path, bi.Main.Version)
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			fmt.Fprintf(&b, "revision:  %s", rev)
			if t := settings["vcs.time"]; t != "" {
				fmt.Fprintf(&b, " (%s)", t)
			}
			if settings["vcs.modified"] == "true" {
				b.WriteString(" with uncommitted changes")
			}
			b.WriteString("\n")
		} else {
			b.WriteString("revision:  unknown (not built from a version-controlled checkout)\n")
		}
		fmt.Fprintf(&b, "go:        %s %s/%s\n", bi.GoVersion, settings["GOOS"], settings["GOARCH"])
	}
	fmt.Fprintf(&b, "cyrus:     Cyrus IMAP 3.6 spools; reads cyrus.index versions %d to %d, writes version %d\n",
		partition.MinIndexVersion, partition.MaxIndexVersion, partition.MaxIndexVersion)
	fmt.Fprintf(&b, "dump:      format %d (docs/format.md)\n", dumpfile.FormatVersion)
	return b.String()
}

// subcommands lists the constructors of every subcommand. Each subcommand's
// file adds itself in an init function, so the frame knows none of them.
var subcommands []func(*env) *cli.Command

// env is what a subcommand's action gets besides its flags: the streams Run
// was given.
type env struct {
	s3             s3Settings // --s3-* (storage.go)
	stdin          io.Reader
	stdout, stderr io.Writer
	out            *Outcome  // the run's summary (outcome.go)
	rep            reporting // --json, --syslog, --quiet
}

// Run runs mbtool with the given arguments (args[0] is the program name) and
// returns the process exit code. It never calls os.Exit.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr,
		out: &Outcome{Version: version(), Started: time.Now()}}
	e.rep.summaryTo = stdout
	app := newApp(e)
	pa := interspersed(app, args)
	name := ""
	completing := len(args) > 0 && args[len(args)-1] == "--generate-bash-completion"
	if pa.command != nil && !setupCommands[pa.command.Name] && !completing {
		name = pa.command.Name
		e.out.Command = name
		e.rep.json, e.rep.syslog, e.rep.quiet = pa.has("json"), pa.has("syslog"), pa.has("quiet", "q")
		if pa.has("help", "h") {
			e.rep.json, e.rep.syslog = false, false
		}
	}
	err := app.RunContext(ctx, pa.args)
	code := report(ctx, stderr, err, name)
	if name != "" {
		if e.rep.syslog && !e.rep.logTried {
			conf := e.rep.config
			if conf == "" {
				conf = DefaultConfig // the command did not start: -C unknown
			}
			e.rep.log = openSyslog(conf, stderr)
		}
		e.finish(code, err)
	}
	return code
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:      "mbtool",
		Usage:     "back up, move and verify Cyrus IMAP mailboxes as Cyrus dlist streams",
		UsageText: "mbtool [global options] command [command options] [arguments...]",
		Version:   version(),
		Description: "mbtool reads and writes Cyrus IMAP 3.6 spools and databases byte for byte.\n" +
			"Its dump files are sequences of Cyrus replication commands (dlist).",
		Reader:                e.stdin,
		Writer:                e.stdout,
		ErrWriter:             e.stderr,
		HideHelpCommand:       true,
		EnableBashCompletion:  true, // for mbtool completion (shell.go)
		ExitErrHandler:        func(*cli.Context, error) {},
		OnUsageError:          onUsageError,
		CustomAppHelpTemplate: cli.AppHelpTemplate + "\n" + exitStatusHelp,
		Flags:                 []cli.Flag{configFlag()},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	for _, mk := range subcommands {
		cmd := mk(e)
		for _, f := range reportFlags() {
			if !setupCommands[cmd.Name] && !hasFlag(cmd, f.Names()[0]) {
				cmd.Flags = append(cmd.Flags, f)
			}
		}
		if storageCommands[cmd.Name] {
			cmd.Flags = append(cmd.Flags, storageFlags()...)
		}
		cmd.Before = func(c *cli.Context) error {
			if storageCommands[c.Command.Name] {
				e.s3.set(c)
			}
			e.rep.config = configPath(c)
			if e.rep.syslog {
				e.rep.log, e.rep.logTried = openSyslog(e.rep.config, e.stderr), true
			}
			return nil
		}
		cmd.OnUsageError = onUsageError
		cmd.CustomHelpTemplate = cli.CommandHelpTemplate + "\n" + exitStatusHelp
		app.Commands = append(app.Commands, cmd)
	}
	return app
}

func configFlag() cli.Flag {
	return &cli.StringFlag{
		Name:      "config",
		Aliases:   []string{"C"},
		Usage:     "Cyrus imapd.conf to read (default " + DefaultConfig + ")",
		TakesFile: true,
	}
}

// configPath returns the -C value given to the command or, failing that, to
// mbtool itself, else DefaultConfig.
func configPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if cc.Command != nil || cc.App != nil {
			if v := cc.String("config"); v != "" {
				return v
			}
		}
	}
	return DefaultConfig
}

func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// positional returns the command's arguments. Flags may come after them:
// Run moved them before (see interspersed); what still starts with a dash
// followed "--".
func positional(c *cli.Context) ([]string, error) {
	return c.Args().Slice(), nil
}

func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	return &usageError{msg: err.Error()}
}

// report prints err the mbtool way and returns the exit code for it.
// cmd names the subcommand, for the hint to its --help.
func report(ctx context.Context, stderr io.Writer, err error, cmd string) int {
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	var ee *exitError
	var he *hintError
	code := ExitFailure
	switch {
	case errors.As(err, &ue):
		code = ExitUsage
	case errors.As(err, &ee):
		code = ee.code
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		code = ExitInterrupted
	}
	if code == ExitInterrupted {
		fmt.Fprintln(stderr, "mbtool: interrupted")
		return code
	}
	fmt.Fprintf(stderr, "mbtool: error: %v\n", err)
	if errors.As(err, &he) && he.hint != "" {
		fmt.Fprintf(stderr, "mbtool: hint: %s\n", he.hint)
	} else if code == ExitUsage {
		help := "mbtool --help"
		if cmd != "" {
			help = "mbtool " + cmd + " --help"
		}
		fmt.Fprintf(stderr, "mbtool: hint: run '%s' for usage\n", help)
	}
	return code
}
