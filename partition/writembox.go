package partition

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/dlist"
)

// ErrReverseACL is returned by UpdateMailboxes for a mailboxes.db that keeps
// reverse-ACL keys ($RACL, reverseacls: yes), which this package does not
// maintain.
var ErrReverseACL = errors.New("mailboxes.db has reverse ACLs ($RACL), which mbtool does not maintain")

// NameKey returns the mailboxes.db key of an internal mailbox name:
// "N" + the dbname (0x1F separators, literal dots).
func NameKey(name string) []byte { return []byte("N" + nameToDBName(name)) }

// IDKey returns the mailboxes.db key of a uniqueid: "I" + uniqueid.
func IDKey(uniqueid string) []byte { return []byte("I" + uniqueid) }

// EncodeEntry returns the value of e's N record as Cyrus 3.6 writes it
// (imap/mboxlist.c mboxlist_entry_dlist): %(T type I uniqueid P partition
// [S server] [V uidvalidity] [C createdmodseq] [F foldermodseq] M mtime
// A %(acl)). Zero V, C and F are left out as Cyrus leaves them out; an
// MTime of 0 is written as the current time.
func EncodeEntry(e Entry) ([]byte, error) { return encodeEntry(e, false) }

// EncodeIDEntry returns the value of e's I record: the same keys with N
// (the dbname) in place of I, and an empty name history H ().
func EncodeIDEntry(e Entry) ([]byte, error) { return encodeEntry(e, true) }

func encodeEntry(e Entry, ikey bool) ([]byte, error) {
	if e.Type == "" || e.Name == "" {
		return nil, fmt.Errorf("mailboxes.db entry %q: type and name are required", e.Name)
	}
	mtime := e.MTime
	if mtime == 0 {
		mtime = time.Now().Unix()
	}
	b, err := printValue(func(w *dlist.Writer) {
		w.BeginKVList()
		w.Key("T")
		w.Atom(e.Type)
		if ikey {
			w.Key("N")
			w.Atom(nameToDBName(e.Name))
		} else if e.UniqueID != "" {
			w.Key("I")
			w.Atom(e.UniqueID)
		}
		if e.Partition != "" {
			w.Key("P")
			w.Atom(e.Partition)
		}
		if e.Server != "" {
			w.Key("S")
			w.Atom(e.Server)
		}
		if e.UIDValidity != 0 {
			w.Key("V")
			w.Num(uint64(e.UIDValidity))
		}
		if e.CreatedModseq != 0 {
			w.Key("C")
			w.Num(e.CreatedModseq)
		}
		if e.FolderModseq != 0 {
			w.Key("F")
			w.Num(e.FolderModseq)
		}
		w.Key("M")
		w.Num(uint64(mtime))
		writeACL(w, e.ACL)
		if ikey {
			w.Key("H")
			w.BeginList()
			w.EndList()
		}
		w.EndList()
	})
	if err != nil {
		return nil, fmt.Errorf("mailboxes.db entry %s: %w", e.Name, err)
	}
	return b, nil
}

// MailboxesTx is a pending change of mailboxes.db, given to the function
// passed to UpdateMailboxes. Lookups see the committed database plus the
// changes made so far in the transaction.
type MailboxesTx struct {
	tx *TwoskipTx
}

// Unchanged reports whether the transaction starts from the committed
// state st names (MailboxesView.State): the same file (no checkpoint
// renamed another into place), the same header and the same size, all
// read under the exclusive lock. On one file every commit appends (its
// COMMIT record at least) before it writes the larger current_size, and
// a recovery truncates back to current_size, never below, so a clean
// file of the same size holds the same committed records (dbHandle.read
// reuses a view on the same rule): the transaction's lookups of keys it
// has not changed find what the view's found, and need not be made
// again. A zero State names no state.
func (t *MailboxesTx) Unchanged(st MailboxesState) bool {
	fi := t.tx.file
	return st.file != nil && fi != nil && os.SameFile(st.file, fi) &&
		fi.Size() == st.size && t.tx.db.Clean() && t.tx.db.Header() == st.hdr
}

// Lookup returns the N entry of name, whatever its type (tombstones and
// intermediates included), and whether there is one.
func (t *MailboxesTx) Lookup(name string) (Entry, bool, error) {
	key := NameKey(name)
	v, ok, err := t.tx.Get(key)
	if err != nil || !ok {
		return Entry{}, false, err
	}
	e, err := parseEntry(key[1:], v)
	if err != nil {
		return Entry{}, false, fmt.Errorf("mailboxes.db key %q: %w", key, err)
	}
	return e, true, nil
}

// IDExists reports whether an I record for uniqueid exists.
func (t *MailboxesTx) IDExists(uniqueid string) (bool, error) {
	_, ok, err := t.tx.Get(IDKey(uniqueid))
	return ok, err
}

// Put writes e's N and I records.
func (t *MailboxesTx) Put(e Entry) error {
	if e.UniqueID == "" {
		return fmt.Errorf("mailboxes.db entry %s: no uniqueid", e.Name)
	}
	n, err := EncodeEntry(e)
	if err != nil {
		return err
	}
	i, err := EncodeIDEntry(e)
	if err != nil {
		return err
	}
	t.tx.Set(NameKey(e.Name), n)
	t.tx.Set(IDKey(e.UniqueID), i)
	return nil
}

// DeleteID removes the I record of uniqueid (of a mailbox being replaced
// by one with another uniqueid).
func (t *MailboxesTx) DeleteID(uniqueid string) { t.tx.Delete(IDKey(uniqueid)) }

// UpdateMailboxes changes mailboxes.db as one atomic step, live-safe while
// Cyrus runs (docs/cyrus/locks.md §6, by rename): it takes the exclusive lock with
// Cyrus's reopen-on-replace loop, reads the committed state, calls fn with
// a transaction under the lock (so fn's checks and changes see the same
// state), and makes fn's changes as one twoskip transaction in place,
// checkpointing the file when it has doubled (UpdateTwoskip), before
// unlocking. If fn returns an error nothing is written. mailboxes.db is a leaf lock:
// call this holding the namespace and name locks, never the other way
// round.
func (s *Spool) UpdateMailboxes(owner Owner, fn func(tx *MailboxesTx) error) error {
	if s.Config.MboxlistDB != "twoskip" {
		return fmt.Errorf("mboxlist_db %s: only twoskip is supported", s.Config.MboxlistDB)
	}
	return s.UpdateTwoskip(s.Config.MboxlistPath, false, owner, func(tx *TwoskipTx) error {
		if _, ok, err := tx.Get([]byte("$RACL")); err != nil {
			return err
		} else if ok {
			return ErrReverseACL
		}
		return fn(&MailboxesTx{tx: tx})
	})
}

// LookupAny returns the N entry of name whatever its type, and whether
// there is one, reading mailboxes.db under its shared lock.
func (s *Spool) LookupAny(name string) (Entry, bool, error) { return s.lookupAny(name) }

// IDExists reports whether mailboxes.db has an I record for uniqueid.
func (s *Spool) IDExists(uniqueid string) (bool, error) {
	var found bool
	err := s.ReadMailboxes(func(v *MailboxesView) error {
		var err error
		found, err = v.IDExists(uniqueid)
		return err
	})
	return found, err
}

// MailboxesView is the committed state of mailboxes.db under its shared
// lock, for the lookups of one ReadMailboxes.
type MailboxesView struct {
	s     *Spool
	db    *cyrusdb.Twoskip
	stamp uint64
	file  os.FileInfo // the file db reads (dbHandle.fi)
}

// MailboxesState names a committed state of mailboxes.db that a view
// showed, for a later transaction to tell whether it starts from the
// same one (MailboxesTx.Unchanged).
type MailboxesState struct {
	file os.FileInfo // nil: no state
	hdr  cyrusdb.TwoskipHeader
	size int64
}

// State returns the committed state v shows: the file, its header and
// its size, for a clean file (one a crashed writer left unclean names no
// state: its size is not its current_size).
func (v *MailboxesView) State() MailboxesState {
	if v.file == nil || !v.db.Clean() {
		return MailboxesState{}
	}
	return MailboxesState{file: v.file, hdr: v.db.Header(), size: int64(v.db.Header().CurrentSize)}
}

// ReadMailboxes calls fn with the committed state of mailboxes.db under
// one hold of its shared lock, for several lookups: each Spool.LookupAny
// or IDExists takes and releases the lock (two fcntl calls and two stats)
// and reads its pages anew, where the lookups of one hold share them (a
// restore group checks all its mailboxes at once). mailboxes.db is a
// leaf lock: fn takes no other lock, and does not keep the view.
func (s *Spool) ReadMailboxes(fn func(v *MailboxesView) error) error {
	return s.withMboxlist(func(db *cyrusdb.Twoskip, stamp uint64) error {
		// s.mboxdb.mu is held while fn runs: fi is the file's.
		return fn(&MailboxesView{s: s, db: db, stamp: stamp, file: s.mboxdb.fi})
	})
}

// Lookup returns the N entry of name whatever its type, as
// Spool.LookupAny and MailboxesTx.Lookup do, and whether there is one.
func (v *MailboxesView) Lookup(name string) (Entry, bool, error) {
	return v.s.lookupIn(v.db, v.stamp, name)
}

// IDExists is Spool.IDExists in the view.
func (v *MailboxesView) IDExists(uniqueid string) (bool, error) {
	_, ok, err := v.db.Get(IDKey(uniqueid))
	return ok, err
}

// UserInbox returns the internal name of user's INBOX: "user.alice", or
// "example.com!user.alice" for "alice@example.com" with virtual domains.
func (s *Spool) UserInbox(user string) string { return s.userInbox(user) }

// NameOwner returns the userid owning the internal mailbox name ("" for a
// shared mailbox), as Entry.Owner does.
func (c *Config) NameOwner(name string) string { return c.parseName(name).userid() }

// NameComponents returns the components of an internal name with '^'
// turned back into '.', without the domain, and the domain ("" if none):
// the names that the legacy layout turns into directories.
func (c *Config) NameComponents(name string) (comps []string, domain string) {
	m := c.parseName(name)
	return m.comps, m.domain
}
