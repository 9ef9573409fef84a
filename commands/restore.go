package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mbtool/mbtool/mboxname"
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
	users     []string // --user
	mailboxes []string // --mailbox
	sel       *mboxname.Selector
	dryRun    bool
	replace   bool
	quiet     bool
	undeleteOptions
	cyrusBin string
	unsealed bool // the dump is restore --repo's in-process export (restore.Options.Unsealed)
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
			&cli.StringSliceFlag{Name: "mailbox", Usage: "restore only mailbox `NAME` or PATTERN (* and %; user.alice.Sent, alice/Sent, or INBOX/Sent with --user; UTF-8 or modified UTF-7; repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "check the dump and print what would be done; write nothing"},
			&cli.BoolFlag{Name: "replace", Usage: "replace existing mailboxes (each atomically) instead of refusing them"},
			&cli.StringFlag{Name: "cyrus-bin", Usage: "Cyrus's programs are in `DIR` (run for conversations and the archive partition; default: where distributions put them)"},
			repoFlag("restore from the backup repository `DIR` (with --user, and --at or --snapshot)"),
			&cli.StringSliceFlag{Name: "user", Aliases: []string{"u"}, Usage: "restore only the mailboxes of `USER` (repeatable; with --repo: the user to restore)"},
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
				users:     c.StringSlice("user"),
				mailboxes: c.StringSlice("mailbox"),
				dryRun:    c.Bool("dry-run"),
				replace:   c.Bool("replace"),
				cyrusBin:  c.String("cyrus-bin"),
				quiet:     e.quiet(),
			}
			if o.sel, err = mboxname.NewSelector(o.users, o.mailboxes); err != nil {
				return &hintError{err: &usageError{msg: err.Error()}, hint: "see 'Choosing what to restore' in docs/restore.md"}
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
	users, err := mapUsers(o.mapUsers)
	if err != nil {
		return err
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
	rep := newRestoreReport(e, o, bar)
	sum, err := restore.Run(ctx, spool, counted, restore.Options{
		Partition: o.partition,
		MapUsers:  users,
		Select:    o.sel,
		DryRun:    o.dryRun,
		Replace:   o.replace,
		Undelete:  o.undelete,
		Into:      o.into,
		Messages:  o.messages,
		CyrusBin:  o.cyrusBin,
		Unsealed:  o.unsealed,
		Progress:  func(p restore.Progress) { bar.set(p.Mailboxes, p.Messages, counted.n.Load()) },
		Report:    rep.mailbox,
	})
	bar.finish()
	if err != nil {
		if err := selectionError(err, noMatchHint); err != nil {
			return err
		}
		if errors.Is(err, restore.ErrUnsafeName) || errors.Is(err, restore.ErrPartition) {
			return &hintError{err: err, hint: "the target was not changed; check the dump's origin, or choose a partition with --partition"}
		}
		if sum != nil && sum.Began {
			return rep.stopped(sum, start, err)
		}
		return err
	}
	return rep.finish(sum, start, false)
}

// mapUsers parses the --map-user OLD=NEW flags of either restore.
func mapUsers(flags []string) (map[string]string, error) {
	users := make(map[string]string)
	for _, m := range flags {
		old, nu, ok := strings.Cut(m, "=")
		if !ok || old == "" || nu == "" {
			return nil, usagef("--map-user %q: use OLD=NEW", m)
		}
		if _, dup := users[old]; dup {
			return nil, usagef("--map-user %s given twice", old)
		}
		users[old] = nu
	}
	return users, nil
}

// restoreReport prints what a restore did, offline and with --server
// alike: the dry-run plan, the warnings, one summary line (finish, which
// returns the exit status they call for). Both restores give it each
// mailbox's report at the end of the run (restore.Options.Report,
// remote.RestoreOptions.Report), so that nothing holds a line per
// mailbox; what it keeps is per problem, not per mailbox.
type restoreReport struct {
	e   *env
	o   restoreOptions
	bar *progress // finished before the first line is printed

	begun bool
	// hasProblem: the items of the run's problems; unmatched counts the
	// problems of each item no refused mailbox has accounted for.
	hasProblem map[string]bool
	unmatched  map[string]int

	// A mailbox counts as done when it was applied (or, in a dry run,
	// would be); one to create, replace or merge that was not applied is
	// refused, with its Problem as the reason.
	done, refused, msgs, added int64
	counts                     map[result.Action]int64
	merged                     int   // mailboxes merged into, applied or not
	mergeAdded                 int64 // the messages added to them
}

func newRestoreReport(e *env, o restoreOptions, bar *progress) *restoreReport {
	return &restoreReport{e: e, o: o, bar: bar, hasProblem: map[string]bool{}, unmatched: map[string]int{},
		counts: map[result.Action]int64{}}
}

// begin prints the warnings of the run's problems, once they are all
// known: before the first mailbox, or at the end.
func (r *restoreReport) begin(sum *result.Summary) {
	if r.begun {
		return
	}
	r.begun = true
	if r.bar != nil {
		r.bar.finish()
	}
	for _, p := range sum.Problems {
		r.e.warnf("%s", p)
		r.hasProblem[p.Item] = true
		r.unmatched[p.Item]++
	}
}

// mailbox reports one mailbox, in the dump's order.
func (r *restoreReport) mailbox(sum *result.Summary, m result.Mailbox) {
	r.begin(sum)
	e, o := r.e, r.o
	if o.dryRun && !e.rep.json {
		fmt.Fprintln(e.stdout, describe(m))
	}
	a := m.Action
	switch a {
	case result.Create, result.Replace, result.Merge:
		if !o.dryRun && !m.Applied {
			a = result.Refuse
			break
		}
		r.done++
		if a == result.Merge {
			// The messages added to it, not all it holds.
			r.added += m.Added
			r.msgs += m.Added
		} else {
			r.msgs += m.Messages
		}
	case result.Refuse:
		if (!o.dryRun || e.rep.json) && !r.hasProblem[m.Name] {
			e.warnf("%s: refused: %s", m.Name, m.Reason)
		}
	}
	if a == result.Refuse {
		r.refused++
		// Each refused mailbox counts once, with or without its Problem;
		// the problems of any other (kept, applied, skipped) count each.
		delete(r.unmatched, m.Name)
	}
	r.counts[a]++
	if m.Action == result.Merge { // a line per mailbox merged into
		r.merged++
		r.mergeAdded += m.Added
		if !o.dryRun && !e.rep.json {
			fmt.Fprintln(e.stdout, describeMerge(m, false))
		}
	}
}

// finish prints the summary line and returns the exit status. stopped:
// the run ended early on an error, which the caller reports; the summary
// still says what was applied.
func (r *restoreReport) finish(sum *result.Summary, start time.Time, stopped bool) error {
	r.begin(sum)
	e, o, counts := r.e, r.o, r.counts
	verb := "restored"
	if o.dryRun {
		verb = "would restore"
	}
	e.out.Mailboxes, e.out.Messages = r.done, r.msgs
	if !o.dryRun {
		e.out.Bytes = sum.Bytes
	}
	e.out.Created, e.out.Replaced, e.out.Merged = count(int(counts[result.Create])), count(int(counts[result.Replace])), count(int(counts[result.Merge]))
	e.out.Refused, e.out.Present, e.out.Excluded = count(int(r.refused)), count(int(counts[result.Keep])), count(int(counts[result.Skip]))
	if r.merged > 0 {
		e.out.Merged, e.out.Added = count(r.merged), &r.mergeAdded
	}
	if counts[result.Merge] > 0 {
		e.out.Added = &r.added
	}
	if stopped && o.quiet {
		e.rep.quiet = false // what was applied before the stop is always said
	}
	e.done("%s %d mailboxes, %d messages (%d created, %d replaced, %d merged, %d refused, %d already present, %d skipped) from a dump of %d mailboxes, %d message files (%s) in %s",
		verb, r.done, r.msgs, counts[result.Create], counts[result.Replace], counts[result.Merge], r.refused,
		counts[result.Keep], counts[result.Skip],
		sum.Dump.Mailboxes, sum.Dump.Messages, humanBytes(sum.Dump.Bytes), time.Since(start).Round(time.Millisecond))
	if stopped {
		return nil
	}
	n := r.refused
	for _, k := range r.unmatched {
		n += int64(k)
	}
	if n > 0 {
		return &exitError{code: ExitPartial, err: fmt.Errorf("%d mailbox(es) or item(s) not restored as dumped; see the warnings above", n)}
	}
	return nil
}

// stopped prints the summary of a run that stopped on err after it began
// to change the target (result.Summary.Began), offline and with --server
// alike, and returns err saying so.
func (r *restoreReport) stopped(sum *result.Summary, start time.Time, err error) error {
	r.finish(sum, start, true)
	return fmt.Errorf("%w (stopped; the summary above says what was applied)", err)
}

// describe is one line of the dry-run report, offline and with --server.
func describe(m result.Mailbox) string {
	if m.Action == result.Merge {
		return describeMerge(m, true)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %s", m.Action, m.Name)
	if m.Source != m.Name {
		fmt.Fprintf(&b, " (from %s)", m.Source)
	}
	switch m.Action {
	case result.Create, result.Replace: // a merge is describeMerge's
		fmt.Fprintf(&b, ": partition %s, uniqueid %s", m.Partition, m.UniqueID)
		switch m.IDFrom {
		case result.IDNew:
			b.WriteString(" (new: the dump's is in use)")
		case result.IDTarget:
			b.WriteString(" (the target's, which stays)")
		}
		fmt.Fprintf(&b, ", %d messages, %d records", m.Messages, m.Records)
		if m.Action == result.Replace && m.Reason != "" {
			fmt.Fprintf(&b, "; %s", m.Reason) // what the replace does: docs/restore.md, "Invariants"
		}
		if m.Err != nil {
			fmt.Fprintf(&b, "; cannot be applied: %v", m.Err)
		}
	default:
		fmt.Fprintf(&b, ": %s", m.Reason)
	}
	return b.String()
}

// selectionError returns the usage error (exit 2) for a --user or
// --mailbox that selects nothing in the dump, with hint, or nil for any
// other error.
func selectionError(err error, hint string) error {
	var nm *mboxname.NoMatchError
	if !errors.As(err, &nm) {
		return nil
	}
	return &exitError{code: ExitUsage, err: &hintError{err: err, hint: hint}}
}

// noMatchHint is the hint of a restore whose selection matched nothing.
const noMatchHint = "nothing was restored; 'mbtool list FILE' shows the dump's users and mailboxes"
