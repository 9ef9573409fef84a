package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mbtool/mbtool/dumplist"
	"github.com/mbtool/mbtool/mboxname"
	"github.com/urfave/cli/v2"
)

// listFlags are list's flags for a dump FILE.
func listFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "mailbox", Usage: "list mailbox `NAME` or PATTERN (as restore --mailbox takes them; repeatable)"},
		&cli.BoolFlag{Name: "messages", Aliases: []string{"m"}, Usage: "list the messages of the mailboxes selected (all when none is)"},
		&cli.StringFlag{Name: "from", Usage: "messages whose From contains `TEXT` (any case)"},
		&cli.StringFlag{Name: "subject", Usage: "messages whose Subject contains `TEXT` (any case)"},
		&cli.BoolFlag{Name: "expunged", Usage: "list expunged records too (their message files are often not in the dump)"},
	}, messageFlags("list")...)
}

type listOptions struct {
	input    string
	sel      *mboxname.Selector
	messages bool
	filter   dumplist.Filter
}

func listOptionsFrom(c *cli.Context) (listOptions, error) {
	var o listOptions
	if c.String("snapshot") != "" || c.String("at") != "" {
		return o, usagef("--snapshot and --at are for --repo")
	}
	sel, err := mboxname.NewSelector(c.StringSlice("user"), c.StringSlice("mailbox"))
	if err != nil {
		return o, usagef("%v", err)
	}
	o.sel = sel
	f := &o.filter
	if f.Messages, err = messageFilterFrom(c); err != nil {
		return o, err
	}
	f.From, f.Subject, f.Expunged = c.String("from"), c.String("subject"), c.Bool("expunged")
	for _, name := range []string{"messages", "since", "before", "from", "subject", "message-id", "uid", "guid", "expunged"} {
		if c.IsSet(name) {
			o.messages = true
		}
	}
	return o, nil
}

// Rows of list --json: one JSON object per line, with "kind".
type (
	jsonListUser struct {
		Kind      string `json:"kind"` // "user"
		User      string `json:"user"` // "" for shared mailboxes
		Mailboxes int64  `json:"mailboxes"`
		Deleted   int64  `json:"deleted_mailboxes"`
		Messages  int64  `json:"messages"`
		Expunged  int64  `json:"expunged"`
		Bytes     int64  `json:"bytes"`
	}
	jsonListMailbox struct {
		Kind          string `json:"kind"`    // "mailbox"
		Mailbox       string `json:"mailbox"` // internal name
		Folder        string `json:"folder"`  // as its owner sees it, UTF-8
		Owner         string `json:"owner"`
		Deleted       bool   `json:"deleted"`
		Original      string `json:"original,omitempty"` // of a deleted mailbox: its name before
		UniqueID      string `json:"uniqueid"`
		Messages      int64  `json:"messages"`
		Expunged      int64  `json:"expunged"`
		Bytes         int64  `json:"bytes"`
		UIDValidity   uint32 `json:"uidvalidity"`
		UIDNext       uint32 `json:"uidnext"`
		HighestModseq uint64 `json:"highestmodseq"`
		Partition     string `json:"partition"`
	}
	jsonListMessage struct {
		Kind         string   `json:"kind"` // "message"
		Mailbox      string   `json:"mailbox"`
		UID          uint32   `json:"uid"`
		InternalDate string   `json:"internaldate"` // RFC 3339, UTC
		Size         uint32   `json:"size"`
		Flags        []string `json:"flags"`
		GUID         string   `json:"guid"`
		Modseq       uint64   `json:"modseq"`
		From         string   `json:"from"`
		Subject      string   `json:"subject"`
		MessageID    string   `json:"message_id"`
		Expunged     bool     `json:"expunged,omitempty"`
		NoFile       bool     `json:"no_file,omitempty"` // the dump holds no message file for it
	}
)

// folder is a mailbox's name as its owner sees it ("INBOX/Entwürfe").
func folder(m *dumplist.Mailbox) string {
	if m.Deleted {
		ext, _ := mboxname.External(m.Original)
		return ext
	}
	ext, _ := mboxname.External(m.Name)
	return ext
}

// runListDump lists a dump: users, or the mailboxes selected, or their
// messages. Rows are printed as they are read (text in blocks of aligned
// columns, or JSON lines); the --json outcome goes to standard error.
func runListDump(ctx context.Context, e *env, o listOptions) error {
	e.out.Mode, e.out.Input = "file", o.input
	in, size, closeIn, err := openInput(e, o.input)
	if err != nil {
		return err
	}
	defer closeIn()
	counted := &countingReader{r: interruptible(ctx, in)}
	if e.rep.json {
		e.dataOnStdout()
	}
	rows := newRowWriter(e.stdout, e.rep.json)
	defer rows.flush()

	level := "users"
	switch {
	case o.messages:
		level = "messages"
	case o.sel.Active():
		level = "mailboxes"
	}
	opts := dumplist.Options{Select: o.sel, Messages: o.messages, Filter: o.filter}
	switch level {
	case "users":
		rows.header("USER\tMAILBOXES\tMESSAGES\tBYTES")
		opts.User = func(u *dumplist.User) error {
			if rows.json {
				return rows.object(jsonListUser{Kind: "user", User: u.Name, Mailboxes: u.Mailboxes, Deleted: u.Deleted,
					Messages: u.Messages, Expunged: u.Expunged, Bytes: u.Bytes})
			}
			name, boxes := u.Name, fmt.Sprint(u.Mailboxes)
			if name == "" {
				name = "(shared)"
			}
			if u.Deleted > 0 {
				boxes += fmt.Sprintf(" (%d deleted)", u.Deleted)
			}
			return rows.line("%s\t%s\t%d\t%s", name, boxes, u.Messages, humanBytes(u.Bytes))
		}
	case "mailboxes":
		rows.header("MAILBOX\tFOLDER\tMESSAGES\tBYTES\tUIDVALIDITY\tUIDNEXT\tDELETED")
		opts.Mailbox = func(m *dumplist.Mailbox) error {
			if rows.json {
				return rows.object(jsonListMailbox{Kind: "mailbox", Mailbox: m.Name, Folder: folder(m), Owner: m.Owner,
					Deleted: m.Deleted, Original: m.Original, UniqueID: m.UniqueID, Messages: m.Messages,
					Expunged: m.Expunged, Bytes: m.Bytes, UIDValidity: m.UIDValidity, UIDNext: m.UIDNext,
					HighestModseq: m.HighestModseq, Partition: m.Partition})
			}
			del := ""
			if m.Deleted {
				del = "deleted (was " + m.Original + ")"
			}
			return rows.line("%s\t%s\t%d\t%s\t%d\t%d\t%s", m.Name, folder(m), m.Messages, humanBytes(m.Bytes), m.UIDValidity, m.UIDNext, del)
		}
	case "messages":
		rows.header("MAILBOX\tUID\tINTERNALDATE\tSIZE\tFLAGS\tFROM\tSUBJECT\tMESSAGE-ID")
		opts.Message = func(m *dumplist.Message) error {
			if rows.json {
				flags := m.Flags
				if flags == nil {
					flags = []string{}
				}
				return rows.object(jsonListMessage{Kind: "message", Mailbox: m.Mailbox, UID: m.UID,
					InternalDate: m.InternalDate.Format(time.RFC3339), Size: m.Size, Flags: flags,
					GUID: m.GUID.String(), Modseq: m.Modseq, From: m.From, Subject: m.Subject,
					MessageID: m.MessageID, Expunged: m.Expunged, NoFile: m.NoFile})
			}
			from, subject := m.From, m.Subject
			if m.NoFile {
				from, subject = "(no message file in the dump)", ""
			}
			return rows.line("%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s", m.Mailbox, m.UID, m.InternalDate.UTC().Format("2006-01-02 15:04:05Z"),
				m.Size, strings.Join(m.Flags, " "), clip(from, 40), clip(subject, 60), m.MessageID)
		}
	}
	bar := newProgress(e.stderr, e.quiet(), "list")
	bar.plan(0, 0, size)
	opts.Progress = func(int64) { bar.set(0, 0, counted.n.Load()) }
	start := time.Now()
	sum, err := dumplist.Scan(ctx, counted, opts)
	bar.finish()
	rows.flush()
	if err != nil {
		if serr := selectionError(err, "'mbtool list FILE' without --user and --mailbox shows the dump's users"); serr != nil {
			return serr
		}
		return err
	}
	e.out.Users, e.out.Mailboxes, e.out.Messages = sum.Users, sum.Selected, sum.Messages
	e.out.DumpHost = sum.Header.Host
	if !sum.Header.Created.IsZero() {
		c := sum.Header.Created
		e.out.DumpCreated = &c
	}
	if sum.Skipped > 0 {
		e.out.SkippedAtDump = count(sum.Skipped)
		e.warnf("the dump records %d item(s) as skipped when it was written; 'mbtool verify' lists them", sum.Skipped)
	}
	what := fmt.Sprintf("%d users, %d mailboxes", sum.Users, sum.Selected)
	if level == "messages" {
		what += fmt.Sprintf(", %d messages", sum.Messages)
	}
	e.done("listed %s of a dump of %d mailboxes, %d message files (%s) from %s at %s, in %s", what,
		sum.Mailboxes, sum.Files, humanBytes(sum.FileBytes), sum.Header.Host,
		sum.Header.Created.Local().Format("2006-01-02 15:04:05"), time.Since(start).Round(time.Millisecond))
	return nil
}

// clip shortens s to n characters for a column.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// rowWriter prints a listing as it comes: aligned columns in blocks of
// rowBlock lines (so that memory does not grow with the listing), or one
// JSON object per line.
type rowWriter struct {
	bw   *bufio.Writer
	tw   *tabwriter.Writer
	json bool
	enc  *json.Encoder
	head string
	n    int
}

const rowBlock = 200

func newRowWriter(w io.Writer, asJSON bool) *rowWriter {
	bw := bufio.NewWriterSize(w, 64<<10) // one write per 64 KiB, not per row
	return &rowWriter{bw: bw, json: asJSON, tw: tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)}
}

func (r *rowWriter) header(h string) { r.head = h }

func (r *rowWriter) line(format string, args ...any) error {
	if r.n%rowBlock == 0 {
		r.tw.Flush()
		if r.n == 0 && r.head != "" {
			fmt.Fprintln(r.tw, r.head)
		}
	}
	r.n++
	_, err := fmt.Fprintf(r.tw, format+"\n", args...)
	return err
}

func (r *rowWriter) object(v any) error {
	if r.enc == nil {
		r.enc = json.NewEncoder(r.bw)
		r.enc.SetEscapeHTML(false)
	}
	return r.enc.Encode(v)
}

func (r *rowWriter) flush() {
	r.tw.Flush()
	r.bw.Flush()
}
