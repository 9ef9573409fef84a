package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"
)

// The outcome of a run, for people and for monitoring. Every command,
// whatever its mode (a partition, a server, a repository), reports through
// the same few calls on its env:
//
//   - e.warnf for each item skipped or worth a look: a "mbtool: warning:"
//     line on standard error, counted in the summary, logged with --syslog;
//   - e.done for the one-line summary of the work done ("dumped 7
//     mailboxes ..."), printed unless --quiet or --json, logged with
//     --syslog, and set as the JSON summary's "summary";
//   - e.out's fields for the counts.
//
// When the command ends, Run adds the exit status and error and, with
// --json, prints e.out as ONE JSON object; with --syslog it logs the
// outcome. The field names are the same for every command and mode (see
// docs/json.md); a count that does not apply to a command is left out.

// maxListed bounds the warnings and findings a JSON summary lists; the
// counts are always complete.
const maxListed = 100

// Outcome is the JSON summary of one run.
type Outcome struct {
	Command string `json:"command"`         // dump, restore, verify, seen-cleanup, ...
	Mode    string `json:"mode"`            // partition, server, file, repo
	OK      bool   `json:"ok"`              // exit status 0
	Status  string `json:"status"`          // ok, partial, failed, usage, interrupted
	Exit    int    `json:"exit"`            // the exit status
	Error   string `json:"error,omitempty"` // the error line, when the run did not succeed
	Hint    string `json:"hint,omitempty"`  // what to do about it
	Summary string `json:"summary,omitempty"`
	DryRun  bool   `json:"dry_run,omitempty"`
	Version string `json:"version"`
	Config  string `json:"config,omitempty"` // the imapd.conf read
	Server  string `json:"server,omitempty"`
	Input   string `json:"input,omitempty"`  // the dump read
	Output  string `json:"output,omitempty"` // the file written ("-": standard output)

	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`

	// The work done: mailboxes, messages and bytes dumped, restored,
	// verified or examined.
	Mailboxes int64 `json:"mailboxes"`
	Messages  int64 `json:"messages"`
	Bytes     int64 `json:"bytes"`
	Records   int64 `json:"records,omitempty"` // index records (expunged included)
	Users     int64 `json:"users,omitempty"`

	// restore: what happened to each mailbox of the dump.
	Created  *int64 `json:"created,omitempty"`
	Replaced *int64 `json:"replaced,omitempty"`
	Refused  *int64 `json:"refused,omitempty"`
	Present  *int64 `json:"present,omitempty"` // already there, left alone
	Excluded *int64 `json:"excluded,omitempty"`
	Merged   *int64 `json:"merged,omitempty"` // --undelete: mailboxes merged into
	Added    *int64 `json:"added,omitempty"`  // --undelete: messages appended to them

	// dump: the users' deleted folders included.
	Deleted *int64 `json:"deleted,omitempty"`

	// verify.
	Findings      *int64       `json:"findings,omitempty"`
	FirstFindings []any        `json:"first_findings,omitempty"`
	Trailer       *jsonTrailer `json:"trailer,omitempty"`
	Complete      *bool        `json:"complete,omitempty"`
	Damage        *int64       `json:"damage,omitempty"`         // findings that are damage in the dump itself
	SeenElsewhere *int64       `json:"seen_elsewhere,omitempty"` // seen records for mailboxes outside the dump
	LiveMailboxes *int64       `json:"live_mailboxes,omitempty"` // --against: live mailboxes compared
	LiveFiles     *int64       `json:"live_files,omitempty"`     // --against: live message files hashed
	DumpHost      string       `json:"dump_host,omitempty"`      // from the dump's header
	DumpCreated   *time.Time   `json:"dump_created,omitempty"`

	// dump: items recorded as skipped in the dump; verify: such records read.
	SkippedAtDump *int64 `json:"skipped_at_dump,omitempty"`

	// repository: the snapshot written or read; message files and bytes
	// the run added, and bytes it found already stored.
	Snapshot    string `json:"snapshot,omitempty"`
	NewMessages *int64 `json:"new_messages,omitempty"`
	NewBytes    *int64 `json:"new_bytes,omitempty"`
	ReusedBytes *int64 `json:"reused_bytes,omitempty"`
	// verify --repo and prune: snapshots checked, kept and removed; packs
	// and states removed or rewritten; bytes freed.
	Snapshots        *int64 `json:"snapshots,omitempty"`
	SnapshotsKept    *int64 `json:"snapshots_kept,omitempty"`
	SnapshotsRemoved *int64 `json:"snapshots_removed,omitempty"`
	Packs            *int64 `json:"packs,omitempty"`
	PacksRemoved     *int64 `json:"packs_removed,omitempty"`
	PacksRepacked    *int64 `json:"packs_repacked,omitempty"`
	StatesRemoved    *int64 `json:"states_removed,omitempty"`
	BytesRemoved     *int64 `json:"bytes_removed,omitempty"`
	BytesUnused      *int64 `json:"bytes_unused,omitempty"` // prune: unused bytes left in packs kept (--max-unused)
	// list: the rows it would print.
	Listing []any `json:"listing,omitempty"`

	// seen-cleanup.
	Stale    *int64 `json:"stale,omitempty"`
	Orphans  *int64 `json:"orphans,omitempty"`
	Removed  *int64 `json:"removed,omitempty"`
	UndoFile string `json:"undo_file,omitempty"`

	// Warnings counts the warnings printed; FirstWarnings lists the first
	// maxListed of them.
	Warnings      int64    `json:"warnings"`
	FirstWarnings []string `json:"first_warnings"`
}

// count returns a pointer to n, for the optional counts.
func count[T int | int64](n T) *int64 { v := int64(n); return &v }

// reporting holds the --json, --syslog and --quiet state of a run.
type reporting struct {
	json, syslog, quiet bool
	config              string // -C, for syslog's facility and tag
	log                 *sysLogger
	logTried            bool
	summaryTo           io.Writer // where --json writes; standard output unless it carries data
}

// reportFlags are the flags every command has, added by newApp.
func reportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print the outcome as one JSON object (on standard output, or standard error when the dump goes there); see docs/json.md"},
		&cli.BoolFlag{Name: "syslog", Usage: "also log warnings and the outcome to syslog (facility and tag as Cyrus's tools: syslog_facility, syslog_prefix)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar and no summary line (warnings and errors are still printed)"},
	}
}

// warnf reports an item that was skipped or needs a look.
func (e *env) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(e.stderr, "mbtool: warning: %s\n", msg)
	e.out.Warnings++
	if len(e.out.FirstWarnings) < maxListed {
		e.out.FirstWarnings = append(e.out.FirstWarnings, msg)
	}
	e.rep.log.warning(msg)
}

// done records the summary line of the work done and prints it unless
// --quiet or --json.
func (e *env) done(format string, args ...any) {
	e.out.Summary = fmt.Sprintf(format, args...)
	if !e.rep.quiet && !e.rep.json {
		fmt.Fprintf(e.stderr, "mbtool: %s\n", e.out.Summary)
	}
}

// quiet reports whether the progress bar is to be left out.
func (e *env) quiet() bool { return e.rep.quiet || e.rep.json }

// dataOnStdout says that standard output carries the command's data (a
// dump to -o -), so that --json writes its object to standard error.
func (e *env) dataOnStdout() { e.rep.summaryTo = e.stderr }

// finish completes the outcome with the exit status and error and writes
// it where --json and --syslog ask.
func (e *env) finish(code int, err error) {
	o := e.out
	o.Exit, o.OK = code, code == ExitOK
	o.Seconds = time.Since(o.Started).Round(time.Millisecond).Seconds()
	switch code {
	case ExitOK:
		o.Status = "ok"
	case ExitPartial:
		o.Status = "partial"
	case ExitUsage:
		o.Status = "usage"
	case ExitInterrupted:
		o.Status = "interrupted"
	default:
		o.Status = "failed"
	}
	if err != nil && code != ExitInterrupted {
		o.Error = err.Error()
	} else if code == ExitInterrupted {
		o.Error = "interrupted"
	}
	var he *hintError
	if errors.As(err, &he) {
		o.Hint = he.hint
	}
	if o.FirstWarnings == nil {
		o.FirstWarnings = []string{}
	}
	if e.rep.json {
		enc := json.NewEncoder(e.rep.summaryTo)
		enc.SetEscapeHTML(false)
		enc.Encode(o)
	}
	e.rep.log.outcome(o)
	e.rep.log.close()
}
