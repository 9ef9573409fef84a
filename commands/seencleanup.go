package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mbtool/mbtool/seencleanup"
	"github.com/urfave/cli/v2"
)

func init() { subcommands = append(subcommands, newSeenCleanupCommand) }

type seenCleanupOptions struct {
	config       string
	users        []string
	all          bool
	delete       bool
	undoFile     string
	pruneOrphans bool
}

// undoTimeFormat names default undo files: seen-undo-20260102T150405Z.dlist.
const undoTimeFormat = "20060102T150405Z"

func newSeenCleanupCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "seen-cleanup",
		Usage:     "remove users' stale seen records for their own mailboxes (cyr_userseen -d)",
		ArgsUsage: " ",
		Description: "From cyrus.index version 12 on, a mailbox owner's \\Seen state lives in the\n" +
			"mailbox's index; records a user's seen db still holds for the user's own mailboxes are\n" +
			"dead leftovers. This command lists them, one line per record on standard output:\n\n" +
			"   stale<TAB>user<TAB>mailbox<TAB>uniqueid<TAB>value\n\n" +
			"Records of mailboxes that no longer exist are listed as \"orphan\" (mailbox \"-\" when not\n" +
			"even a tombstone names it). A summary line follows. Records for other users' mailboxes\n" +
			"and shared ones are never touched, nor those of mailboxes whose index is older than\n" +
			"version 12. Nothing changes without --delete.\n\n" +
			"With --delete the stale records (and, with --prune-orphans, the orphans) are first\n" +
			"written to an undo file, an mbtool dump of APPLY SEEN commands (mbtool restore replays\n" +
			"it), which is synced to disk; then each seen db is changed atomically under its lock,\n" +
			"as Cyrus itself does, so Cyrus may keep running. The undo file defaults to\n" +
			"seen-undo-<UTC time>.dlist in the current directory; an existing file is never\n" +
			"overwritten. A damaged seen db or an unreadable mailbox is reported, left untouched,\n" +
			"and the run goes on (exit 3).\n\n" +
			"EXAMPLES:\n" +
			"   mbtool seen-cleanup -C /etc/imapd.conf --all\n" +
			"   mbtool seen-cleanup --user alice --delete --undo-file /root/alice-seen-undo.dlist",
		Flags: []cli.Flag{
			configFlag(),
			&cli.StringSliceFlag{Name: "user", Aliases: []string{"u"}, Usage: "examine the seen db of `USER` (repeatable)"},
			&cli.BoolFlag{Name: "all", Usage: "examine the seen db of every user owning a mailbox or having a seen db"},
			&cli.BoolFlag{Name: "delete", Usage: "remove the records listed; without it nothing changes"},
			&cli.StringFlag{Name: "undo-file", Usage: "with --delete, write the removed records to `FILE` (default seen-undo-<UTC time>.dlist)", TakesFile: true},
			&cli.BoolFlag{Name: "prune-orphans", Usage: "also remove records of mailboxes that no longer exist"},
		},
		Action: func(c *cli.Context) error {
			args, err := positional(c)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				return usagef("seen-cleanup takes no arguments (got %q); name users with --user", args[0])
			}
			e.out.Mode, e.out.Config = "partition", configPath(c)
			return runSeenCleanup(c.Context, e, seenCleanupOptions{
				config:       configPath(c),
				users:        c.StringSlice("user"),
				all:          c.Bool("all"),
				delete:       c.Bool("delete"),
				undoFile:     c.String("undo-file"),
				pruneOrphans: c.Bool("prune-orphans"),
			})
		},
	}
}

// defaultUndoFile names the undo file in the current directory after the
// time, with -2, -3 ... when a run in the same second took the name (the
// file is still created exclusively).
func defaultUndoFile(now time.Time) string {
	base := "seen-undo-" + now.UTC().Format(undoTimeFormat)
	name := base + ".dlist"
	for i := 2; i < 1000; i++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s-%d.dlist", base, i)
	}
	return name
}

func runSeenCleanup(ctx context.Context, e *env, o seenCleanupOptions) error {
	if !o.all && len(o.users) == 0 {
		return &hintError{err: &usageError{msg: "no users selected"},
			hint: "name users with --user, or examine every user with --all"}
	}
	if o.undoFile != "" && !o.delete {
		return usagef("--undo-file is only for --delete")
	}
	if o.delete && o.undoFile == "" {
		o.undoFile = defaultUndoFile(time.Now())
	}
	spool, err := openSpoolOf(o.config)
	if err != nil {
		return err
	}
	var listing io.Writer = e.stdout
	if e.rep.json {
		listing = io.Discard // the counts are in the JSON summary
	}
	sum, err := seencleanup.Run(ctx, spool, seencleanup.Options{
		Users:        o.users,
		All:          o.all,
		Delete:       o.delete,
		PruneOrphans: o.pruneOrphans,
		UndoFile:     o.undoFile,
		Version:      version(),
		Out:          listing,
	})
	if sum != nil {
		for _, p := range sum.Problems {
			e.warnf("%v", p)
		}
	}
	if err != nil {
		var uu *seencleanup.UnknownUsersError
		if errors.As(err, &uu) {
			return &hintError{err: &usageError{msg: err.Error()},
				hint: "nothing was changed; name users as Cyrus does (alice, or alice@example.com with virtdomains), or use --all"}
		}
		if errors.Is(err, seencleanup.ErrUndoExists) {
			return &hintError{err: &exitError{code: ExitUsage, err: err},
				hint: "an undo file is never overwritten; name a new one with --undo-file"}
		}
		if sum != nil && sum.Removed > 0 {
			fmt.Fprintf(e.stderr, "mbtool: note: %d records were removed; the undo file %s restores them\n", sum.Removed, sum.UndoFile)
		}
		return err
	}
	if !e.rep.json {
		fmt.Fprintf(e.stdout, "summary: %s\n", sum)
	}
	e.out.Summary = sum.String()
	e.out.Records = int64(sum.Records)
	e.out.Users, e.out.Stale, e.out.Orphans = int64(sum.Users), count(sum.Stale), count(sum.Orphans)
	if o.delete {
		e.out.Removed, e.out.UndoFile = count(sum.Removed), sum.UndoFile
		if sum.UndoFile == "" {
			e.done("nothing to remove; no undo file written")
		} else {
			e.done("removed %d seen records; to put them back: mbtool restore %s", sum.Removed, sum.UndoFile)
		}
	}
	if n := len(sum.Problems); n > 0 {
		return &exitError{code: ExitPartial, err: fmt.Errorf("%d item(s) skipped; see the warnings above", n)}
	}
	return nil
}
