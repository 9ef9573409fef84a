package commands

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/mbtool/mbtool/repo"
	"github.com/urfave/cli/v2"
)

func newListCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "list",
		Aliases:   []string{"ls"},
		Usage:     "show what a dump or a backup repository holds: users, mailboxes, messages",
		ArgsUsage: "FILE|-",
		Description: "Of a dump (plain or zstd, FILE or - for standard input), with no Cyrus\n" +
			"configuration: one line per user (mailboxes, messages, bytes); with --user or\n" +
			"--mailbox the selected mailboxes (messages, bytes, UIDVALIDITY, UIDNEXT, deleted\n" +
			"or not); with --messages, or any of the message filters, their messages (UID,\n" +
			"INTERNALDATE, size, flags, and From, Subject and Message-ID from the message\n" +
			"files in the dump). --user and --mailbox select as restore's do, so a listing\n" +
			"shows exactly what the same restore would take. The dump is read once, in\n" +
			"constant memory; it is not checked as verify checks it.\n\n" +
			"Of a repository (--repo): without --snapshot, --at or --user, one line per\n" +
			"snapshot (ID, time, host, users, bytes the run added, bytes of the messages its\n" +
			"users refer to). With --snapshot or --at: that snapshot's users. With --user\n" +
			"too: that user's mailboxes there.\n\n" +
			"EXAMPLES:\n" +
			"   mbtool list alice.dlist.zst\n" +
			"   mbtool list --user alice alice.dlist.zst\n" +
			"   mbtool list --user alice --mailbox INBOX --from bob --since 2026-11-01 alice.dlist.zst\n" +
			"   mbtool list --mailbox 'alice/Sent' --messages --json alice.dlist.zst\n" +
			"   mbtool list --repo /backup/mail\n" +
			"   mbtool list --repo /backup/mail --user alice --at 2026-11-30",
		Flags: append(append([]cli.Flag{
			repoFlag("the repository `DIR`"),
			&cli.StringSliceFlag{Name: "user", Aliases: []string{"u"}, Usage: "list the mailboxes of `USER` (repeatable; with --repo: one user, in the latest snapshot holding them, unless --snapshot or --at)"},
			sharedFlag("with --repo: list the shared mailboxes (those no user owns), as --user does a user's"),
		}, listFlags()...), snapshotFlags()...),
		Action: func(c *cli.Context) error {
			args, err := positional(c)
			if err != nil {
				return err
			}
			if c.String("repo") != "" {
				if len(args) > 0 {
					return usagef("give a dump FILE or --repo, not both")
				}
				users := c.StringSlice("user")
				if len(users) > 1 {
					return usagef("list --repo takes one --user")
				}
				user := ""
				if len(users) == 1 {
					user = users[0]
				}
				if c.Bool("shared") {
					if user != "" {
						return usagef("give --user or --shared, not both")
					}
					user = repo.SharedName
				}
				return runList(c.Context, e, c.String("repo"), c.String("snapshot"), c.String("at"), user, e.rep.json)
			}
			if c.Bool("shared") {
				return usagef("--shared is for --repo; name a dump's shared mailboxes with --mailbox")
			}
			if len(args) != 1 {
				return &hintError{err: &usageError{msg: "list needs a dump FILE (or - for standard input), or --repo DIR"},
					hint: "mbtool list [--user USER] [--mailbox NAME] [--messages] FILE|-   or   mbtool list --repo DIR"}
			}
			o, err := listOptionsFrom(c)
			if err != nil {
				return err
			}
			o.input = args[0]
			return runListDump(c.Context, e, o)
		},
	}
}

type jsonSnapshot struct {
	ID       string   `json:"id"`
	Time     string   `json:"time"`
	Host     string   `json:"host"`
	Users    []string `json:"users"`
	NewBytes int64    `json:"new_bytes"`
	NewFiles int64    `json:"new_messages"`
	Bytes    int64    `json:"total_bytes"`
}

// runList prints a listing; with --json its rows go into the outcome's
// "listing" instead (a repository's snapshots, a snapshot's users, a
// user's mailboxes: a few thousand at most).
func runList(ctx context.Context, e *env, dir, id, at, user string, asJSON bool) error {
	e.out.Mode, e.out.Input = "repo", dir
	addRow := func(v any) { e.out.Listing = append(e.out.Listing, v) }
	r, err := openRepo(e, dir, false)
	if err != nil {
		return err
	}
	if id == "" && at == "" && user == "" {
		ss, err := r.Snapshots()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		if !asJSON {
			fmt.Fprintln(tw, "ID\tTIME\tHOST\tUSERS\tNEW\tTOTAL")
		}
		for _, s := range ss {
			var names []string
			for _, u := range s.Users {
				names = append(names, repo.DisplayName(u.Name))
			}
			if asJSON {
				addRow(jsonSnapshot{ID: s.ID, Time: s.Time.Format("2006-01-02T15:04:05Z07:00"), Host: s.Host,
					Users: names, NewBytes: s.NewBytes, NewFiles: s.NewFiles, Bytes: s.TotalBytes()})
				continue
			}
			users := strings.Join(names, ",")
			if len(names) > 3 {
				users = fmt.Sprintf("%d users", len(names))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ShortID(), s.Time.Local().Format("2006-01-02 15:04:05"), s.Host,
				users, humanBytes(s.NewBytes), humanBytes(s.TotalBytes()))
		}
		return tw.Flush()
	}
	s, err := pickSnapshot(r, id, at, user)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if user == "" {
		if !asJSON {
			fmt.Fprintf(e.stdout, "snapshot %s of %s (%s)\n", s.ShortID(), s.Time.Local().Format("2006-01-02 15:04:05"), s.Host)
			fmt.Fprintln(tw, "USER\tMAILBOXES\tMESSAGES\tBYTES")
		}
		for _, u := range s.Users {
			if asJSON {
				addRow(map[string]any{"user": repo.DisplayName(u.Name), "mailboxes": u.Mailboxes, "messages": u.Files, "bytes": u.Bytes})
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", repo.DisplayName(u.Name), u.Mailboxes, u.Files, humanBytes(u.Bytes))
		}
		return tw.Flush()
	}
	u := s.User(user)
	if !asJSON {
		what := "user " + user
		if user == repo.SharedName {
			what = "shared mailboxes"
		}
		fmt.Fprintf(e.stdout, "%s in snapshot %s of %s (%s)\n", what, s.ShortID(), s.Time.Local().Format("2006-01-02 15:04:05"), s.Host)
		fmt.Fprintln(tw, "MAILBOX\tRECORDS\tUNIQUEID")
	}
	err = r.Mailboxes(*u, func(m repo.MailboxInfo) error {
		if asJSON {
			addRow(map[string]any{"mailbox": m.Name, "records": m.Records, "uniqueid": m.UniqueID})
			return nil
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", m.Name, m.Records, m.UniqueID)
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}
