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
		Name:  "list",
		Usage: "list the snapshots of a backup repository, or a snapshot's users and mailboxes",
		Description: "Without --snapshot, --at or --user: one line per snapshot (ID, time, host, users,\n" +
			"bytes the run added, bytes of the messages its users refer to). With --snapshot\n" +
			"or --at: that snapshot's users. With --user too: that user's mailboxes there.\n\n" +
			"EXAMPLES:\n" +
			"   mbtool list --repo /backup/mail\n" +
			"   mbtool list --repo /backup/mail --snapshot 3fa4c2d1\n" +
			"   mbtool list --repo /backup/mail --user alice --at 2026-11-30",
		Flags: append([]cli.Flag{
			repoFlag("the repository `DIR`"),
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "list the mailboxes of `USER` (in the latest snapshot holding them, unless --snapshot or --at)"},
			sharedFlag("list the shared mailboxes (those no user owns), as --user does a user's"),
		}, snapshotFlags()...),
		Action: func(c *cli.Context) error {
			args, err := positional(c)
			if err != nil {
				return err
			}
			if c.String("repo") == "" || len(args) > 0 {
				return &hintError{err: &usageError{msg: "list needs --repo DIR"},
					hint: "mbtool list --repo DIR [--snapshot ID | --at TIME] [--user USER]"}
			}
			user := c.String("user")
			if c.Bool("shared") {
				if user != "" {
					return usagef("give --user or --shared, not both")
				}
				user = repo.SharedName
			}
			return runList(c.Context, e, c.String("repo"), c.String("snapshot"), c.String("at"), user, e.rep.json)
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
	writeJSON := func(_ any, v any) { e.out.Listing = append(e.out.Listing, v) }
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
				writeJSON(e.stdout, jsonSnapshot{ID: s.ID, Time: s.Time.Format("2006-01-02T15:04:05Z07:00"), Host: s.Host,
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
				writeJSON(e.stdout, map[string]any{"user": repo.DisplayName(u.Name), "mailboxes": u.Mailboxes, "messages": u.Files, "bytes": u.Bytes})
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
			writeJSON(e.stdout, map[string]any{"mailbox": m.Name, "records": m.Records, "uniqueid": m.UniqueID})
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
