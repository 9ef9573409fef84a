// Package imapcompare captures everything a Cyrus lab serves, section by
// section, and diffs two captures: the IMAP view of the admin and of each
// user (LIST with SPECIAL-USE and SUBSCRIBED, GETACL, GETQUOTAROOT, STATUS,
// EXAMINE with CONDSTORE and QRESYNC, UID FETCH of FLAGS, INTERNALDATE,
// RFC822.SIZE, MODSEQ, SAVEDATE, EMAILID, THREADID, ENVELOPE,
// BODYSTRUCTURE and the body, SORT, THREAD and SEARCH, GETMETADATA of
// every mailbox and of the server), and Cyrus's own tools' view of every
// mailbox (mbexamine, reconstruct -n). Per-user \Seen is in each user's
// FETCH FLAGS. It is how the real-Cyrus tests compare a restored lab with
// its source, and a maintainer can run it against any two labs with the
// imapcompare command.
package imapcompare

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/mbtool/mbtool/internal/cyruslab"
	"github.com/mbtool/mbtool/partition"
)

// Snapshot is a lab's view: section name -> its text. Section names are
// "<who> <what>" ("alice LIST", "alice INBOX.Sent FETCH", "admin
// user.alice GETACL", "mbexamine user.alice", ...), so that two snapshots
// of labs holding the same mailboxes have the same sections.
type Snapshot map[string]string

// Options choose what Take captures.
type Options struct {
	// Users are the users whose view is captured besides the admin's.
	Users []string
	// NoTools leaves out mbexamine and reconstruct -n (for a lab whose
	// spool this process cannot read).
	NoTools bool
}

// Take captures the view of lab, which must be running.
func Take(lab *cyruslab.Lab, opts Options) (Snapshot, error) {
	s := Snapshot{}
	for _, u := range append([]string{lab.Admin}, opts.Users...) {
		if err := s.imap(lab, u); err != nil {
			return nil, fmt.Errorf("imapcompare: view of %s: %w", u, err)
		}
	}
	if !opts.NoTools {
		if err := s.tools(lab); err != nil {
			return nil, fmt.Errorf("imapcompare: %w", err)
		}
	}
	return s, nil
}

// imap captures what user sees over IMAP.
func (s Snapshot) imap(lab *cyruslab.Lab, user string) error {
	c, err := lab.Login(user)
	if err != nil {
		return err
	}
	defer c.Close()
	who := user
	if user == lab.Admin {
		who = "admin"
	}
	if _, err := c.Command("ENABLE", "QRESYNC"); err != nil {
		return err
	}
	r, err := c.Command("LIST", `""`, `"*"`, "RETURN", "(SPECIAL-USE SUBSCRIBED)")
	if err != nil {
		return err
	}
	var lines, boxes []string
	for _, d := range r.Data {
		if d.Name != "LIST" || len(d.Fields) != 3 {
			continue
		}
		attrs := texts(d.Fields[0].List)
		sort.Strings(attrs)
		name := d.Fields[2].Text
		lines = append(lines, name+" "+strings.Join(attrs, " "))
		if !has(attrs, `\Noselect`) && !has(attrs, `\NonExistent`) {
			boxes = append(boxes, name)
		}
	}
	sort.Strings(lines)
	s[who+" LIST"] = strings.Join(lines, "\n")
	s[who+" GETMETADATA server"] = metadata(c, "")
	for _, b := range boxes {
		q := cyruslab.Quote(b)
		p := who + " " + b + " "
		s[p+"GETACL"] = answer(c, "GETACL", q)
		s[p+"GETQUOTAROOT"] = answer(c, "GETQUOTAROOT", q)
		s[p+"STATUS"] = answer(c, "STATUS", q, "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)")
		s[p+"GETMETADATA"] = metadata(c, b)
		st, err := c.Status(b, "UIDVALIDITY")
		if err != nil {
			s[p+"EXAMINE"] = "error: " + err.Error()
			continue
		}
		// QRESYNC from MODSEQ 1: VANISHED (EARLIER) lists what was
		// expunged, the FETCHes what changed.
		s[p+"EXAMINE"] = answer(c, "EXAMINE", q, fmt.Sprintf("(QRESYNC (%d 1))", st["UIDVALIDITY"]))
		s[p+"FETCH"] = fetch(c)
		s[p+"SORT"] = orders(c, sorts)
		s[p+"THREAD"] = orders(c, threads)
		s[p+"SEARCH"] = orders(c, searches)
	}
	return nil
}

// sorts, threads and searches are the orderings and searches asked of
// every mailbox: what a client sorting by a header, threading, or
// searching by the sent date (the records' SENTDATE and gmtime), size,
// header or flag is shown.
var (
	sorts = [][]any{
		{"UID", "SORT", "(DATE)", "UTF-8", "ALL"},
		{"UID", "SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL"},
		{"UID", "SORT", "(SUBJECT DATE)", "UTF-8", "ALL"},
		{"UID", "SORT", "(FROM TO CC SIZE)", "UTF-8", "ALL"},
	}
	threads = [][]any{
		{"UID", "THREAD", "REFERENCES", "UTF-8", "ALL"},
		{"UID", "THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL"},
	}
	searches = [][]any{
		{"UID", "SEARCH", "SENTBEFORE", "1-Jan-2000"},
		{"UID", "SEARCH", "SENTSINCE", "1-Jan-2000"},
		{"UID", "SEARCH", "SENTON", "1-Jan-1970"},
		{"UID", "SEARCH", "BEFORE", "1-Jul-2023"},
		{"UID", "SEARCH", "LARGER", "2000"},
		{"UID", "SEARCH", "UNSEEN"},
		{"UID", "SEARCH", "KEYWORD", "$Label2"},
		{"UID", "SEARCH", "HEADER", "Message-ID", `""`},
		{"UID", "SEARCH", "SUBJECT", "re"},
	}
)

// orders runs each command on the selected mailbox and returns the
// commands and their answers.
func orders(c *cyruslab.IMAPClient, cmds [][]any) string {
	var out []string
	for _, cmd := range cmds {
		out = append(out, strings.TrimSuffix(fmt.Sprintln(cmd...), "\n")+"\n"+answer(c, cmd...))
	}
	return strings.Join(out, "\n")
}

// fetch returns every message of the selected mailbox, one line each,
// the body as its SHA-256.
func fetch(c *cyruslab.IMAPClient) string {
	items := "(FLAGS INTERNALDATE RFC822.SIZE MODSEQ SAVEDATE EMAILID THREADID ENVELOPE BODYSTRUCTURE BODY.PEEK[])"
	r, err := c.Command("UID", "FETCH", "1:*", items)
	if err != nil {
		return "error: " + err.Error()
	}
	var lines []string
	for _, d := range r.Data {
		if d.Name != "FETCH" || len(d.Fields) != 1 {
			continue
		}
		kv := d.Fields[0].List
		var parts []string
		for i := 0; i+1 < len(kv); i += 2 {
			k, v := strings.ToUpper(kv[i].Text), kv[i+1]
			switch {
			case strings.HasPrefix(k, "BODY["):
				parts = append(parts, fmt.Sprintf("%s sha256:%x", k, sha256.Sum256([]byte(v.Text))))
			case k == "FLAGS":
				f := texts(v.List)
				sort.Strings(f)
				parts = append(parts, "FLAGS ("+strings.Join(f, " ")+")")
			default:
				parts = append(parts, k+" "+v.String())
			}
		}
		sort.Strings(parts)
		lines = append(lines, strings.Join(parts, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// volatile are the metadata entries that describe the server's state of
// the moment, not the mailbox: free disk space, the index's mtime.
var volatile = regexp.MustCompile(`^/shared/vendor/cmu/cyrus-imapd/(freespace.*|lastupdate)$`)

// metadata returns every metadata entry with a value of mailbox ("" for
// the server), one "entry value" line each, sorted; entries that change
// by themselves are left out.
func metadata(c *cyruslab.IMAPClient, mailbox string) string {
	r, err := c.Command("GETMETADATA", cyruslab.Quote(mailbox), "(DEPTH infinity)", `("/shared" "/private")`)
	if err != nil {
		return "error: " + err.Error()
	}
	var lines []string
	for _, d := range r.Data {
		if d.Name != "METADATA" || len(d.Fields) != 2 {
			continue
		}
		kv := d.Fields[1].List
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1].Kind == cyruslab.Nil || volatile.MatchString(kv[i].Text) {
				continue
			}
			lines = append(lines, kv[i].Text+" "+kv[i+1].String())
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// answer runs a command and returns its untagged responses, one per line
// in the order they came, and the tagged status; an error is part of the
// answer (a NO is a view too).
func answer(c *cyruslab.IMAPClient, args ...any) string {
	r, err := c.Command(args...)
	if r == nil {
		return "error: " + err.Error()
	}
	var lines []string
	for _, d := range r.Data {
		l := d.Name
		if d.Num != 0 {
			l = fmt.Sprint(d.Num) + " " + l
		}
		for _, f := range d.Fields {
			l += " " + f.String()
		}
		if d.Code != "" {
			l += " [" + d.Code + "]"
		}
		if d.Text != "" && d.Code == "" {
			l += " " + d.Text
		}
		lines = append(lines, l)
	}
	tagged := r.Status
	if err != nil {
		tagged += " " + r.Text
	}
	return strings.Join(append(lines, tagged), "\n")
}

var (
	pathLine = regexp.MustCompile(`(?m)^  Path to mailbox: .*$`)
	uidLine  = regexp.MustCompile(`(?m)^  Unique ID: .*$`)
)

// tools runs mbexamine and reconstruct -n on every mailbox of
// mailboxes.db, the deleted ones included. What legitimately differs
// between two copies of a mailbox is blanked: its path and uniqueid.
func (s Snapshot) tools(lab *cyruslab.Lab) error {
	cfg, err := partition.LoadConfig(lab.Conf)
	if err != nil {
		return err
	}
	sp, err := partition.Open(cfg)
	if err != nil {
		return err
	}
	var names []string
	if err := sp.AllEntries(func(e partition.Entry) error {
		if !e.Deleted() && !e.Intermediate() && !e.Remote() {
			names = append(names, e.Name)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, n := range names {
		out, err := lab.RunTool(nil, "mbexamine", n)
		if err != nil {
			out += "error: " + err.Error()
		}
		out = pathLine.ReplaceAllString(out, "")
		out = uidLine.ReplaceAllString(out, "")
		s["mbexamine "+n] = out
		out, err = lab.RunTool(nil, "reconstruct", "-n", n)
		if err != nil {
			out += "error: " + err.Error()
		}
		s["reconstruct -n "+n] = strings.TrimSpace(out)
	}
	return nil
}

// Difference is one section that differs between two snapshots.
type Difference struct {
	Section string
	A, B    string // the section's text in each ("" when missing)
	Missing string // "A" or "B" when the section is in one snapshot only
}

// String shows the section and its first differing line.
func (d Difference) String() string {
	if d.Missing != "" {
		return fmt.Sprintf("%s: only in %s", d.Section, map[string]string{"A": "B", "B": "A"}[d.Missing])
	}
	a, b := strings.Split(d.A, "\n"), strings.Split(d.B, "\n")
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("%s: line %d:\n  A: %q\n  B: %q", d.Section, i+1, x, y)
		}
	}
	return d.Section + ": differs"
}

// Diff returns the sections that differ between a and b, by name.
func Diff(a, b Snapshot) []Difference {
	var names []string
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var out []Difference
	for _, n := range names {
		x, inA := a[n]
		y, inB := b[n]
		switch {
		case !inA:
			out = append(out, Difference{Section: n, B: y, Missing: "A"})
		case !inB:
			out = append(out, Difference{Section: n, A: x, Missing: "B"})
		case x != y:
			out = append(out, Difference{Section: n, A: x, B: y})
		}
	}
	return out
}

func texts(fs []cyruslab.Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Text
	}
	return out
}

func has(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
