package commands

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a byte progress bar with mailbox and message counts on
// stderr, only when stderr is a terminal and not --quiet.
type progress struct {
	bar             *progressbar.ProgressBar
	mailboxes, msgs int64
	totalMbx        int64
	verb            string
}

func newProgress(stderr io.Writer, quiet bool, verb string) *progress {
	if quiet || !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{verb: verb, bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetVisibility(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
		// Start the clock now: the rate is the bytes done over the time
		// since the command began, not since the first (large) update.
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetDescription(verb),
	)}
}

// shown reports whether the bar is drawn (and so wants totals).
func (p *progress) shown() bool { return p.bar != nil }

// plan sets the totals, when they are known.
func (p *progress) plan(mailboxes, messages, bytes int64) {
	if p.bar == nil {
		return
	}
	p.totalMbx = mailboxes
	if bytes > 0 {
		p.bar.ChangeMax64(bytes)
	}
}

// set reports what has been done so far.
func (p *progress) set(mailboxes, messages, bytes int64) {
	if p.bar == nil {
		return
	}
	if mailboxes != p.mailboxes || messages != p.msgs {
		p.mailboxes, p.msgs = mailboxes, messages
		// The total of mailboxes is exact; one of messages is not (the
		// index counts records, a dump writes each message file once), so
		// none is shown: the bar's percentage comes from the bytes.
		if p.totalMbx > 0 {
			p.bar.Describe(fmt.Sprintf("%s: %d/%d mailboxes, %d messages", p.verb, mailboxes, p.totalMbx, messages))
		} else {
			p.bar.Describe(fmt.Sprintf("%s: %d mailboxes, %d messages", p.verb, mailboxes, messages))
		}
	}
	p.bar.Set64(bytes)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar.Exit()
		p.bar = nil
	}
}

// humanBytes formats n in IEC units, for summaries.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
