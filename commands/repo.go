package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mbtool/mbtool/dump"
	"github.com/mbtool/mbtool/repo"
	"github.com/mbtool/mbtool/repo/repodump"
	"github.com/mbtool/mbtool/s3store"
	"github.com/urfave/cli/v2"
)

// The backup repository (docs/format.md, "Repository"): dump --repo,
// restore --repo, export, list, verify --repo, prune, unlock.

func repoFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "repo", Usage: usage + ", or s3://BUCKET/PREFIX (docs/storage.md)", TakesFile: true, EnvVars: []string{"MBTOOL_REPO"}}
}

// sharedFlag selects the shared mailboxes of a snapshot (repo.SharedName).
func sharedFlag(usage string) cli.Flag { return &cli.BoolFlag{Name: "shared", Usage: usage} }

// snapshotFlags select a snapshot: --snapshot ID or --at TIME.
func snapshotFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "snapshot", Usage: "the snapshot `ID` (a prefix of 4 or more hex digits, as list shows)"},
		&cli.StringFlag{Name: "at", Usage: "the latest snapshot at or before `TIME` (2026-11-30, \"2026-11-30 02:00\", RFC 3339)"},
	}
}

func openRepo(e *env, dir string, create bool) (*repo.Repo, error) {
	var r *repo.Repo
	var err error
	if s3store.IsURL(dir) {
		u, c, serr := e.s3For(dir) // storage.go
		if serr != nil {
			return nil, serr
		}
		r, err = repo.OpenS3Repo(e.s3.ctx, c, u, create)
	} else {
		r, err = repo.OpenDirRepo(dir, create)
	}
	switch {
	case errors.Is(err, repo.ErrNotRepo) || errors.Is(err, os.ErrNotExist):
		// Could not start (start.go): exit 2, as for a missing dump.
		return nil, couldNotRun(err, "dump --repo DIR makes a repository in a new or empty DIR")
	case err != nil && !errors.Is(err, repo.ErrLocked):
		return nil, couldNotRun(err, "")
	}
	return r, err
}

// parseAt reads --at: a date alone means the end of that day, local time.
func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t.AddDate(0, 0, 1).Add(-time.Second), nil
	}
	return time.Time{}, usagef("--at %q: use 2026-11-30, \"2026-11-30 02:00\" or RFC 3339", s)
}

// pickSnapshot selects a snapshot by --snapshot or --at (the latest when
// neither), holding user when given.
func pickSnapshot(r *repo.Repo, id, at, user string) (*repo.Snapshot, error) {
	if id != "" && at != "" {
		return nil, usagef("give --snapshot or --at, not both")
	}
	t, err := parseAt(at)
	if err != nil {
		return nil, err
	}
	ss, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	return repo.Select(ss, id, t, user)
}

// openSnapshot opens the repository in dir, picks a snapshot as
// pickSnapshot does, and loads the index (after the snapshots, so that
// every file they need is in it).
func openSnapshot(e *env, dir, id, at, user string) (*repo.Repo, *repo.Snapshot, *repo.Index, error) {
	r, err := openRepo(e, dir, false)
	if err != nil {
		return nil, nil, nil, err
	}
	snap, err := pickSnapshot(r, id, at, user)
	if err != nil {
		return nil, nil, nil, err
	}
	idx, err := r.LoadIndex()
	if err != nil {
		return nil, nil, nil, err
	}
	return r, snap, idx, nil
}

type dumpRepoOptions struct {
	dir      string
	jobs     int
	lockWait time.Duration
}

func dumpRepoFrom(c *cli.Context) dumpRepoOptions {
	return dumpRepoOptions{dir: c.String("repo"), jobs: c.Int("jobs"), lockWait: c.Duration("lock-wait")}
}

func runDumpRepo(ctx context.Context, e *env, o dumpOptions, ro dumpRepoOptions) error {
	if len(o.mailboxes) > 0 {
		return usagef("dump --repo stores whole users: name them with --user, or use --all")
	}
	if !o.all && len(o.users) == 0 {
		return &hintError{err: &usageError{msg: "nothing to dump"},
			hint: "name users with --user, or dump every user with --all"}
	}
	if o.output != "-" && o.output != "" {
		return usagef("give -o or --repo, not both")
	}
	if ro.jobs < 1 {
		return usagef("--jobs %d: give 1 or more", ro.jobs)
	}
	start := time.Now()
	e.out.Mode, e.out.Output = "repo", ro.dir
	spool, err := openSpoolOf(o.config)
	if err != nil {
		return err
	}
	r, err := openRepo(e, ro.dir, true)
	if err != nil {
		return err
	}
	bar := newProgress(e.stderr, o.quiet, "dump")
	sum, err := repodump.Run(ctx, spool, r, repodump.Options{Users: o.users, All: o.all, Jobs: ro.jobs, LockWait: ro.lockWait, Version: version(),
		Progress: func(s repodump.Summary) { bar.set(s.Mailboxes, s.Files, s.Bytes) }})
	bar.finish()
	if errors.Is(err, dump.ErrNoSelection) {
		return usagef("%v", err)
	}
	if err == nil && sum != nil {
		for _, s := range sum.Skipped {
			e.warnf("%s", s)
		}
		for _, p := range sum.Problems {
			e.warnf("%s", p)
		}
		if n := len(sum.Skipped) + len(sum.Problems); n > 0 {
			err = &exitError{code: ExitPartial, err: fmt.Errorf("%d item(s) could not be dumped; see the warnings above", n)}
		}
	}
	if sum == nil {
		sum = &repodump.Summary{}
	}
	e.out.Users, e.out.Mailboxes, e.out.Messages, e.out.Bytes = int64(sum.Users), sum.Mailboxes, sum.Files, sum.Bytes
	e.out.NewMessages, e.out.NewBytes, e.out.ReusedBytes = count(sum.NewFiles), count(sum.NewBytes), count(sum.ReusedBytes)
	if sum.Snapshot != nil {
		e.out.Snapshot = sum.Snapshot.ID
		users := fmt.Sprintf("%d users", sum.Users)
		if sum.Shared > 0 {
			users += fmt.Sprintf(" and %d shared mailboxes", sum.Shared)
		}
		e.done("snapshot %s: %s, %d mailboxes, %d messages (%s); %d new (%s), %s reused, in %s",
			sum.Snapshot.ShortID(), users, sum.Mailboxes, sum.Files, humanBytes(sum.Bytes), sum.NewFiles,
			humanBytes(sum.NewBytes), humanBytes(sum.ReusedBytes), time.Since(start).Round(time.Millisecond))
	}
	return err
}

type repoRestoreOptions struct {
	dir, user, snapshot, at string
	shared                  bool // --shared: user is repo.SharedName
	server                  bool // --server: the dump goes to a spool file first
}

func repoRestoreFrom(c *cli.Context) repoRestoreOptions {
	var user string
	if us := c.StringSlice("user"); len(us) > 0 {
		user = us[0] // one: see runRestoreRepo
	}
	o := repoRestoreOptions{dir: c.String("repo"), user: user, snapshot: c.String("snapshot"), at: c.String("at"),
		server: c.String("server") != ""}
	if c.Bool("shared") {
		o.user, o.shared = repo.SharedName, true
		if user != "" {
			o.user = "" // refused: both
		}
	}
	return o
}

// runRestoreRepo restores a user's snapshot: the snapshot is written out
// as a standalone dump into a pipe, and restore (offline or --server)
// reads it as it reads any dump.
func runRestoreRepo(ctx context.Context, e *env, o restoreOptions, ro repoRestoreOptions,
	restoreDump func(context.Context, *env, restoreOptions) error) error {
	if o.input != "" {
		return usagef("give a dump FILE or --repo, not both")
	}
	if ro.user == "" && ro.shared {
		return usagef("give --user or --shared, not both")
	}
	if len(o.users) > 1 {
		return usagef("restore --repo restores one --user at a time")
	}
	if ro.user == "" {
		return &hintError{err: &usageError{msg: "restore --repo needs --user"},
			hint: "mbtool restore --repo DIR --user alice [--at TIME | --snapshot ID] (or --shared for the shared mailboxes)"}
	}
	r, snap, idx, err := openSnapshot(e, ro.dir, ro.snapshot, ro.at, ro.user)
	if err != nil {
		return err
	}
	defer idx.Close()
	e.out.Snapshot = snap.ID
	if !o.quiet {
		what := "user " + ro.user
		if ro.shared {
			what = "the shared mailboxes"
		}
		fmt.Fprintf(e.stderr, "mbtool: restoring %s from snapshot %s of %s (%s)\n", what, snap.ShortID(),
			snap.Time.Local().Format("2006-01-02 15:04:05"), snap.Host)
	}
	// The export runs ahead of the restore reading it, on another core,
	// and leaves the files' SHA-1 to the restore, which re-hashes every
	// file (offline and --server alike) before anything becomes visible.
	// Offline the stream goes from one goroutine to the other and is
	// unsealed: a BLAKE3 digest of it would be computed by the one and
	// checked by the other, at a sixth of the restore's CPU. (--server
	// spools the dump to a file first: sealed.)
	o.unsealed = !ro.server
	dr := r.OpenDump(ctx, idx, snap, repo.ExportOptions{Users: []string{ro.user}, ReaderRehashes: true, Unsealed: o.unsealed})
	e2 := *e
	e2.stdin = dr
	o.input = "-"
	rerr := restoreDump(ctx, &e2, o)
	xerr := dr.Close()
	if rerr == nil && xerr != nil {
		return xerr
	}
	return rerr
}

func init() { subcommands = append(subcommands, newExportCommand, newListCommand) }

func newExportCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write a snapshot of a backup repository out as a standalone dump",
		Description: "Writes users of one snapshot (by default the latest; all its users unless\n" +
			"--user is given) as an ordinary dump, which restore, restore --server and verify\n" +
			"read as they read any dump.\n\n" +
			"EXAMPLES:\n" +
			"   mbtool export --repo /backup/mail --user alice --at 2026-11-30 -o alice.dlist.zst\n" +
			"   mbtool export --repo /backup/mail --user alice -o - | ssh newhost mbtool restore -",
		Flags: append([]cli.Flag{
			repoFlag("the repository `DIR`"),
			&cli.StringSliceFlag{Name: "user", Aliases: []string{"u"}, Usage: "write `USER` (repeatable; default: every user of the snapshot, and its shared mailboxes)"},
			sharedFlag("write the shared mailboxes (those no user owns), after the users given"),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write the dump to `FILE` (- for standard output, never a terminal)"},
			&cli.StringFlag{Name: "compress", Usage: "compression: zstd or none (default: zstd when FILE ends in .zst)"},
		}, snapshotFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := positional(c); err != nil {
				return err
			}
			if c.Args().Len() > 0 {
				return usagef("export takes no arguments")
			}
			if c.String("repo") == "" {
				return usagef("export needs --repo DIR")
			}
			users := c.StringSlice("user")
			if c.Bool("shared") {
				users = append(users, repo.SharedName)
			}
			return runExport(c.Context, e, c.String("repo"), users, c.String("snapshot"), c.String("at"),
				c.String("output"), c.String("compress"))
		},
	}
}

func runExport(ctx context.Context, e *env, dir string, users []string, id, at, output, compress string) error {
	zst, err := dumpCompression(dumpOptions{output: output, compress: compress})
	if err != nil {
		return err
	}
	e.out.Mode, e.out.Input, e.out.Output = "repo", dir, output
	if output == "-" {
		e.dataOnStdout()
	}
	user := ""
	if len(users) == 1 {
		user = users[0]
	}
	r, snap, idx, err := openSnapshot(e, dir, id, at, user)
	if err != nil {
		return err
	}
	defer idx.Close()
	out, err := createOutput(e, output)
	if err != nil {
		return err
	}
	defer out.abort()
	e.out.Snapshot = snap.ID
	c, err := r.WriteDump(ctx, idx, snap, out.w, repo.ExportOptions{Users: users, Compress: zst})
	if err != nil {
		return lostReader(err, output)
	}
	if err := out.commit(); err != nil {
		return err
	}
	e.out.Mailboxes, e.out.Messages, e.out.Bytes = c.Mailboxes, c.Messages, c.Bytes
	// A night that skipped items writes out partial, as its dump was.
	skipped := snap.SkippedItems()
	if len(users) > 0 {
		skipped = 0
		for _, u := range users {
			if ue := snap.User(u); ue != nil {
				skipped += ue.Skipped
			}
		}
	}
	if skipped > 0 {
		e.out.SkippedAtDump = count(skipped)
		return &exitError{code: ExitPartial, err: fmt.Errorf("the dump written records %d item(s) skipped when snapshot %s was taken (its MBTOOL SKIPPED lines say why)", skipped, snap.ShortID())}
	}
	return nil
}
