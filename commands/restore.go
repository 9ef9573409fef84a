package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mbtool/mbtool/restore"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/urfave/cli/v2"
)

func init() { subcommands = append(subcommands, newRestoreCommand) }

type restoreOptions struct {
	config    string
	input     string
	partition string
	mapUsers  []string
	mailboxes []string
	dryRun    bool
	replace   bool
	quiet     bool
	undeleteOptions
	cyrusBin string
}

func newRestoreCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "write the mailboxes of a dump into a Cyrus partition",
		ArgsUsage: "FILE|-",
		Description: "Reads a dump (plain or zstd, from FILE or - for standard input) and writes its\n" +
			"mailboxes into the Cyrus spool of imapd.conf: message files, cyrus.header,\n" +
			"cyrus.index (UIDs, MODSEQs, flags and dates as dumped), mailboxes.db entries,\n" +
			"annotations, quota roots, other users' seen state and subscriptions.\n\n" +
			"The whole dump is checked (every message re-hashed, the BLAKE3 trailer) while it\n" +
			"is staged inside the target partition; nothing becomes visible before that, and\n" +
			"a damaged dump leaves the target unchanged. Each mailbox then appears whole.\n" +
			"Cyrus may be running. Existing mailboxes are refused (exit 3) unless --replace,\n" +
			"which swaps each one atomically. Run as root (files are given to cyrus).\n\n" +
			"Cyrus rebuilds each restored mailbox's cache the first time it opens it; see\n" +
			"docs/restore.md for what to run afterwards.\n\n" +
			"EXAMPLES:\n" +
			"   mbtool restore -C /etc/imapd.conf alice.dlist.zst\n" +
			"   mbtool restore --map-user alice=carol --dry-run alice.dlist.zst\n" +
			"   mbtool dump --user alice -o - | ssh newhost mbtool restore -\n" +
			"   MBTOOL_PASSWORD=... mbtool restore --server newhost --tls alice.dlist.zst\n\n" +
			"With --server the dump is replayed to a running Cyrus over its replication\n" +
			"protocol instead (see docs/server.md); -C is not needed.",
		Flags: append([]cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "partition", Usage: "restore every mailbox into partition `NAME` (default: as in the dump)"},
			&cli.StringSliceFlag{Name: "map-user", Usage: "rename user `OLD=NEW`: mailboxes, ACLs, seen state, subscriptions (repeatable)"},
			&cli.StringSliceFlag{Name: "mailbox", Usage: "restore only mailbox `NAME` (as in the dump or renamed; repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "check the dump and print what would be done; write nothing"},
			&cli.BoolFlag{Name: "replace", Usage: "replace existing mailboxes (each atomically) instead of refusing them"},
			&cli.StringFlag{Name: "cyrus-bin", Usage: "Cyrus's programs are in `DIR` (run for conversations; default: where distributions put them)"},
			repoFlag("restore from the backup repository `DIR` (with --user, and --at or --snapshot)"),
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "with --repo: restore `USER`"},
			sharedFlag("with --repo: restore the shared mailboxes (those no user owns) instead of a user"),
		}, append(undeleteFlags(), append(snapshotFlags(), serverFlags()...)...)...),
		Action: func(c *cli.Context) error {
			args, err := positional(c)
			if err != nil {
				return err
			}
			if len(args) != 1 && c.String("repo") == "" {
				return &hintError{err: &usageError{msg: "restore needs exactly one dump FILE (or - for standard input)"},
					hint: "mbtool restore [options] FILE|-"}
			}
			o := restoreOptions{
				config:    configPath(c),
				input:     strings.Join(args, " "), // one FILE; none with --repo
				partition: c.String("partition"),
				mapUsers:  c.StringSlice("map-user"),
				mailboxes: c.StringSlice("mailbox"),
				dryRun:    c.Bool("dry-run"),
				replace:   c.Bool("replace"),
				cyrusBin:  c.String("cyrus-bin"),
				quiet:     e.quiet(),
			}
			if o.undeleteOptions, err = undeleteOptionsFrom(c, o.mailboxes); err != nil {
				return err
			}
			e.out.Mode, e.out.Input, e.out.DryRun, e.out.Config = "partition", o.input, o.dryRun, o.config
			restoreDump := runRestore
			if c.String("server") != "" { // commands/server.go
				so := serverOptionsFrom(c)
				e.out.Mode, e.out.Server, e.out.Config = "server", so.addr, ""
				restoreDump = func(ctx context.Context, e *env, o restoreOptions) error { return runRestoreServer(ctx, e, o, so) }
			}
			if c.String("repo") != "" { // commands/repo.go
				e.out.Input = c.String("repo")
				return runRestoreRepo(c.Context, e, o, repoRestoreFrom(c), restoreDump)
			}
			return restoreDump(c.Context, e, o)
		},
	}
}

func runRestore(ctx context.Context, e *env, o restoreOptions) error {
	users := make(map[string]string)
	for _, m := range o.mapUsers {
		old, nu, ok := strings.Cut(m, "=")
		if !ok || old == "" || nu == "" {
			return usagef("--map-user %q: use OLD=NEW", m)
		}
		if _, dup := users[old]; dup {
			return usagef("--map-user %s given twice", old)
		}
		users[old] = nu
	}
	spool, err := openSpoolOf(o.config)
	if err != nil {
		return err
	}
	in, size, closeIn, err := openInput(e, o.input)
	if err != nil {
		return err
	}
	defer closeIn()
	// A stalled pipe must not keep the first SIGINT waiting.
	counted := &countingReader{r: interruptible(ctx, in)}

	// The bar follows the bytes of the dump read, so that it has a
	// percentage and an estimate of the time left.
	bar := newProgress(e.stderr, o.quiet, "restore")
	bar.plan(0, 0, size)
	start := time.Now()
	sum, err := restore.Run(ctx, spool, counted, restore.Options{
		Partition: o.partition,
		MapUsers:  users,
		Mailboxes: o.mailboxes,
		DryRun:    o.dryRun,
		Replace:   o.replace,
		Undelete:  o.undelete,
		Into:      o.into,
		Messages:  o.messages,
		CyrusBin:  o.cyrusBin,
		Progress:  func(p restore.Progress) { bar.set(p.Mailboxes, p.Messages, counted.n.Load()) },
	})
	bar.finish()
	if err != nil {
		if errors.Is(err, restore.ErrUnsafeName) || errors.Is(err, restore.ErrPartition) {
			return &hintError{err: err, hint: "the target was not changed; check the dump's origin, or choose a partition with --partition"}
		}
		return err
	}
	if o.dryRun && !e.rep.json {
		for _, m := range sum.Mailboxes {
			fmt.Fprintln(e.stdout, describe(m))
		}
	}
	for _, p := range sum.Problems {
		e.warnf("%s", p)
	}
	refused := 0
	for _, m := range sum.Mailboxes {
		if m.Action == restore.ActionRefuse {
			refused++
			if !o.dryRun && !sum.HasProblem(m.Name) {
				e.warnf("%s: refused: %s", m.Name, m.Reason)
			}
		}
	}
	verb := "restored"
	if o.dryRun {
		verb = "would restore"
	}
	// The counts are of the work done: the messages of the mailboxes
	// created or replaced, not every message the dump holds.
	created, replaced := sum.Count(restore.ActionCreate), sum.Count(restore.ActionReplace)
	var msgs int64
	for _, m := range sum.Mailboxes {
		if m.Action == restore.ActionCreate || m.Action == restore.ActionReplace {
			msgs += m.Messages
		}
	}
	e.out.Mailboxes, e.out.Messages = int64(created+replaced), msgs
	e.out.Created, e.out.Replaced, e.out.Refused = count(created), count(replaced), count(refused)
	e.out.Present, e.out.Excluded = count(sum.Count(restore.ActionKeep)), count(sum.Count(restore.ActionSkip))
	if merged, added := reportMerges(e, o.dryRun, sum); merged > 0 {
		e.done("%s %d mailboxes, %d messages (%d created, %d replaced, %d merged with %d messages added, %d refused, %d already present, %d not selected) from a dump of %d mailboxes, %d message files (%s) in %s",
			verb, created+replaced+merged, msgs+added, created, replaced, merged, added, refused,
			sum.Count(restore.ActionKeep), sum.Count(restore.ActionSkip),
			sum.Dump.Mailboxes, sum.Dump.Messages, humanBytes(sum.Dump.Bytes), time.Since(start).Round(time.Millisecond))
	} else {
		e.done("%s %d mailboxes, %d messages (%d created, %d replaced, %d refused, %d already present, %d not selected) from a dump of %d mailboxes, %d message files (%s) in %s",
			verb, created+replaced, msgs, created, replaced, refused,
			sum.Count(restore.ActionKeep), sum.Count(restore.ActionSkip),
			sum.Dump.Mailboxes, sum.Dump.Messages, humanBytes(sum.Dump.Bytes), time.Since(start).Round(time.Millisecond))
	}
	// A refused mailbox has its Problem too (with the reason), unless it
	// was only reported above; count each once.
	n := len(sum.Problems)
	for _, m := range sum.Mailboxes {
		if m.Action == restore.ActionRefuse && !sum.HasProblem(m.Name) {
			n++
		}
	}
	if n > 0 {
		return &exitError{code: ExitPartial, err: fmt.Errorf("%d mailbox(es) or item(s) not restored as dumped; see the warnings above", n)}
	}
	return nil
}

// describe is one line of the dry-run report, offline and with --server.
func describe(m result.Mailbox) string {
	if m.Action == result.Merge {
		return describeMerge(m)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %s", m.Action, m.Name)
	if m.Source != m.Name {
		fmt.Fprintf(&b, " (from %s)", m.Source)
	}
	switch m.Action {
	case restore.ActionCreate, restore.ActionReplace:
		fmt.Fprintf(&b, ": partition %s, uniqueid %s", m.Partition, m.UniqueID)
		if m.NewUniqueID {
			b.WriteString(" (new)")
		}
		fmt.Fprintf(&b, ", %d messages, %d records", m.Messages, m.Records)
	default:
		fmt.Fprintf(&b, ": %s", m.Reason)
	}
	if (m.Action == result.Create || m.Action == result.Replace) && m.Err != nil {
		fmt.Fprintf(&b, "; cannot be applied: %v", m.Err)
	}
	return b.String()
}
