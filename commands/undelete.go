package commands

import (
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/restore/result"
	"github.com/urfave/cli/v2"
)

// The helpdesk restores' flags (docs/restore.md, "Restoring for a user"):
// additive restore, message selectors, restore under another name. The
// same for an offline restore and restore --server.
func undeleteFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.BoolFlag{Name: "undelete", Usage: "additive restore: into a mailbox that exists, append the dump's messages it no longer has (by GUID) with new UIDs; never remove anything"},
		&cli.StringFlag{Name: "into", Usage: "restore the one selected --mailbox as the new mailbox `NAME` (new uniqueid and UIDVALIDITY, the owner's folder ACL)"},
	}, messageFlags("restore")...)
}

// messageFlags are the message selectors, the same for restore and list:
// what `list` shows with them is what `restore` takes with them.
func messageFlags(verb string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "uid", Usage: verb + " only messages whose UID in the dump is in `SET` (1:40,55)"},
		&cli.StringSliceFlag{Name: "guid", Usage: verb + " only the message of GUID `HEX` (repeatable)"},
		&cli.StringSliceFlag{Name: "message-id", Usage: verb + " only messages with Message-ID `ID` (with or without <>; repeatable)"},
		&cli.StringFlag{Name: "since", Usage: verb + " only messages whose INTERNALDATE is at or after `DATE` (2006-01-02, UTC, or RFC 3339)"},
		&cli.StringFlag{Name: "before", Usage: verb + " only messages whose INTERNALDATE is before `DATE`"},
	}
}

// messageFilterFrom reads the flags of messageFlags; nil when none is
// given.
func messageFilterFrom(c *cli.Context) (*msgsel.Filter, error) {
	f := &msgsel.Filter{}
	var err error
	if s := c.String("uid"); s != "" {
		if f.UIDs, err = msgsel.ParseUIDs(s); err != nil {
			return nil, usagef("--uid: %v", err)
		}
	}
	for _, s := range c.StringSlice("guid") {
		g, err := msgsel.ParseGUID(s)
		if err != nil {
			return nil, usagef("--guid: %v", err)
		}
		if f.GUIDs == nil {
			f.GUIDs = make(map[guid.GUID]bool)
		}
		f.GUIDs[g] = true
	}
	for _, s := range c.StringSlice("message-id") {
		if f.MessageIDs == nil {
			f.MessageIDs = make(map[string]bool)
		}
		f.MessageIDs[msgsel.NormalizeMessageID(s)] = true
	}
	if s := c.String("since"); s != "" {
		if f.Since, err = msgsel.ParseDate(s); err != nil {
			return nil, usagef("--since: %v", err)
		}
	}
	if s := c.String("before"); s != "" {
		if f.Before, err = msgsel.ParseDate(s); err != nil {
			return nil, usagef("--before: %v", err)
		}
	}
	if f.Empty() {
		return nil, nil
	}
	return f, nil
}

// undeleteOptions are what the flags of undeleteFlags ask for.
type undeleteOptions struct {
	undelete bool
	into     string
	messages *msgsel.Filter
}

func undeleteOptionsFrom(c *cli.Context, mailboxes []string) (undeleteOptions, error) {
	o := undeleteOptions{undelete: c.Bool("undelete"), into: c.String("into")}
	if o.into != "" && len(mailboxes) != 1 {
		return o, usagef("--into needs exactly one --mailbox (the mailbox of the dump to restore under the new name)")
	}
	f, err := messageFilterFrom(c)
	if err != nil {
		return o, err
	}
	if f != nil {
		if len(mailboxes) == 0 {
			return o, usagef("message selectors (--uid, --guid, --message-id, --since, --before) need --mailbox")
		}
		o.messages = f
	}
	return o, nil
}

// describeMerge is the line of a mailbox merged into: what was added,
// or in a dry run what would be (both restores count it the same way,
// msgsel.Appender against the target's mailbox).
func describeMerge(m result.Mailbox, dryRun bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %s", m.Action, m.Name)
	if m.Source != m.Name {
		fmt.Fprintf(&b, " (from %s)", m.Source)
	}
	fmt.Fprintf(&b, ": uniqueid %s, %d messages of the dump selected", m.UniqueID, m.Messages)
	switch {
	case dryRun:
		fmt.Fprintf(&b, ", %d to add, %d already there", m.Added, m.AlreadyThere)
	case m.Applied || m.Added > 0 || m.AlreadyThere > 0:
		fmt.Fprintf(&b, ", %d added, %d already there", m.Added, m.AlreadyThere)
	}
	return b.String()
}
