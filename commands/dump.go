package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/urfave/cli/v2"
)

func init() { subcommands = append(subcommands, newDumpCommand) }

type dumpOptions struct {
	config    string
	output    string
	users     []string
	mailboxes []string
	all       bool
	noDeleted bool
	compress  string
	quiet     bool
}

func newDumpCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "dump",
		Usage:     "serialise whole mailboxes from a Cyrus partition into a dump file",
		ArgsUsage: "[MAILBOX...]",
		Description: "Writes the selected users' mailboxes (every mailbox they own, their seen db,\n" +
			"subscriptions and quota roots) and/or single mailboxes, by Cyrus internal name\n" +
			"(user.alice.Sent, example.com!user.alice), as Cyrus replication commands with\n" +
			"every message file embedded once and re-hashed as it is read. Cyrus may keep\n" +
			"running: each mailbox is read as one committed state.\n\n" +
			"A name ending in .zst, or --compress zstd, writes zstd. The file is written\n" +
			"under a temporary name and renamed when complete. Messages that are missing\n" +
			"or damaged on disk are reported and skipped; the run then exits 3.\n\n" +
			"EXAMPLES:\n" +
			"   mbtool dump -C /etc/imapd.conf --user alice -o /backup/alice.dlist.zst\n" +
			"   mbtool dump --user alice -o - | ssh newhost mbtool restore -\n" +
			"   MBTOOL_PASSWORD=... mbtool dump --server mail1 --tls --user alice -o alice.dlist\n\n" +
			"With --server the same dump is pulled from a running Cyrus over its replication\n" +
			"protocol instead (see docs/server.md); -C is not needed.",
		Flags: append([]cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write the dump to `FILE` (- for standard output, never a terminal)"},
			&cli.StringSliceFlag{Name: "user", Aliases: []string{"u"}, Usage: "dump every mailbox of `USER` (repeatable)"},
			&cli.BoolFlag{Name: "all", Usage: "dump every user"},
			&cli.BoolFlag{Name: "no-deleted", Usage: "leave out the users' deleted folders (DELETED.user.*, kept by Cyrus's delayed delete), which are dumped with a user by default"},
			&cli.StringFlag{Name: "compress", Usage: "compression: zstd or none (default: zstd when FILE ends in .zst)"},
			repoFlag("add a snapshot of the users to the backup repository `DIR` (made if new or empty)"),
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 1, Usage: "with --repo: dump `N` users at once"},
			lockWaitFlag("with --repo: while a prune holds the repository, wait up to `DURATION` (e.g. 2h) for it to finish instead of failing"),
		}, serverFlags()...),
		Action: func(c *cli.Context) error {
			args, err := positional(c)
			if err != nil {
				return err
			}
			opts := dumpOptions{
				config:    configPath(c),
				output:    c.String("output"),
				users:     c.StringSlice("user"),
				mailboxes: args,
				all:       c.Bool("all"),
				noDeleted: c.Bool("no-deleted"),
				compress:  c.String("compress"),
				quiet:     e.quiet(),
			}
			e.out.Mode, e.out.Config = "partition", opts.config
			if c.String("repo") != "" { // commands/repo.go
				if !c.IsSet("output") {
					opts.output = ""
				}
				e.out.Mode, e.out.Output = "repo", c.String("repo")
				return runDumpRepo(c.Context, e, opts, dumpRepoFrom(c))
			}
			e.out.Output = opts.output
			if opts.output == "-" {
				e.dataOnStdout()
			}
			if c.String("server") != "" { // commands/server.go
				e.out.Mode, e.out.Server = "server", c.String("server")
				return runDumpServer(c.Context, e, opts, serverOptionsFrom(c))
			}
			return runDump(c.Context, e, opts)
		},
	}
}

// dumpCompression decides from --compress and the output's name whether
// to write zstd, refusing the contradictions: plain text under a .zst
// name, or --all together with a selection.
func dumpCompression(o dumpOptions) (bool, error) {
	if o.all && (len(o.users) > 0 || len(o.mailboxes) > 0) {
		return false, &hintError{err: &usageError{msg: "--all dumps every user: it cannot be combined with --user or mailbox arguments"},
			hint: "give either --all, or the users and mailboxes to dump"}
	}
	zst := strings.HasSuffix(o.output, ".zst")
	switch o.compress {
	case "":
		return zst, nil
	case "zstd":
		return true, nil
	case "none":
		if zst {
			return false, &hintError{err: &usageError{msg: fmt.Sprintf("--compress none would write plain text under the name %s", o.output)},
				hint: "drop --compress none, or name the file without .zst"}
		}
		return false, nil
	}
	return false, usagef("--compress %q: use zstd or none", o.compress)
}

func runDump(ctx context.Context, e *env, o dumpOptions) error {
	if !o.all && len(o.users) == 0 && len(o.mailboxes) == 0 {
		return &hintError{err: &usageError{msg: "nothing to dump"},
			hint: "name users with --user, mailboxes as arguments, or dump every user with --all"}
	}
	compress, err := dumpCompression(o)
	if err != nil {
		return err
	}
	spool, err := openSpoolOf(o.config)
	if err != nil {
		return err
	}
	out, err := createOutput(e, o.output)
	if err != nil {
		return err
	}
	defer out.abort()

	bar := newProgress(e.stderr, o.quiet, "dump")
	var plan func(dump.Progress)
	if bar.shown() {
		// Totals cost the plan a read of every index header; without a
		// bar it reads only as many as it takes to know the highest
		// index version.
		plan = func(p dump.Progress) { bar.plan(p.Mailboxes, p.Messages, p.Bytes) }
	}
	start := time.Now()
	sum, err := dump.Run(ctx, spool, out.w, dump.Options{
		Users:     o.users,
		Mailboxes: o.mailboxes,
		All:       o.all,
		NoDeleted: o.noDeleted,
		Compress:  compress,
		Version:   version(),
		Plan:      plan,
		Progress:  func(p dump.Progress) { bar.set(p.Mailboxes, p.Messages, p.Bytes) },
	})
	bar.finish()
	if err != nil {
		if errors.Is(err, dump.ErrNoSelection) {
			return usagef("%v", err)
		}
		var nf *dump.NotFoundError
		if errors.As(err, &nf) {
			return &hintError{err: &usageError{msg: err.Error()},
				hint: "nothing was written; users are named as in Cyrus (alice, or alice@example.com with virtdomains), mailboxes by internal name (user.alice.Sent)"}
		}
		if o.output != "-" && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
			return &hintError{err: err, hint: "the output's file system is full; nothing was kept under " + o.output}
		}
		return lostReader(err, o.output)
	}
	e.out.SkippedAtDump = count(sum.Skipped)
	return reportDump(e, o, out, sum.Counts, sum.Records, sum.Problems, "", deletedNote(e, sum), start)
}

// reportDump ends a dump, offline or from a server: a warning per
// problem, the summary, and the outcome. A dump in which no mailbox could
// be dumped is a failure (exit 1) and is not kept under its name: a file
// that verifies as "OK: 0 mailboxes" must not stand for a backup. Else it
// is committed, with exit 3 if anything was left out.
func reportDump[P fmt.Stringer](e *env, o dumpOptions, out *output, c dumpfile.Counts, records int64, problems []P, from, note string, start time.Time) error {
	for _, p := range problems {
		e.warnf("%s", p)
	}
	failed := c.Mailboxes == 0 && len(problems) > 0
	if failed {
		out.abort()
	} else if err := out.commit(); err != nil {
		return err
	}
	dest := o.output
	if dest == "-" {
		dest = "standard output"
	}
	if from != "" {
		from = " from " + from
	}
	e.out.Mailboxes, e.out.Messages, e.out.Bytes, e.out.Records = c.Mailboxes, c.Messages, c.Bytes, records
	if failed {
		kept := "no file was written"
		if o.output == "-" {
			kept = "what went to standard output holds no mailbox"
		}
		return &hintError{err: &exitError{code: ExitFailure, err: fmt.Errorf("nothing could be dumped: %d item(s) failed, see the warnings above; %s", len(problems), kept)},
			hint: "mbtool reads as Cyrus does, taking its locks: run it as root or as the cyrus user"}
	}
	e.done("dumped %d mailboxes%s, %d messages (%s) of %d records%s to %s in %s",
		c.Mailboxes, note, c.Messages, humanBytes(c.Bytes), records, from, dest, time.Since(start).Round(time.Millisecond))
	if n := len(problems); n > 0 {
		return &exitError{code: ExitPartial, err: fmt.Errorf("%d item(s) could not be dumped; see the warnings above", n)}
	}
	return nil
}

// deletedNote says, for the summary line, which deleted folders
// (delayed delete) a dump of users included or left out; the same offline
// and with --server.
func deletedNote(e *env, sum *dump.Summary) string {
	switch {
	case sum.Deleted > 0:
		e.out.Deleted = count(sum.Deleted)
		return fmt.Sprintf(" (%d of them deleted folders, DELETED.*)", sum.Deleted)
	case sum.DeletedLeftOut > 0:
		return fmt.Sprintf(" (%d deleted folders left out)", sum.DeletedLeftOut)
	}
	return ""
}
