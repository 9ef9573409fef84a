package seencleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// UnknownUsersError names the users asked for that own no mailbox and
// have no seen db.
type UnknownUsersError struct{ Users []string }

func (e *UnknownUsersError) Error() string {
	return "no such user: " + strings.Join(e.Users, ", ")
}

// Errors, for errors.Is.
var (
	// ErrNoSelection: neither users nor All were given.
	ErrNoSelection = errors.New("no users selected")
	// ErrNoUndoFile: Delete was asked for without an undo file.
	ErrNoUndoFile = errors.New("deleting needs an undo file")
	// ErrUndoExists: the undo file exists already; it is never overwritten.
	ErrUndoExists = errors.New("undo file exists")
	// ErrNotUndoable: a record whose value Cyrus's APPLY SEEN could not
	// store again byte for byte, so it is not removed.
	ErrNotUndoable = errors.New("record cannot be restored exactly")
	// ErrChanged: a record changed between the listing and the removal
	// and was left in place. The undo file still holds its old value, which
	// replaying the file would bring back.
	ErrChanged = errors.New("record changed since it was read")
)

// Options select the seen databases Run examines and what it does.
type Options struct {
	// Users are the userids ("alice", "alice@example.com" with virtual
	// domains) whose seen databases are examined.
	Users []string
	// All adds every user owning a mailbox, the deleted hierarchy
	// included, and every user with a seen db or subscriptions but no
	// mailbox (partition.Spool.Users): the users Users may name.
	All bool
	// Delete removes the records listed; without it Run only lists.
	Delete bool
	// PruneOrphans lists orphan records as to be removed too (removed with
	// Delete).
	PruneOrphans bool
	// UndoFile is the undo file to create with Delete. It must not exist.
	UndoFile string
	// Version is the mbtool version written into the undo file's header.
	Version string
	// Out receives one line per record found (see Record.String); nil
	// discards them.
	Out io.Writer
}

// Kind says why a record is listed.
type Kind int

// Kinds of listed records.
const (
	// Stale: a record for a mailbox the user owns whose index keeps the
	// owner's seen state itself.
	Stale Kind = iota + 1
	// Orphan: a record for a mailbox that no longer exists.
	Orphan
)

// String returns "stale" or "orphan".
func (k Kind) String() string {
	switch k {
	case Stale:
		return "stale"
	case Orphan:
		return "orphan"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Record is one listed seen record.
type Record struct {
	Kind Kind
	User string // owner of the seen database
	// Mailbox is the internal name of the mailbox; for an orphan the name
	// its tombstone in mailboxes.db still carries, or "".
	Mailbox  string
	UniqueID string // the key
	Value    []byte // the stored value
	// Remove tells whether the record is (or, in a dry run, would be)
	// removed: always for Stale, with PruneOrphans for Orphan.
	Remove bool
}

// String formats the record as one report line, fields separated by TAB:
// kind, user, mailbox ("-" if unknown), uniqueid, value. A field that is
// not printable UTF-8 without TAB is printed Go-quoted.
func (r Record) String() string {
	mbox := r.Mailbox
	if mbox == "" {
		mbox = "-"
	}
	return strings.Join([]string{r.Kind.String(), field(r.User), field(mbox), field(r.UniqueID), field(string(r.Value))}, "\t")
}

func field(s string) string {
	if !utf8.ValidString(s) || strings.HasPrefix(s, `"`) || strings.IndexFunc(s, func(c rune) bool { return c < ' ' || c == 0x7f }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// Summary is what Run found and did.
type Summary struct {
	Users   int // seen databases examined (one per user)
	Records int // records read from them
	Stale   int // stale records listed
	Orphans int // orphan records listed
	Kept    int // stale-looking records kept: the index is older than version 12
	Planned int // records to be removed (listed with Remove set)
	Removed int // records removed (Delete only)
	// UndoFile is the undo file written (Delete only).
	UndoFile string
	// Problems lists what was skipped, each an error naming the user and
	// database or mailbox: damaged or dirty seen databases, unreadable
	// indexes, records that could not be undone or changed meanwhile.
	Problems []error
}

// String returns a one-line summary.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d seen dbs, %d records: %d stale, %d orphan", s.Users, s.Records, s.Stale, s.Orphans)
	if s.UndoFile != "" {
		fmt.Fprintf(&b, "; removed %d of %d (undo file %s)", s.Removed, s.Planned, s.UndoFile)
	} else {
		fmt.Fprintf(&b, "; %d would be removed with --delete", s.Planned)
	}
	if s.Kept > 0 {
		fmt.Fprintf(&b, "; %d kept (index older than version %d)", s.Kept, internalSeenMin)
	}
	if s.Orphans > 0 && s.Planned < s.Stale+s.Orphans {
		b.WriteString("; orphans are removed only with --prune-orphans")
	}
	if n := len(s.Problems); n > 0 {
		fmt.Fprintf(&b, "; %d problem(s)", n)
	}
	return b.String()
}

// Run examines the seen databases of the selected users, writes one line
// per stale or orphan record to opts.Out, and with opts.Delete removes the
// stale ones (and the orphans, with PruneOrphans): first every record to be
// removed goes to the undo file, which is fsynced and read back, and then
// each user's database is changed atomically (see the package comment).
//
// Damaged databases and unreadable mailboxes are reported in
// Summary.Problems and left untouched; the run goes on with the other
// users. The error is for failures that stop the run: the configuration,
// mailboxes.db, the undo file, cancellation.
func Run(ctx context.Context, spool *partition.Spool, opts Options) (*Summary, error) {
	if !opts.All && len(opts.Users) == 0 {
		return nil, ErrNoSelection
	}
	if opts.Delete && opts.UndoFile == "" {
		return nil, ErrNoUndoFile
	}
	// A userid names files in the configuration directory: one with path
	// elements would name a seen db outside it.
	for _, u := range opts.Users {
		if err := dumpcheck.CheckUserID(u); err != nil {
			return nil, fmt.Errorf("user %q: %w", u, err)
		}
	}
	// Every user named must exist (have a seen db, or own a mailbox)
	// before anything is written: a typo is an error, not an empty run.
	var unknown []string
	for _, u := range opts.Users {
		if p, err := spool.SeenPath(u); err == nil {
			if _, err := os.Lstat(p); err == nil {
				continue
			}
		}
		owns, err := ownsMailbox(spool, u)
		if err != nil {
			return nil, err
		}
		if !owns {
			unknown = append(unknown, u)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownUsersError{Users: unknown}
	}
	users := slices.Clone(opts.Users)
	if opts.All {
		all, err := spool.Users()
		if err != nil {
			return nil, err
		}
		users = append(users, all...)
	}
	slices.Sort(users)
	users = slices.Compact(users)

	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	sum := &Summary{}
	var undo *undoWriter
	if opts.Delete {
		var err error
		if undo, err = createUndo(opts.UndoFile, opts.Version); err != nil {
			return nil, err
		}
		sum.UndoFile = opts.UndoFile
	}
	cache := newMailboxCache(spool)
	emit := func(r Record, s *syncrec.Seen) error {
		if _, err := fmt.Fprintln(out, r.String()); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
		if undo != nil && r.Remove {
			return undo.add(s)
		}
		return nil
	}
	for len(users) > 0 {
		err := ctx.Err()
		if err == nil {
			var n int
			n, err = planUsers(ctx, spool, cache, users, opts, sum, emit)
			users = users[n:]
		}
		if err != nil {
			if undo != nil {
				undo.abort()
			}
			return sum, err
		}
	}
	if undo == nil {
		return sum, nil
	}
	if sum.Planned == 0 {
		// Nothing to remove: no undo file is left behind.
		undo.abort()
		sum.UndoFile = ""
		return sum, nil
	}
	if err := undo.finish(); err != nil {
		undo.abort()
		return sum, err
	}
	defer undo.f.Close()
	if err := remove(ctx, spool, undo.f, opts.UndoFile, sum); err != nil {
		return sum, err
	}
	return sum, nil
}

// userBatch and recordBatch bound the users whose seen records planUsers
// lists together, and their records: their mailboxes are looked up in
// mailboxes.db together (mailboxCache.lookupAll), under one hold for
// lookupBatch of them, not one hold per record. A user has a record or
// two on most servers, so a batch of one user saved nothing.
const (
	userBatch   = 64
	recordBatch = 4096
)

// seenRecords is one user's seen database, read whole.
type seenRecords struct {
	user string
	recs [][2][]byte
	// problem: the database could not be found or read (recs nil); it
	// is reported in the users' order, with their records' problems.
	problem error
}

// planUsers lists the records of the seen databases of the first users
// (at most userBatch of them, and fewer when their records pass
// recordBatch), calling emit for each stale or orphan record with its
// APPLY SEEN form, and returns how many users it went through.
func planUsers(ctx context.Context, spool *partition.Spool, cache *mailboxCache, users []string, opts Options,
	sum *Summary, emit func(Record, *syncrec.Seen) error) (int, error) {
	// The users' seen databases are found under one hold too: where a
	// user's files are depends on the uniqueid of its INBOX.
	users = users[:min(len(users), userBatch)]
	paths := make([]string, len(users))
	pathErrs := make([]error, len(users))
	err := spool.ReadMailboxes(func(v *partition.MailboxesView) error {
		for i, u := range users {
			paths[i], _, pathErrs[i] = v.UserDBPaths(u)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var batch []seenRecords
	var ids []string
	n := 0
	for n < len(users) && len(ids) < recordBatch {
		user, path, pathErr := users[n], paths[n], pathErrs[n]
		n++
		if pathErr != nil {
			batch = append(batch, seenRecords{user: user, problem: fmt.Errorf("seen db of %s: %w", user, pathErr)})
			continue
		}
		recs, err := readUser(ctx, spool, user, path, sum)
		if err != nil {
			return n, err
		}
		batch = append(batch, *recs)
		for _, kv := range recs.recs {
			ids = append(ids, string(kv[0]))
		}
	}
	boxes, err := cache.lookupAll(ids)
	if err != nil {
		return n, err
	}
	for _, u := range batch {
		if u.problem != nil {
			sum.Problems = append(sum.Problems, u.problem)
			continue
		}
		if err := planUser(ctx, spool, u, boxes[:len(u.recs)], ids[:len(u.recs)], opts, sum, emit); err != nil {
			return n, err
		}
		boxes, ids = boxes[len(u.recs):], ids[len(u.recs):]
	}
	return n, nil
}

// readUser reads user's seen database (at path) whole; when it cannot
// be read, the records are nil and the problem says why.
func readUser(ctx context.Context, spool *partition.Spool, user, path string, sum *Summary) (*seenRecords, error) {
	// The database is read whole and its lock released before any index
	// is looked at: a seen db lock is a leaf (docs/cyrus/locks.md §3), and Cyrus
	// takes it while holding a mailbox's index lock.
	u := &seenRecords{user: user}
	err := readSeen(ctx, spool.Config.Tree(), path, spool.Config.SeenDB, func(k, v []byte) error {
		u.recs = append(u.recs, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return &seenRecords{user: user, problem: fmt.Errorf("seen db of %s (left untouched): %w", user, err)}, nil
	}
	sum.Users++
	sum.Records += len(u.recs)
	return u, nil
}

// planUser goes through the records of one user's seen database, with the
// mailbox each one's uniqueid names (boxes, ids: in the order of u.recs),
// calling emit for each stale or orphan record with its APPLY SEEN form.
func planUser(ctx context.Context, spool *partition.Spool, u seenRecords, boxes []mailbox, ids []string, opts Options,
	sum *Summary, emit func(Record, *syncrec.Seen) error) error {
	problem := func(err error) { sum.Problems = append(sum.Problems, err) }
	user := u.user
	for i, kv := range u.recs {
		r := Record{User: user, UniqueID: ids[i], Value: kv[1]}
		m := boxes[i]
		switch {
		case m.kind == partition.Tombstone:
			r.Kind, r.Mailbox, r.Remove = Orphan, m.entry.Name, opts.PruneOrphans
		case m.owner != user || m.kind != partition.Local:
			continue // another user's or a shared mailbox: live state
		default:
			v, err := indexVersion(ctx, spool, m.entry)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				problem(fmt.Errorf("seen record of %s for %s kept: %w", user, m.entry.Name, err))
				continue
			}
			if v < internalSeenMin {
				sum.Kept++
				continue
			}
			r.Kind, r.Mailbox, r.Remove = Stale, m.entry.Name, true
		}
		s, err := toSeen(user, kv[0], kv[1])
		if err != nil && r.Remove {
			problem(fmt.Errorf("seen record of %s for %s kept: %w", user, r.UniqueID, err))
			r.Remove = false
		}
		if r.Kind == Stale {
			sum.Stale++
		} else {
			sum.Orphans++
		}
		if r.Remove {
			sum.Planned++
		}
		if err := emit(r, s); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the records of the undo file from the seen databases, one
// atomic rewrite per user.
func remove(ctx context.Context, spool *partition.Spool, undo *os.File, undoFile string, sum *Summary) error {
	// Read it back whole first: the trailer's digest proves the file can
	// restore everything before anything is deleted.
	if _, err := readUndo(undo, undoFile, func(*syncrec.Seen) error { return ctx.Err() }); err != nil {
		return fmt.Errorf("checking the undo file: %w", err)
	}
	afterUndoCheck()
	var user string
	var batch []change
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		defer func() { batch = batch[:0] }()
		path, err := spool.SeenPath(user)
		if err == nil {
			var n int
			n, err = rewriteSeen(ctx, spool.Config.Tree(), path, spool.Config.SeenDB, batch)
			sum.Removed += n
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sum.Problems = append(sum.Problems, fmt.Errorf("seen db of %s (left untouched): %w", user, err))
			return nil
		}
		for _, c := range batch {
			if !c.applied && c.found != nil {
				sum.Problems = append(sum.Problems, fmt.Errorf("seen record of %s for %s kept (now %q; the undo file has the old value): %w",
					user, c.key, c.found, ErrChanged))
			}
		}
		return nil
	}
	_, err := readUndo(undo, undoFile, func(s *syncrec.Seen) error {
		if s.UserID != user {
			if err := flush(); err != nil {
				return err
			}
			user = s.UserID
		}
		// Mailboxes created since the listing started: a record listed
		// as an orphan may belong to one by now (its uniqueid is new, so
		// the record was written after the mailbox existed, and
		// mailboxes.db is read again here, after the listing).
		m, err := lookupMailbox(spool, s.UniqueID)
		if err != nil {
			return err
		}
		if m.kind != partition.Tombstone && (m.owner != s.UserID || m.kind != partition.Local) {
			sum.Problems = append(sum.Problems, fmt.Errorf("seen record of %s for %s kept: mailbox %s appeared during the run", s.UserID, s.UniqueID, m.entry.Name))
			return nil
		}
		batch = append(batch, change{key: []byte(s.UniqueID), want: seenValue(s)})
		return nil
	})
	if err == nil {
		err = flush()
	}
	return err
}

// readSeen calls fn for every record of the seen database at path, read
// under its shared lock (waited for until ctx is done), in the database's
// order. A missing file is an empty database. The backend is detected as
// in rewriteSeen (sniffTwoskip). A twoskip file that a killed writer left
// unclean is read as of its last commit (what Cyrus's recovery, and
// rewriteSeen's, restore); a damaged one is an error wrapping
// cyrusdb.ErrCorrupt.
func readSeen(ctx context.Context, tree *cyrusfs.Tree, path, backend string, fn func(k, v []byte) error) error {
	f, err := tree.OpenLocked(ctx, path, os.O_RDONLY, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	twoskip, err := sniffTwoskip(f, path, backend)
	switch {
	case err != nil:
		return err
	case twoskip:
		db, err := cyrusdb.ReadTwoskip(path, f, fi.Size())
		if err != nil {
			return err
		}
		// A file a killed writer left unclean is read as of its last
		// commit, which is what Cyrus's recovery restores.
		return db.ForEach(nil, fn)
	case backend == "flat":
		return cyrusdb.ReadFlat(path, io.NewSectionReader(f, 0, fi.Size()), fn)
	}
	return fmt.Errorf("%s: seenstate_db %s is not supported (twoskip or flat)", path, backend)
}
