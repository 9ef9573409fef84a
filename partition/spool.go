package partition

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/cyrusfs"
)

// Spool is a read-only view of a Cyrus 3.6 installation: its mailboxes.db,
// mailbox directories and per-user databases, as configured by an
// imapd.conf. A Spool keeps mailboxes.db and annotations.db open between
// reads (unlocked between them, as a Cyrus process keeps its databases),
// and the namespace lock file of the last owner whose mailbox it opened
// (unlocked too, with the check of the roots that owner's mailboxes are
// opened beneath: nsLockCache); no other file. It is safe for concurrent
// use.
type Spool struct {
	// Config is the configuration the spool was opened with.
	Config *Config

	mboxdb  dbHandle // mailboxes.db, open between lookups
	annotdb dbHandle // annotations.db, open between reads
	nsLock  nsLockCache

	treeOnce sync.Once
	treeVal  *cyrusfs.Tree

	idCheck     sync.Mutex // checkIDRecords
	idCheckDone bool
}

// tree is Config.Tree, made once: the roots every file of the spool is
// opened beneath without following symlinks.
func (s *Spool) tree() *cyrusfs.Tree {
	s.treeOnce.Do(func() { s.treeVal = s.Config.Tree() })
	return s.treeVal
}

// Open checks that the directories cfg names exist (configdirectory, every
// partition, and mailboxes.db) and returns the Spool.
func Open(cfg *Config) (*Spool, error) {
	if cfg == nil {
		return nil, errors.New("partition: nil config")
	}
	if err := checkDir("configdirectory", cfg.ConfigDir); err != nil {
		return nil, err
	}
	for name, dir := range cfg.Partitions {
		if err := checkDir("partition-"+name, dir); err != nil {
			return nil, err
		}
	}
	if len(cfg.Partitions) == 0 {
		return nil, fmt.Errorf("%w: no partition-<name> option", ErrConfig)
	}
	if cfg.MboxlistDB != "twoskip" {
		return nil, fmt.Errorf("mboxlist_db %s: only twoskip is supported", cfg.MboxlistDB)
	}
	if _, err := os.Stat(cfg.MboxlistPath); err != nil {
		return nil, fmt.Errorf("mailboxes.db: %w", err)
	}
	return &Spool{Config: cfg}, nil
}

func checkDir(what, dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s: not a directory", what, dir)
	}
	return nil
}

// ACLEntry is one identifier and its rights in a mailbox ACL.
type ACLEntry struct {
	ID, Rights string
}

// FormatACL renders an ACL in Cyrus's in-memory and sync form:
// "id<TAB>rights<TAB>" for each entry.
func FormatACL(acl []ACLEntry) string {
	var b strings.Builder
	for _, a := range acl {
		b.WriteString(a.ID)
		b.WriteByte('\t')
		b.WriteString(a.Rights)
		b.WriteByte('\t')
	}
	return b.String()
}

// ParseACL parses the "id<TAB>rights<TAB>..." form. A trailing identifier
// without rights is dropped, as Cyrus's ACL parser does.
func ParseACL(s string) []ACLEntry {
	var acl []ACLEntry
	f := strings.Split(s, "\t")
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == "" {
			continue
		}
		acl = append(acl, ACLEntry{ID: f[i], Rights: f[i+1]})
	}
	return acl
}

// Entry is one mailbox record of mailboxes.db (an N key).
type Entry struct {
	// Name is the internal name with '.' separators and '^' for a literal
	// dot: "user.alice.Sent", "example.com!user.bob", "shared.team".
	Name     string
	UniqueID string
	// Partition is the spool partition ("" for tombstones).
	Partition string
	// Type is the mbtype letters (docs/cyrus/replication.md §3): "e" is plain email
	// in the uniqueid layout, "el" plain email in the legacy layout; "d"
	// marks a deleted tombstone, "i" an intermediate, "r" a remote one.
	Type          string
	Server        string // S, for remote mailboxes
	UIDValidity   uint32
	CreatedModseq uint64
	FolderModseq  uint64
	MTime         int64
	// ACL in stored order.
	ACL []ACLEntry

	// stamp is the state of mailboxes.db the entry was read from
	// (dbHandle.stamp), 0 if it was not read from one.
	stamp uint64
}

func (e Entry) hasFlag(c byte) bool {
	// The first letter is the type unless it is a flag letter
	// (mboxlist_string_to_mbtype); flag letters are never type letters.
	return strings.IndexByte(e.Type, c) >= 0
}

// LegacyDirs reports whether the mailbox uses name-based directories.
func (e Entry) LegacyDirs() bool { return e.hasFlag('l') }

// Deleted reports whether the entry is a tombstone of a deleted mailbox.
func (e Entry) Deleted() bool { return e.hasFlag('d') }

// Intermediate reports whether the entry is an intermediate placeholder.
func (e Entry) Intermediate() bool { return e.hasFlag('i') }

// Remote reports whether the mailbox lives on another server.
func (e Entry) Remote() bool { return e.hasFlag('r') }

// Moving reports whether the mailbox is being moved between servers.
func (e Entry) Moving() bool { return e.hasFlag('m') }

// SyncType is the MBOXTYPE sent in replication: Type without the
// legacy-dirs letter, "" for plain email.
func (e Entry) SyncType() string {
	t := strings.ReplaceAll(e.Type, "l", "")
	if t == "e" {
		return ""
	}
	return t
}

// Owner returns the userid owning the mailbox: "alice" for user.alice and
// its children, "bob@example.com" for example.com!user.bob..., "" for a
// shared mailbox. Mailboxes under the deleted prefix keep their owner, as
// in imap/mboxname.c mboxname_to_userid.
func (e Entry) Owner(cfg *Config) string { return cfg.parseName(e.Name).userid() }

// real reports whether the entry is a mailbox with local files that a
// dump should include. Mailboxes under the deleted prefix
// (DELETED.user.dave.Gone.6B0F37A3, delete_mode: delayed) are real: Cyrus
// lists them with their owner's (mboxlist_usermboxtree with
// MBOXTREE_DELETED) and replicates them.
func (s *Spool) real(e Entry) bool {
	return !e.Deleted() && !e.Intermediate() && !e.Remote() && e.Partition != ""
}

// mboxEntries reads N records of mailboxes.db under the database's shared
// lock, and releases the lock before returning (it is a leaf lock:
// docs/cyrus/locks.md §3): those of the dbname tree and everything under
// it, or of the whole database when tree is "", that keep reports true
// for (all if keep is nil). A tree's records follow each other (a name's
// children follow it): one search down the skip list finds the first, and
// the walk ends after the last, so the cost is O(log n) plus the records
// returned.
func (s *Spool) mboxEntries(tree string, keep func(Entry) bool) ([]Entry, error) {
	var entries []Entry
	err := s.withMboxlist(func(db *cyrusdb.Twoskip, stamp uint64) error {
		var err error
		entries, err = s.mboxEntriesIn(db, stamp, tree, keep)
		return err
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// mboxEntriesIn is mboxEntries in db, locked (stamp is its view's).
func (s *Spool) mboxEntriesIn(db *cyrusdb.Twoskip, stamp uint64, tree string, keep func(Entry) bool) ([]Entry, error) {
	path := s.Config.MboxlistPath
	var entries []Entry
	add := func(k, v []byte) error {
		e, err := parseEntry(k[1:], v)
		if err != nil {
			return fmt.Errorf("mailboxes.db %s: key %q: %w", path, k, err)
		}
		if keep != nil && !keep(e) {
			return nil
		}
		e.stamp = stamp
		entries = append(entries, e)
		return nil
	}
	var err error
	if tree == "" {
		err = db.ForEach([]byte("N"), add)
	} else {
		key, under := []byte("N"+tree), []byte("N"+tree+string(rune(dbHierSep)))
		err = db.ForEach(key, func(k, v []byte) error {
			switch {
			case bytes.HasPrefix(k, under):
			case bytes.Equal(k, key):
			case cyrusdb.KeyLess(under, k):
				return errWalkDone
			default:
				return nil // between the name and its children
			}
			return add(k, v)
		})
	}
	if err == errWalkDone {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// walkChunk is how many records of mailboxes.db a walk of the whole
// database reads under one hold of its shared lock.
const walkChunk = 1024

// errChunkFull stops a chunk of walkEntries, errWalkDone a walk past
// the last record it wants.
var (
	errChunkFull = errors.New("chunk full")
	errWalkDone  = errors.New("walk done")
)

// walkEntries calls fn with the N records of mailboxes.db that keep
// reports true for (all if keep is nil), in database order, in chunks: a
// chunk is read under the database's shared lock, which is released
// before fn is called with it, and the next chunk starts after the last
// record read, found by one search down the skip list. The memory a walk
// takes is one chunk whatever the number of mailboxes, and a writer
// (Cyrus creating a mailbox) waits for one chunk at most, not for the
// whole walk and what fn does with it. fn owns the chunk. A record
// committed while the walk is under way is seen if it sorts after the
// chunk being read, as with any unlocked walk of a live database.
func (s *Spool) walkEntries(keep func(Entry) bool, fn func([]Entry) error) error {
	return s.walkEntriesFrom(nil, keep, fn)
}

// walkEntriesFrom is walkEntries from the first key at or after start.
func (s *Spool) walkEntriesFrom(start []byte, keep func(Entry) bool, fn func([]Entry) error) error {
	path := s.Config.MboxlistPath
	prefix := []byte("N")
	// start is the first key of the next chunk: after the last one read.
	for {
		var chunk []Entry
		var last []byte
		read, full := 0, false
		err := s.withMboxlist(func(db *cyrusdb.Twoskip, stamp uint64) error {
			return db.ForEachFrom(prefix, start, func(k, v []byte) error {
				if read == walkChunk {
					full = true
					return errChunkFull
				}
				read++
				last = append(last[:0], k...)
				e, err := parseEntry(k[1:], v)
				if err != nil {
					return fmt.Errorf("mailboxes.db %s: key %q: %w", path, k, err)
				}
				if keep == nil || keep(e) {
					e.stamp = stamp
					chunk = append(chunk, e)
				}
				return nil
			})
		})
		if err != nil && err != errChunkFull {
			return err
		}
		if len(chunk) > 0 {
			if err := fn(chunk); err != nil {
				return err
			}
		}
		if !full {
			return nil
		}
		// The smallest key after last.
		start = append(last, 0)
	}
}

// AllEntries calls fn with every N record of mailboxes.db in database
// order, including what Mailboxes leaves out: tombstones (type d),
// intermediates and remote entries. It reads the database in chunks
// (walkEntries): the shared lock on mailboxes.db is never held while fn
// runs, and memory stays flat however many mailboxes there are.
func (s *Spool) AllEntries(fn func(Entry) error) error {
	return s.walkEntries(nil, func(chunk []Entry) error {
		for _, e := range chunk {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// MailboxChunks calls fn with every real local mailbox, as Mailboxes
// returns them, in chunks of mailboxes.db order (walkEntries): memory is
// one chunk, and fn owns each chunk it is given.
func (s *Spool) MailboxChunks(fn func([]Entry) error) error { return s.walkEntries(s.real, fn) }

// MailboxChunksFrom is MailboxChunks from the mailbox name on (in
// mailboxes.db order: NameKey), name included if it is there.
func (s *Spool) MailboxChunksFrom(name string, fn func([]Entry) error) error {
	return s.walkEntriesFrom(NameKey(name), s.real, fn)
}

// Mailboxes returns every real local mailbox in mailboxes.db order (the
// hierarchy order: a parent before its children), deleted mailboxes
// (DELETED.*) included. Tombstones (type d), intermediates (type i) and
// remote entries are left out.
func (s *Spool) Mailboxes() ([]Entry, error) { return s.mboxEntries("", s.real) }

// Lookup returns the mailboxes.db entry of the internal name. It fails
// with ErrNoMailbox for a name that is absent or not a real local mailbox.
func (s *Spool) Lookup(name string) (Entry, error) {
	e, ok, err := s.lookupAny(name)
	if err != nil {
		return Entry{}, err
	}
	if !ok || !s.real(e) {
		return Entry{}, fmt.Errorf("mailbox %s: %w", name, ErrNoMailbox)
	}
	return e, nil
}

// lookupAny returns the mailboxes.db entry of name whatever its type
// (imap/mboxlist.c mboxlist_lookup_allow_all), and whether it exists: one
// search down the skip list under the shared lock, O(log n) record reads
// however many mailboxes there are, as Cyrus's fetch does.
func (s *Spool) lookupAny(name string) (Entry, bool, error) {
	var e Entry
	var ok bool
	err := s.withMboxlist(func(db *cyrusdb.Twoskip, st uint64) error {
		var err error
		e, ok, err = s.lookupIn(db, st, name)
		return err
	})
	return e, ok, err
}

// lookupIn is lookupAny in the view db of mailboxes.db, of the given
// stamp (dbHandle.stamp).
func (s *Spool) lookupIn(db *cyrusdb.Twoskip, stamp uint64, name string) (Entry, bool, error) {
	key := NameKey(name)
	v, ok, err := db.Get(key)
	if err != nil || !ok {
		return Entry{}, false, err
	}
	e, err := parseEntry(key[1:], v)
	if err != nil {
		return Entry{}, false, fmt.Errorf("mailboxes.db %s: key %q: %w", s.Config.MboxlistPath, key, err)
	}
	e.stamp = stamp
	return e, true, nil
}

// current returns the mailboxes.db entry of e's name as Lookup does, with
// one look under the database's shared lock: when mailboxes.db still holds
// the committed state e was read from (the same file, header and size:
// dbHandle.read), that is a copy of e, and no record is read or parsed.
func (s *Spool) current(e Entry) (Entry, error) {
	key := NameKey(e.Name)
	var v []byte
	ok, same := false, false
	var stamp uint64
	err := s.withMboxlist(func(db *cyrusdb.Twoskip, st uint64) error {
		if same = e.stamp != 0 && st == e.stamp; same {
			return nil
		}
		var err error
		v, ok, err = db.Get(key)
		stamp = st
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	cur := e
	if same {
		// e may be the caller's cache (dump's plan): the entry
		// returned shares no slice with it.
		cur.ACL = slices.Clone(e.ACL)
	}
	if !same && ok {
		if cur, err = parseEntry(key[1:], v); err != nil {
			return Entry{}, fmt.Errorf("mailboxes.db %s: key %q: %w", s.Config.MboxlistPath, key, err)
		}
		cur.stamp = stamp
	}
	if !same && !ok || !s.real(cur) {
		return Entry{}, fmt.Errorf("mailbox %s: %w", e.Name, ErrNoMailbox)
	}
	return cur, nil
}

// userInbox returns the internal INBOX name of user ("alice",
// "alice@example.com" with virtdomains).
func (s *Spool) userInbox(user string) string {
	if !s.Config.VirtDomains {
		return "user." + escapeComp(user)
	}
	local, domain, _ := strings.Cut(user, "@")
	if domain == "" || domain == s.Config.DefaultDomain {
		return "user." + escapeComp(local)
	}
	return domain + "!user." + escapeComp(local)
}

// UserMailboxes returns the real mailboxes of one user as Cyrus lists them
// for replication (imap/mboxlist.c mboxlist_usermboxtree with
// MBOXTREE_DELETED): the INBOX and everything below it in mailboxes.db
// order, then the user's deleted mailboxes (DELETED.user.alice.*). user is
// "alice", or "alice@example.com" with virtual domains. Both trees are
// read under one hold of mailboxes.db's shared lock (they are one state
// of it, and the pages the searches share are read once).
func (s *Spool) UserMailboxes(user string) ([]Entry, error) {
	inbox := s.userInbox(user)
	var out []Entry
	err := s.withMboxlist(func(db *cyrusdb.Twoskip, stamp uint64) error {
		var err error
		if out, err = s.mboxEntriesIn(db, stamp, nameToDBName(inbox), s.real); err != nil {
			return err
		}
		deleted, err := s.mboxEntriesIn(db, stamp, nameToDBName(s.deletedTree(inbox)), s.real)
		out = append(out, deleted...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MailboxesUnder returns the real mailboxes among name and everything below
// it, in mailboxes.db order: one search down the skip list for name, then
// a walk of its own records only, O(log n + k).
func (s *Spool) MailboxesUnder(name string) ([]Entry, error) {
	return s.mboxEntries(nameToDBName(name), s.real)
}

// MailboxesUnder is Spool.MailboxesUnder in the view.
func (v *MailboxesView) MailboxesUnder(name string) ([]Entry, error) {
	return v.s.mboxEntriesIn(v.db, v.stamp, nameToDBName(name), v.s.real)
}

// DeletedUnder returns, in the view, the real mailboxes of the deleted
// tree of name (delete_mode: delayed): the deleted copies of name and of
// the mailboxes below it, user and shared mailboxes alike, O(log n + k).
func (v *MailboxesView) DeletedUnder(name string) ([]Entry, error) {
	return v.MailboxesUnder(v.s.deletedTree(name))
}

// deletedTree is where Cyrus moves the deleted mailboxes of name's tree:
// "DELETED.user.alice", "example.com!DELETED.user.alice"
// (mboxlist_mboxtree). No mailbox has this name; its children are the
// deleted ones.
func (s *Spool) deletedTree(name string) string {
	if i := strings.IndexByte(name, '!'); i >= 0 {
		return name[:i+1] + s.Config.DeletedPrefix + "." + name[i+1:]
	}
	return s.Config.DeletedPrefix + "." + name
}

// Users returns, sorted, the userids owning at least one real mailbox and
// those who own none but have a seen database or subscriptions (a user
// who reads shared folders only): see UserState.
func (s *Spool) Users() ([]string, error) { return s.UsersWalk(nil) }

// UsersWalk returns what Users returns, and calls chunk (if not nil) with
// the real local mailboxes of the walk it makes of mailboxes.db for it,
// as MailboxChunks does: one walk for both, in memory flat in mailboxes.
func (s *Spool) UsersWalk(chunk func([]Entry) error) ([]string, error) {
	set := make(map[string]bool)
	if err := s.stateUsers(set); err != nil {
		return nil, err
	}
	err := s.MailboxChunks(func(c []Entry) error {
		for _, e := range c {
			if u := e.Owner(s.Config); u != "" {
				set[u] = true
			}
		}
		if chunk != nil {
			return chunk(c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	users := make([]string, 0, len(set))
	for u := range set {
		users = append(users, u)
	}
	sort.Strings(users)
	return users, nil
}
