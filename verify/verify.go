package verify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// Options configure Run.
type Options struct {
	// Spool, if set, is the live partition to compare the dump with.
	Spool *partition.Spool
	// Report is called with each finding as it is found, never
	// concurrently. It must not block for long: hashing waits meanwhile.
	Report func(Finding)
	// Progress, if set, is called from time to time from Run's goroutine.
	Progress func(Progress)
	// Workers is the number of hashing goroutines; GOMAXPROCS when 0.
	Workers int
	// Budget bounds the file literal bytes read ahead of the hashing
	// workers; DefaultBudget when 0.
	Budget int64
}

// Progress is how far Run has come.
type Progress struct {
	Offset              int64 // uncompressed bytes read
	Mailboxes, Messages int64
}

// Run verifies the dump read from r (see the package documentation) and
// returns a summary; findings go to opts.Report as they are found. A
// damaged dump is not an error: Run returns a nil error and the findings.
// Run fails only when it cannot do its work: r is not an mbtool dump at all
// (dumpfile.ErrNotDump, dumpfile.ErrVersion), reading r fails, the live
// partition cannot be read, or ctx is done.
func Run(ctx context.Context, r io.Reader, opts Options) (*Summary, error) {
	src := &sourceReader{r: r}
	d, err := dumpcheck.NewReader(src)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	v := &verifier{
		src:     src,
		ctx:     ctx,
		opts:    opts,
		d:       d,
		sum:     &Summary{Header: d.Header()},
		lits:    guidtable.New(guidtable.Options{ValueSize: 4}),
		inboxes: make(map[string]bool),
		policy:  dumpcheck.NewDump(),
		group:   &group{},
	}
	defer v.lits.Close()
	defer v.policy.Close()
	d.OnSkip = v.skip
	v.pool = newPool(opts.Workers, opts.Budget, v.badLiteral)
	err = v.stream()
	v.abortLive()
	if v.walk != nil {
		v.walk.halt()
	}
	v.pool.stop()
	v.liveWG.Wait()
	v.sum.Offset = d.Offset()
	if err == nil {
		err = v.finish()
	}
	v.nameGroup("")
	return v.sum, err
}

// sourceReader remembers the error of the dump's reader, to tell a dump
// that cannot be read (the run fails) from one whose content is damaged.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// verifier is the state of one Run.
type verifier struct {
	src  *sourceReader
	ctx  context.Context
	opts Options
	d    *dumpfile.Reader
	pool *pool

	mu  sync.Mutex // serialises Report and guards sum.Findings, groups
	sum *Summary

	lits *guidtable.Table // file literals so far: size (uint32, little-endian) by GUID
	// inboxes are the users whose INBOX the dump has so far (with a
	// live partition only); the names of all its mailboxes are the
	// policy's, which spills.
	inboxes map[string]bool
	policy  *dumpcheck.Dump // the one policy; it knows the uniqueids so far
	seen    []seenRef       // seen records whose mailbox was not (yet) in the dump
	group   *group          // the file literals since the last APPLY MAILBOX
	// skipped holds the GUIDs the dump records as skipped at dump time
	// (at most maxSkipped: beyond, their records count as no-message).
	skipped map[guid.GUID]struct{}

	walk     *mboxWalk     // finds the live entries of the dumped mailboxes
	cur      *mailboxState // the APPLY MAILBOX being read
	lineBox  string        // the mailbox of the line being read, once known
	liveWG   sync.WaitGroup
	progress int64 // offset of the last Progress call
}

// group is the file literals shipped for the next APPLY MAILBOX: a
// literal's findings name that mailbox, once it is known.
type group struct {
	named   bool
	mailbox string
	pending []Finding
}

type seenRef struct {
	user, uniqueid string
	offset         int64
}

// report passes f on and counts it.
func (v *verifier) report(f Finding) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reportLocked(f)
}

// maxSkipped bounds the skipped GUIDs remembered.
const maxSkipped = 100000

// skip reports an item the dump says it left out when it was written.
func (v *verifier) skip(s dumpfile.Skip, offset int64) {
	if s.UID != 0 && len(v.skipped) < maxSkipped {
		if v.skipped == nil {
			v.skipped = make(map[guid.GUID]struct{})
		}
		v.skipped[s.GUID] = struct{}{}
	}
	mailbox := s.Item
	if strings.HasPrefix(mailbox, "user ") {
		mailbox = ""
	}
	f := Finding{Kind: KindSkipped, Mailbox: mailbox, UID: s.UID, GUID: s.GUID, Offset: offset, Detail: "skipped when the dump was written: " + s.Reason}
	if mailbox == "" {
		f.Detail = s.Item + ": " + f.Detail
	}
	v.report(f)
}

// skippedAtDump reports whether the dump records g's file as skipped.
func (v *verifier) skippedAtDump(g guid.GUID) bool {
	_, ok := v.skipped[g]
	return ok
}

func (v *verifier) reportLocked(f Finding) {
	if f.Kind == KindSkipped {
		v.sum.Skipped++
		if v.opts.Report != nil {
			v.opts.Report(f)
		}
		return
	}
	v.sum.Findings++
	if !f.Kind.Live() {
		v.sum.Dump++
	}
	if v.opts.Report != nil {
		v.opts.Report(f)
	}
}

// badLiteral is called by a hashing worker for a literal whose bytes are
// not its GUID's.
func (v *verifier) badLiteral(l *literal, got guid.GUID) {
	f := Finding{Kind: KindLiteral, GUID: l.guid, Offset: l.offset,
		Detail: fmt.Sprintf("file literal of %d bytes hashes to %s", l.size, got)}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !l.group.named {
		l.group.pending = append(l.group.pending, f)
		return
	}
	f.Mailbox = l.group.mailbox
	v.reportLocked(f)
}

// nameGroup names the mailbox the current group of literals was shipped
// for, reports what was waiting for the name, and starts a new group.
func (v *verifier) nameGroup(mailbox string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	g := v.group
	g.named, g.mailbox = true, mailbox
	for _, f := range g.pending {
		f.Mailbox = mailbox
		v.reportLocked(f)
	}
	g.pending = nil
	v.group = &group{}
}

// stream reads the dump command by command. It returns an error only when
// the run cannot go on; damage ends the reading with a finding.
func (v *verifier) stream() error {
	for {
		if err := v.ctx.Err(); err != nil {
			return err
		}
		v.lineBox = ""
		verb, name, off, err := v.d.Next()
		if err == io.EOF {
			v.sum.Complete = true
			v.sum.Trailer = v.d.Trailer()
			return nil
		}
		if err != nil {
			return v.streamError(err, off)
		}
		switch {
		case verb == "APPLY" && name == "MESSAGE":
			err = v.messages(off)
		case verb == "APPLY" && name == "MAILBOX":
			v.sum.Mailboxes++
			err = v.mailbox(off)
		case verb == "APPLY" && (name == "SEEN" || name == "SUB" || name == "QUOTA" || name == "ANNOTATION"):
			err = v.meta(name, off)
		default:
			v.report(Finding{Kind: KindInvalid, Offset: off,
				Detail: fmt.Sprintf("unexpected command %q %q", verb, name)})
		}
		if err != nil {
			return v.streamError(err, off)
		}
		v.tick(false)
	}
}

func (v *verifier) tick(force bool) {
	if v.opts.Progress == nil {
		return
	}
	off := v.d.Offset()
	if force || off-v.progress >= 4<<20 {
		v.progress = off
		v.opts.Progress(Progress{Offset: off, Mailboxes: v.sum.Mailboxes, Messages: v.sum.Messages})
	}
}

// streamError turns an error that ended the reading into findings, or
// returns it when it means the run could not be done.
func (v *verifier) streamError(err error, off int64) error {
	if v.src.err != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if tr := v.d.Trailer(); tr != nil {
		// The trailer was read: the dump is complete, but wrong.
		v.sum.Complete = true
		v.sum.Trailer = tr
		if errors.Is(err, dumpfile.ErrDigest) {
			v.report(Finding{Kind: KindDigest, Offset: tr.Offset,
				Detail: fmt.Sprintf("trailer says BLAKE3 %x, the %d bytes before it hash to %x", tr.BLAKE3, tr.Offset, tr.Sum)})
		}
		if errors.Is(err, dumpfile.ErrTrailing) {
			v.report(Finding{Kind: KindTrailing, Offset: tr.End, Detail: "data after the trailer"})
		}
		return nil
	}
	f := Finding{Kind: KindParse, Offset: off, Detail: err.Error()}
	var pe *dlist.ParseError
	switch {
	case errors.As(err, &pe):
		f.Offset = pe.Offset
		if errors.Is(err, dlist.ErrTruncated) {
			f.Kind = KindTruncated
		}
	case errors.Is(err, dumpfile.ErrNoTrailer):
		f.Kind = KindTruncated
		f.Detail = "the dump ends without a trailer"
	case errors.Is(err, io.ErrUnexpectedEOF):
		f.Kind = KindTruncated
		f.Offset = v.d.Offset()
	}
	if f.Offset < off {
		f.Offset = off // errors that do not know where they are
	}
	f.Mailbox = v.lineBox
	v.report(f)
	return nil
}

// messages reads an APPLY MESSAGE line: a list of file literals.
func (v *verifier) messages(off int64) error {
	dl := v.d.DL()
	t, err := dl.Next()
	if err != nil {
		return err
	}
	if t.Kind != dlist.List {
		v.report(Finding{Kind: KindInvalid, Offset: t.Offset, Detail: fmt.Sprintf("APPLY MESSAGE: expected a list, found %v", t.Kind)})
		return nil
	}
	for {
		t, err := dl.Next()
		if err != nil {
			return err
		}
		switch t.Kind {
		case dlist.End:
			return nil
		case dlist.File:
			if err := v.literal(t); err != nil {
				return err
			}
		default:
			v.report(Finding{Kind: KindInvalid, Offset: t.Offset, Detail: fmt.Sprintf("APPLY MESSAGE: expected a file literal, found %v", t.Kind)})
			if t.Kind == dlist.List || t.Kind == dlist.KVList {
				if err := skipNested(dl); err != nil {
					return err
				}
			}
		}
	}
}

// skipNested skips the rest of a list whose opening token has been read.
func skipNested(dl *dlist.Reader) error {
	for depth := 1; depth > 0; {
		t, err := dl.Next()
		if err != nil {
			return err
		}
		switch t.Kind {
		case dlist.List, dlist.KVList:
			depth++
		case dlist.End:
			depth--
		}
	}
	return nil
}

// literal records a file literal and hands its bytes to the hashers.
func (v *verifier) literal(t dlist.Token) error {
	fi := t.File
	v.reportErr(v.policy.File(fi), Finding{GUID: fi.GUID, Offset: t.Offset}, "APPLY MESSAGE: ")
	v.sum.Messages++
	v.sum.Bytes += fi.Size
	var size [4]byte
	binary.LittleEndian.PutUint32(size[:], uint32(fi.Size)) // dlist limits file literals to 4294967295 bytes
	added, err := v.lits.Add(fi.GUID, size[:])
	if err != nil {
		return err
	}
	if !added {
		v.report(Finding{Kind: KindDuplicate, GUID: fi.GUID, Offset: t.Offset,
			Detail: "a second file literal with this GUID"})
	}
	l := &literal{guid: fi.GUID, size: fi.Size, offset: t.Offset, group: v.group}
	return v.pool.literal(l, v.d.DL())
}

// meta reads an APPLY SEEN, SUB or QUOTA line through the policy.
func (v *verifier) meta(name string, off int64) error {
	x, err := v.policy.ReadUserData(v.d, name)
	if err != nil && !decodeErr(err) {
		return err
	}
	v.reportErr(err, Finding{Offset: off}, "APPLY "+name+": ")
	if s, ok := x.(*syncrec.Seen); ok && err == nil {
		has, err := v.policy.HasMailbox(s.UniqueID)
		if err != nil {
			return err
		}
		if !has {
			v.seen = append(v.seen, seenRef{user: s.UserID, uniqueid: s.UniqueID, offset: off})
		}
	}
	return nil
}

// finish makes the checks that need the whole dump.
func (v *verifier) finish() error {
	if tr := v.sum.Trailer; tr != nil {
		s := v.sum
		if tr.Mailboxes != s.Mailboxes || tr.Messages != s.Messages || tr.Bytes != s.Bytes {
			v.report(Finding{Kind: KindCount, Offset: tr.Offset, Detail: fmt.Sprintf(
				"trailer counts %d mailboxes, %d messages, %d bytes; the dump has %d, %d, %d",
				tr.Mailboxes, tr.Messages, tr.Bytes, s.Mailboxes, s.Messages, s.Bytes)})
		}
	}
	var outside []seenRef
	for _, s := range v.seen {
		has, err := v.policy.HasMailbox(s.uniqueid)
		if err != nil {
			return err
		}
		if !has {
			outside = append(outside, s)
		}
	}
	if v.opts.Spool == nil {
		v.sum.SeenElsewhere = len(outside)
		return nil
	}
	if err := v.checkSeenLive(outside); err != nil {
		return err
	}
	return v.newMailboxes()
}
