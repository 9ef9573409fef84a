package partition

import (
	"errors"
	"fmt"

	"github.com/mbtool/mbtool/cyrusdb"
	"github.com/mbtool/mbtool/dlist"
)

// LookupID returns the mailboxes.db entry (an N record) that carries
// uniqueid now, and whether there is one, from Cyrus 3.6's I<uniqueid>
// record (docs/cyrus/files.md §7): one search down the skip list for the I
// record, one for the N record it names, all under one shared lock, so
// O(log n) however many mailboxes there are.
//
// Where several N records carry the uniqueid (a deleted or renamed mailbox
// leaves a tombstone under its old name), the entry returned is the one
// that says most that the mailbox is alive: a real local mailbox (Local),
// DELETED.* copies included, before an intermediate or remote one, before
// a tombstone (Deleted); among tombstones, the first in mailboxes.db
// order. The I record names the mailbox's current entry; only when that is
// not a real mailbox are the names of its history (H) read too, for the
// tombstones a mailbox leaves where it was. ok is false when no I record
// exists, or when neither the name it gives nor any former name still
// carries the uniqueid (a DELETED.* mailbox removed since: Cyrus leaves its
// I record; or one whose name a new mailbox took).
func (s *Spool) LookupID(uniqueid string) (e Entry, ok bool, err error) {
	if uniqueid == "" {
		return Entry{}, false, nil // names no mailbox: nothing to hold the lock for
	}
	err = s.LookupIDs([]string{uniqueid}, func(_ int, f Entry, found bool) error {
		e, ok = f, found
		return nil
	})
	if err != nil {
		return Entry{}, false, err
	}
	return e, ok, nil
}

// LookupIDs is LookupID for each of uniqueids, all under one hold of
// mailboxes.db's shared lock: the pages at the top of the skip list are
// read once for all of them rather than once each, and the lock is taken
// and released once. fn is called under the hold, in the order of
// uniqueids, with the entry and whether there is one; it takes no lock
// and keeps no view (mailboxes.db is a leaf lock). When any uniqueid was
// not found, the check of a database without I records (ErrNoIDRecords)
// runs after the hold.
func (s *Spool) LookupIDs(uniqueids []string, fn func(i int, e Entry, ok bool) error) error {
	missed := false
	err := s.withMboxlist(func(db *cyrusdb.Twoskip, stamp uint64) error {
		for i, id := range uniqueids {
			e, ok, err := s.lookupIDIn(db, stamp, id)
			if err != nil {
				return err
			}
			// No I record is kept for an empty uniqueid: its absence
			// says nothing of the database's I records.
			missed = missed || !ok && id != ""
			if err := fn(i, e, ok); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && missed {
		err = s.checkIDRecords()
	}
	return err
}

// lookupIDIn is LookupID's search in one hold of mailboxes.db.
func (s *Spool) lookupIDIn(db *cyrusdb.Twoskip, stamp uint64, uniqueid string) (e Entry, ok bool, err error) {
	if uniqueid == "" {
		return Entry{}, false, nil
	}
	path := s.Config.MboxlistPath
	ikey := IDKey(uniqueid)
	v, found, err := db.Get(ikey)
	if err != nil || !found {
		return Entry{}, false, err
	}
	name, former, err := parseIDNames(v)
	if err != nil {
		return Entry{}, false, fmt.Errorf("mailboxes.db %s: key %q: %w", path, ikey, err)
	}
	best, bestRank := "", Liveness(-1)
	consider := func(dbname string) error {
		key := []byte("N" + dbname)
		v, found, err := db.Get(key)
		if err != nil || !found {
			return err
		}
		c, err := parseEntry(key[1:], v)
		if err != nil {
			return fmt.Errorf("mailboxes.db %s: key %q: %w", path, key, err)
		}
		if c.UniqueID != uniqueid {
			return nil // the name is another mailbox's now
		}
		// Go orders strings by their bytes, as twoskip orders keys.
		r := s.Liveness(c)
		if r > bestRank || r == bestRank && dbname < best {
			c.stamp = stamp
			e, ok, best, bestRank = c, true, dbname, r
		}
		return nil
	}
	if err := consider(name); err != nil || bestRank == Local {
		return e, ok, err
	}
	for _, n := range former {
		if err := consider(n); err != nil {
			return Entry{}, false, err
		}
	}
	return e, ok, nil
}

// ErrNoIDRecords is LookupID's answer for a mailboxes.db without I
// records: one Cyrus before 3.5 wrote (without reverseuniqueids), and no
// 3.6 has upgraded (ctl_cyrusdb -r at startup writes them). A uniqueid
// cannot be looked up there, and "no mailbox has it" would be wrong.
var ErrNoIDRecords = errors.New("mailboxes.db has no I<uniqueid> records (not upgraded by Cyrus 3.5 or later: ctl_cyrusdb -r)")

// checkIDRecords returns ErrNoIDRecords, naming the file, when the first
// real mailbox of mailboxes.db with a uniqueid has no I record; it reads
// the database for that once per Spool, and again only after a failure.
func (s *Spool) checkIDRecords() error {
	s.idCheck.Lock()
	defer s.idCheck.Unlock()
	if s.idCheckDone {
		return nil
	}
	var first Entry
	errFound := errors.New("found")
	err := s.walkEntries(s.real, func(chunk []Entry) error {
		for _, e := range chunk {
			if e.UniqueID != "" {
				first = e
				return errFound
			}
		}
		return nil
	})
	if err != nil && err != errFound {
		return err
	}
	if first.UniqueID != "" {
		ok, err := s.IDExists(first.UniqueID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: mailbox %s (uniqueid %s): %w", s.Config.MboxlistPath, first.Name, first.UniqueID, ErrNoIDRecords)
		}
	}
	s.idCheckDone = true
	return nil
}

// Liveness is how much a mailboxes.db entry says that its uniqueid is
// alive, in increasing order: LookupID returns the liveliest entry.
type Liveness int

const (
	Tombstone Liveness = iota // type d: the mailbox is gone
	Elsewhere                 // intermediate (i), remote (r) or no partition: exists, no local index
	Local                     // a real local mailbox with files (Mailboxes lists it), DELETED.* ones included
)

// Liveness returns how much e says that its uniqueid is alive.
func (s *Spool) Liveness(e Entry) Liveness {
	switch {
	case e.Deleted():
		return Tombstone
	case !s.real(e):
		return Elsewhere
	}
	return Local
}

// parseIDNames returns, from the value of an I record of mailboxes.db
// (imap/mboxlist.c mboxlist_update_entry: the N record's fields with
// N <dbname> for I, and H, the list of former names), the dbname N and the
// dbnames of H's entries, in the order stored. The other fields are the N
// record's, which LookupID reads itself.
func parseIDNames(v []byte) (name string, former []string, err error) {
	if len(v) == 0 || v[0] != '%' {
		return "", nil, fmt.Errorf("%w: not a 3.x I record", ErrBadFormat)
	}
	err = dlist.WithSAX(v, func(root *dlist.Value) error {
		if root.Kind != dlist.KVList {
			return fmt.Errorf("%w: value is a %s, not a kvlist", ErrBadFormat, root.Kind)
		}
		for _, c := range root.Children {
			switch c.Key {
			case "N":
				n, err := c.Atom()
				if err != nil {
					return fmt.Errorf("%w: key N: %w", ErrBadFormat, err)
				}
				name = n
			case "H":
				if c.Kind != dlist.List {
					return fmt.Errorf("%w: key H is a %s, not a list", ErrBadFormat, c.Kind)
				}
				for _, h := range c.Children {
					if h.Kind != dlist.KVList {
						return fmt.Errorf("%w: an entry of H is a %s, not a kvlist", ErrBadFormat, h.Kind)
					}
					if f := h.Get("N"); f != nil {
						n, err := f.Atom()
						if err != nil {
							return fmt.Errorf("%w: key N of H: %w", ErrBadFormat, err)
						}
						former = append(former, n)
					}
				}
			}
		}
		return nil
	})
	if err == nil && name == "" {
		err = fmt.Errorf("%w: I record without N", ErrBadFormat)
	}
	return name, former, badFormat(err)
}
