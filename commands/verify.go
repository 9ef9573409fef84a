package commands

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/verify"
	"github.com/urfave/cli/v2"
)

func init() { subcommands = append(subcommands, newVerifyCommand) }

type verifyOptions struct {
	input   string // a file name or "-"
	config  string // imapd.conf, with against
	against bool   // compare with the live partition
	json    bool
	quiet   bool
}

func newVerifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a dump, or compare it with the live Cyrus partition",
		ArgsUsage: "FILE|-",
		Description: "Reads a dump (plain or zstd) in one pass and checks it: the trailer's BLAKE3\n" +
			"digest and counts, every message's bytes against its GUID, that every record's\n" +
			"message is in the dump, and per mailbox the SYNC_CRC and SYNC_CRC_ANNOT, UIDs and\n" +
			"MODSEQs. With --against FILE it also compares the dump with the live partition of\n" +
			"-C imapd.conf, read-only and taking shared locks only: messages missing, added,\n" +
			"with another GUID, or with flags or MODSEQ changed; message files whose bytes no\n" +
			"longer match their GUID (bit rot); UIDVALIDITY changed; mailboxes missing or new.\n\n" +
			"Each finding is one line on standard output naming the mailbox, UID, GUID and\n" +
			"byte offset in the dump; --json writes one JSON object instead, the summary\n" +
			"with the count of findings and the first 100 of them (see docs/json.md).\n\n" +
			"Items the dump records it skipped when it was written (a message file missing\n" +
			"at the source) are listed as skipped-at-dump, not as damage. Verify exits 0\n" +
			"when nothing is wrong, 1 when it found damage or differences, 2 when it could\n" +
			"not run (no such file, not a dump), 3 when the dump is intact but records\n" +
			"items skipped when it was written.\n\n" +
			"EXAMPLES:\n" +
			"   mbtool verify /backup/alice.dlist.zst\n" +
			"   mbtool verify -C /etc/imapd.conf --against /backup/alice.dlist.zst\n" +
			"   ssh backup cat alice.dlist.zst | mbtool verify --json -",
		Flags: []cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "against", Usage: "compare the dump `FILE` with the live partition", TakesFile: true},
			repoFlag("check the backup repository `DIR` instead of a dump"),
			&cli.BoolFlag{Name: "read-data", Usage: "with --repo: read every pack and re-hash every message"},
		},
		Action: func(c *cli.Context) error {
			args, err := positional(c)
			if err != nil {
				return err
			}
			o := verifyOptions{json: c.Bool("json"), quiet: e.quiet(), config: configPath(c)}
			if c.String("repo") != "" { // commands/repo.go
				if len(args) > 0 || c.String("against") != "" {
					return usagef("give a dump or --repo, not both")
				}
				return runVerifyRepo(c.Context, e, c.String("repo"), c.Bool("read-data"), o.json)
			}
			switch against := c.String("against"); {
			case against != "" && len(args) > 0:
				return usagef("give the dump either as --against FILE or as an argument, not both")
			case against != "":
				o.input, o.against = against, true
			case len(args) == 1:
				o.input = args[0]
			case len(args) == 0:
				return &hintError{err: &usageError{msg: "no dump to verify"},
					hint: "name a dump file, or - for standard input"}
			default:
				return usagef("verify takes one dump, not %d", len(args))
			}
			return runVerify(c.Context, e, o)
		},
	}
}

func runVerify(ctx context.Context, e *env, o verifyOptions) error {
	var spool *partition.Spool
	e.out.Mode, e.out.Input = "file", o.input
	if o.against {
		e.out.Mode, e.out.Config = "partition", o.config
		var err error
		if spool, err = openSpoolOf(o.config); err != nil {
			return err
		}
	}
	in, size, closeIn, err := openInput(e, o.input)
	if err != nil {
		return err
	}
	defer closeIn()
	// A stalled pipe must not keep the first SIGINT waiting.
	counted := &countingReader{r: interruptible(ctx, in)}

	bar := newProgress(e.stderr, o.quiet, "verify")
	bar.plan(0, 0, size)
	out := newFindingWriter(e, o.json)
	start := time.Now()
	sum, err := verify.Run(ctx, counted, verify.Options{
		Spool:  spool,
		Report: out.finding,
		// Only bytes: the totals of mailboxes and messages are not known
		// before the trailer.
		Progress: func(verify.Progress) { bar.set(0, 0, counted.n.Load()) },
	})
	bar.finish()
	if err != nil {
		hint := "verify could not finish"
		if out.n > 0 && !o.json {
			hint += "; what it found so far is on standard output"
		}
		return couldNotRun(fmt.Errorf("verifying %s: %w", o.input, err), hint)
	}
	if err := out.summary(sum, o.input, time.Since(start)); err != nil {
		return err
	}
	if sum.OK() && sum.Skipped > 0 {
		return &exitError{code: ExitPartial, err: fmt.Errorf("%s: intact, but %d item(s) were skipped when the dump was written (the skipped-at-dump lines say why)", o.input, sum.Skipped)}
	}
	if !sum.OK() {
		what := "damage"
		if sum.Dump == 0 && sum.Complete {
			what = "differences from the live partition"
		}
		return &exitError{code: ExitFailure, err: fmt.Errorf("%s: %d finding(s): %s", o.input, sum.Findings, what)}
	}
	return nil
}

// countingReader counts the bytes read, for the progress bar.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// findingWriter prints findings and the summary as text, or gathers them
// into the run's JSON outcome.
type findingWriter struct {
	e    *env
	w    io.Writer
	json bool
	n    int64
	err  error
}

func newFindingWriter(e *env, asJSON bool) *findingWriter {
	return &findingWriter{e: e, w: e.stdout, json: asJSON}
}

// jsonFinding is the JSON form of a finding.
type jsonFinding struct {
	Kind    string `json:"kind"`
	Mailbox string `json:"mailbox,omitempty"`
	UID     uint32 `json:"uid,omitempty"`
	GUID    string `json:"guid,omitempty"`
	Offset  *int64 `json:"offset,omitempty"` // absent when the finding has no place in the dump
	Path    string `json:"path,omitempty"`
	Detail  string `json:"detail"`
}

type jsonTrailer struct {
	Mailboxes int64  `json:"mailboxes"`
	Messages  int64  `json:"messages"`
	Bytes     int64  `json:"bytes"`
	BLAKE3    string `json:"blake3"`
}

func (fw *findingWriter) finding(f verify.Finding) {
	fw.n++
	if fw.err != nil {
		return
	}
	if !fw.json {
		_, fw.err = fmt.Fprintln(fw.w, f.String())
		return
	}
	if len(fw.e.out.FirstFindings) >= maxListed {
		return
	}
	j := jsonFinding{Kind: string(f.Kind), Mailbox: f.Mailbox, UID: f.UID, Path: f.Path, Detail: f.Detail}
	if !f.GUID.IsNull() {
		j.GUID = f.GUID.String()
	}
	if f.Offset != verify.NoOffset {
		off := f.Offset
		j.Offset = &off
	}
	fw.e.out.FirstFindings = append(fw.e.out.FirstFindings, j)
}

func (fw *findingWriter) summary(s *verify.Summary, file string, took time.Duration) error {
	if fw.err != nil {
		return fmt.Errorf("writing the report: %w", fw.err)
	}
	o := fw.e.out
	o.Mailboxes, o.Messages, o.Bytes, o.Records = s.Mailboxes, s.Messages, s.Bytes, s.Records
	o.Findings, o.Complete, o.Damage = count(s.Findings), &s.Complete, count(s.Dump)
	o.SeenElsewhere = count(s.SeenElsewhere)
	if s.LiveMailboxes > 0 || s.LiveFiles > 0 {
		o.LiveMailboxes, o.LiveFiles = count(s.LiveMailboxes), count(s.LiveFiles)
	}
	o.DumpHost = s.Header.Host
	if !s.Header.Created.IsZero() {
		c := s.Header.Created
		o.DumpCreated = &c
	}
	if tr := s.Trailer; tr != nil {
		o.Trailer = &jsonTrailer{Mailboxes: tr.Mailboxes, Messages: tr.Messages, Bytes: tr.Bytes, BLAKE3: hex.EncodeToString(tr.BLAKE3[:])}
	}
	o.SkippedAtDump = count(s.Skipped)
	state := "OK"
	switch {
	case !s.Complete:
		state = "INCOMPLETE"
	case s.Dump > 0:
		state = "DAMAGED"
	case s.Findings > 0:
		state = "DIFFERS"
	case s.Skipped > 0:
		state = "PARTIAL"
	}
	line := fmt.Sprintf("%s: %s: %d mailboxes, %d messages (%s), %d records; %d finding(s)",
		file, state, s.Mailboxes, s.Messages, humanBytes(s.Bytes), s.Records, s.Findings)
	if s.LiveMailboxes > 0 || s.LiveFiles > 0 {
		line += fmt.Sprintf("; compared %d live mailboxes, hashed %d message files", s.LiveMailboxes, s.LiveFiles)
	}
	if s.Skipped > 0 {
		line += fmt.Sprintf("; %d item(s) skipped when the dump was written", s.Skipped)
	}
	if s.SeenElsewhere > 0 {
		line += fmt.Sprintf("; %d seen record(s) for mailboxes outside the dump (not checked)", s.SeenElsewhere)
	}
	line += fmt.Sprintf(" in %s", took.Round(time.Millisecond))
	o.Summary = line
	if fw.json {
		return nil
	}
	if _, err := fmt.Fprintln(fw.w, line); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
