package commands

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/repo"
	"github.com/urfave/cli/v2"
)

func init() { subcommands = append(subcommands, newPruneCommand, newUnlockCommand) }

func runVerifyRepo(ctx context.Context, e *env, dir string, readData, asJSON bool) error {
	start := time.Now()
	e.out.Mode, e.out.Input = "repo", dir
	r, err := openRepo(e, dir, false)
	if err != nil {
		return err // openRepo says what to do
	}
	sum, err := r.Check(ctx, repo.CheckOptions{ReadData: readData})
	if err != nil {
		return err
	}
	for _, f := range sum.Findings {
		if asJSON {
			if len(e.out.FirstFindings) < maxListed {
				e.out.FirstFindings = append(e.out.FirstFindings, jsonFinding{Kind: "repo", Path: f.File, Detail: f.Err.Error()})
			}
		} else {
			fmt.Fprintf(e.stdout, "%s\n", f)
		}
	}
	took := time.Since(start)
	e.out.Findings, e.out.Snapshots, e.out.Packs = count(len(sum.Findings)), count(sum.Snapshots), count(sum.Packs)
	e.out.Messages, e.out.Bytes = int64(sum.Files), int64(sum.BytesRead)
	e.out.SkippedAtDump = count(sum.Skipped)
	if !asJSON {
		what := "structure"
		if readData {
			what = fmt.Sprintf("structure and data (%s read)", humanBytes(sum.BytesRead))
		}
		status := "OK"
		switch {
		case len(sum.Findings) > 0:
			status = "DAMAGED"
		case sum.Skipped > 0:
			status = "PARTIAL"
		}
		fmt.Fprintf(e.stdout, "%s: %s: %s of %d snapshots, %d states, %d messages, %d packs, %d index files; %d finding(s) in %s\n",
			dir, status, what, sum.Snapshots, sum.States, sum.Files, sum.Packs, sum.IndexFiles, len(sum.Findings), took.Round(time.Millisecond))
		if n := sum.UnreferencedPacks + sum.UnreferencedStates; n > 0 {
			fmt.Fprintf(e.stdout, "%s: %d pack(s) and %d state(s) no snapshot needs (left by interrupted runs or forgotten snapshots; prune removes them)\n",
				dir, sum.UnreferencedPacks, sum.UnreferencedStates)
		}
	}
	if len(sum.Findings) > 0 {
		return &exitError{code: ExitFailure, err: fmt.Errorf("%d finding(s) in %s", len(sum.Findings), dir)}
	}
	if sum.Skipped > 0 {
		// As verify of a dump that records skipped items: intact, partial.
		return &exitError{code: ExitPartial, err: fmt.Errorf("%s: intact, but %d item(s) were skipped when its snapshots were taken (export shows the MBTOOL SKIPPED lines)", dir, sum.Skipped)}
	}
	return nil
}

func newPruneCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove old snapshots of a backup repository by a retention policy, and the data no snapshot needs",
		Description: "Keeps, per host and set of users, the latest --keep-last snapshots and the latest\n" +
			"snapshot of each of the last --keep-daily days, --keep-weekly ISO weeks and\n" +
			"--keep-monthly months that have snapshots (restic's and borg's meanings, in local\n" +
			"time); removes the other snapshots, then every message file, state and index\n" +
			"entry no kept snapshot refers to. Packs still partly used are rewritten, the\n" +
			"most unused first, until at most --max-unused of the repository is unused\n" +
			"(restic's meaning; 5% by default, so that the mail expunged a little every\n" +
			"night is freed as it adds up). Without a --keep flag no snapshot is removed,\n" +
			"only unreferenced data (for example that of an interrupted dump). Needs only\n" +
			"the repository; takes an exclusive lock, so no dump may run meanwhile.\n" +
			"--dry-run prints what would go and what stays.\n\n" +
			"EXAMPLES:\n" +
			"   mbtool prune --repo /backup/mail --keep-daily 7 --keep-weekly 5 --keep-monthly 12\n" +
			"   mbtool prune --repo /backup/mail --keep-daily 7 --dry-run",
		Flags: []cli.Flag{
			repoFlag("the repository `DIR`"),
			&cli.IntFlag{Name: "keep-last", Usage: "keep the last `N` snapshots"},
			&cli.IntFlag{Name: "keep-daily", Usage: "keep the latest snapshot of each of the last `N` days"},
			&cli.IntFlag{Name: "keep-weekly", Usage: "keep the latest snapshot of each of the last `N` weeks"},
			&cli.IntFlag{Name: "keep-monthly", Usage: "keep the latest snapshot of each of the last `N` months"},
			&cli.StringFlag{Name: "max-unused", Value: "5%", Usage: "rewrite partly used packs until at most `PERCENT` of the repository is unused (0%: every unused byte goes; unlimited: only wholly unused packs)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be removed and kept; change nothing"},
			lockWaitFlag("while dumps hold the repository, wait up to `DURATION` (e.g. 2h) for them to finish instead of failing"),
		},
		Action: func(c *cli.Context) error {
			args, err := positional(c)
			if err != nil {
				return err
			}
			if c.String("repo") == "" || len(args) > 0 {
				return usagef("prune needs --repo DIR and no arguments")
			}
			p := repo.Policy{Last: c.Int("keep-last"), Daily: c.Int("keep-daily"), Weekly: c.Int("keep-weekly"), Monthly: c.Int("keep-monthly")}
			if p.Last < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
				return usagef("--keep-* values must not be negative")
			}
			maxUnused, err := parseMaxUnused(c.String("max-unused"))
			if err != nil {
				return err
			}
			return runPrune(c.Context, e, c.String("repo"), repo.PruneOptions{Policy: p, MaxUnused: maxUnused,
				DryRun: c.Bool("dry-run"), LockWait: c.Duration("lock-wait")}, e.rep.json, e.rep.quiet)
		},
	}
}

// parseMaxUnused reads --max-unused: a percentage of the repository
// ("5%", "5 %" or "5"), or "unlimited", as PruneOptions.MaxUnused.
func parseMaxUnused(v string) (float64, error) {
	s := strings.TrimSpace(v)
	if strings.EqualFold(s, "unlimited") {
		return 1, nil
	}
	// "5%", "5 %" and "5" alike.
	p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || p < 0 || p > 100 || math.IsNaN(p) {
		return 0, usagef("--max-unused %q: give a percentage from 0%% to 100%%, or unlimited", v)
	}
	if p == 0 {
		return -1, nil // none tolerated (0 is the default's)
	}
	return p / 100, nil
}

func runPrune(ctx context.Context, e *env, dir string, opts repo.PruneOptions, asJSON, quiet bool) error {
	start := time.Now()
	dryRun := opts.DryRun
	e.out.Mode, e.out.Output, e.out.DryRun = "repo", dir, dryRun
	r, err := openRepo(e, dir, false)
	if err != nil {
		return err
	}
	sum, err := r.Prune(ctx, opts)
	if errors.Is(err, repo.ErrLocked) {
		err = &hintError{err: err, hint: "a dump or prune is running; if none is, `mbtool unlock --repo " + dir + "` removes locks of processes that are gone"}
	}
	if sum == nil {
		return err
	}
	forgot, kept := 0, 0
	for _, d := range sum.Decisions {
		verb := "remove"
		if d.Keep {
			verb = "keep"
			kept++
		} else {
			forgot++
		}
		if !quiet && !asJSON {
			why := ""
			if len(d.Reasons) > 0 {
				why = " (" + strings.Join(d.Reasons, ", ") + ")"
			}
			fmt.Fprintf(e.stdout, "%-6s %s  %s  %s  %d users%s\n", verb, d.Snapshot.ShortID(),
				d.Snapshot.Time.Local().Format("2006-01-02 15:04:05"), d.Snapshot.Host, len(d.Snapshot.Users), why)
		}
	}
	e.out.SnapshotsKept, e.out.SnapshotsRemoved = count(kept), count(forgot)
	e.out.PacksRemoved, e.out.PacksRepacked = count(sum.PacksRemoved), count(sum.PacksRepacked)
	e.out.StatesRemoved, e.out.BytesRemoved = count(sum.StatesRemoved), count(sum.BytesRemoved)
	e.out.BytesUnused = count(sum.UnusedLeft)
	if err == nil {
		verb := "removed"
		if dryRun {
			verb = "would remove"
		}
		share := 0.0
		if t := sum.UsedBytes + sum.UnusedLeft; t > 0 {
			share = 100 * float64(sum.UnusedLeft) / float64(t)
		}
		e.done("%s %d snapshot(s), keeping %d; %s %d pack(s) and rewrite %d, freeing %s; %d state(s); %s unused left (%.1f%%) in %s",
			verb, forgot, kept, verb, sum.PacksRemoved, sum.PacksRepacked, humanBytes(sum.BytesRemoved), sum.StatesRemoved,
			humanBytes(sum.UnusedLeft), share, time.Since(start).Round(time.Millisecond))
	}
	return err
}

func newUnlockCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "unlock",
		Usage: "remove the stale locks of a backup repository",
		Description: "Removes the locks of processes that are gone (on this host: no such PID with\n" +
			"the lock's start time; on another host: not refreshed for 30 minutes). With\n" +
			"--remove-all, every lock: only when no mbtool uses the repository.",
		Flags: []cli.Flag{
			repoFlag("the repository `DIR`"),
			&cli.BoolFlag{Name: "remove-all", Usage: "remove every lock, also live ones"},
		},
		Action: func(c *cli.Context) error {
			if c.String("repo") == "" || c.Args().Len() > 0 {
				return usagef("unlock needs --repo DIR and no arguments")
			}
			r, err := openRepo(e, c.String("repo"), false)
			if err != nil {
				return err
			}
			removed, err := r.Unlock(c.Bool("remove-all"))
			for _, n := range removed {
				fmt.Fprintf(e.stderr, "mbtool: removed %s\n", n)
			}
			return err
		},
	}
}

// lockWaitFlag is --lock-wait, for the commands that lock a repository.
func lockWaitFlag(usage string) cli.Flag {
	return &cli.DurationFlag{Name: "lock-wait", Usage: usage}
}
