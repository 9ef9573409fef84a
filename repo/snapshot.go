package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/zeebo/blake3"
)

// Snapshot is one run: when, from where, and the state of each user it
// dumped. Its file, snapshots/<id>, is dlist:
//
//	MBTOOL SNAPSHOT %(FORMAT 2 TIME <unix> HOST <host> MBTOOL <version> INDEXVERSION <n> FILES <n> BYTES <n>)
//	MBTOOL USER %(NAME alice STATE <id> MAILBOXES <n> FILES <n> BYTES <n> [SKIPPED <n>])
//	...
//	MBTOOL SHARED %(STATE <id> MAILBOXES <n> FILES <n> BYTES <n> [SKIPPED <n>])
//	MBTOOL SKIPPED %(ITEM "user bob" REASON <text>)
//	...
//	MBTOOL END %(USERS <n>)
//
// FILES and BYTES of the snapshot count the message files the run added
// to the repository; those of a user, the files the user's state refers
// to (its share of a standalone dump), and SKIPPED the items its state
// records as left out by the dump. The snapshot's own SKIPPED lines are
// the dump's for items that are in no state (a user gone between the
// listing and its turn), as a standalone dump has them. The SHARED line
// is the mailboxes no user owns (dump --all), in memory the user
// SharedName; END counts it with the users.
type Snapshot struct {
	ID           string // the BLAKE3 digest of the file, hex
	Time         time.Time
	Host         string
	Version      string
	IndexVersion int
	NewFiles     int64
	NewBytes     int64
	Users        []UserEntry
	Skipped      []dumpfile.Skip // items of the run in no user's state
}

// SharedName is the name of the shared mailboxes (those no user owns) as
// one entry of a snapshot: a name no Cyrus user can have. In the files
// it is an MBTOOL SHARED line and a state with SHARED 1.
const SharedName = "*shared*"

// DisplayName is a user's name as mbtool prints it: "(shared)" for the
// shared mailboxes.
func DisplayName(name string) string {
	if name == SharedName {
		return "(shared)"
	}
	return name
}

// UserEntry is one user in a snapshot.
type UserEntry struct {
	Name      string
	State     string // the state file's ID
	Mailboxes int64
	Files     int64
	Bytes     int64
	Skipped   int64 // MBTOOL SKIPPED lines in the state
}

// SkippedItems counts the items the snapshot records as left out when
// it was taken: its own and its users'.
func (s *Snapshot) SkippedItems() int64 {
	n := int64(len(s.Skipped))
	for _, u := range s.Users {
		n += u.Skipped
	}
	return n
}

// ShortID is the first 8 hex digits of the ID, as list prints it.
func (s *Snapshot) ShortID() string { return s.ID[:8] }

// User returns the entry for user, or nil.
func (s *Snapshot) User(name string) *UserEntry {
	for i := range s.Users {
		if s.Users[i].Name == name {
			return &s.Users[i]
		}
	}
	return nil
}

// TotalBytes is the size of the message files the snapshot's users refer
// to (files shared between users counted once per user).
func (s *Snapshot) TotalBytes() int64 {
	var n int64
	for _, u := range s.Users {
		n += u.Bytes
	}
	return n
}

func (r *Repo) writeSnapshot(s *Snapshot) error {
	// Users by name, the shared mailboxes last (as a dump has them).
	sort.Slice(s.Users, func(i, j int) bool {
		a, b := s.Users[i].Name, s.Users[j].Name
		if (a == SharedName) != (b == SharedName) {
			return b == SharedName
		}
		return a < b
	})
	var buf bytes.Buffer
	w := dlist.NewWriter(&buf)
	w.BeginLine(Verb, "SNAPSHOT")
	w.BeginKVList()
	w.Key("FORMAT")
	w.Num(SnapshotFormat)
	w.Key("TIME")
	w.Num(uint64(s.Time.Unix()))
	w.Key("HOST")
	w.Atom(s.Host)
	w.Key("MBTOOL")
	w.Atom(s.Version)
	w.Key("INDEXVERSION")
	w.Num(uint64(s.IndexVersion))
	w.Key("FILES")
	w.Num(uint64(s.NewFiles))
	w.Key("BYTES")
	w.Num(uint64(s.NewBytes))
	w.EndList()
	w.EndLine()
	for _, u := range s.Users {
		if u.Name == SharedName {
			w.BeginLine(Verb, "SHARED")
			w.BeginKVList()
		} else {
			w.BeginLine(Verb, "USER")
			w.BeginKVList()
			w.Key("NAME")
			w.Atom(u.Name)
		}
		w.Key("STATE")
		w.Atom(u.State)
		w.Key("MAILBOXES")
		w.Num(uint64(u.Mailboxes))
		w.Key("FILES")
		w.Num(uint64(u.Files))
		w.Key("BYTES")
		w.Num(uint64(u.Bytes))
		if u.Skipped > 0 {
			w.Key("SKIPPED")
			w.Num(uint64(u.Skipped))
		}
		w.EndList()
		w.EndLine()
	}
	for _, sk := range s.Skipped {
		dumpfile.WriteSkip(w, sk)
	}
	w.BeginLine(Verb, "END")
	w.BeginKVList()
	w.Key("USERS")
	w.Num(uint64(len(s.Users)))
	w.EndList()
	w.EndLine()
	if err := w.Flush(); err != nil {
		return err
	}
	fw, err := r.store.Create()
	if err != nil {
		return err
	}
	if _, err := fw.Write(buf.Bytes()); err != nil {
		fw.Abort()
		return err
	}
	s.ID = idHex(fw.Sum())
	return fw.Commit(snapshotName(s.ID))
}

// maxSnapshotFile bounds the memory a snapshot file may take.
const maxSnapshotFile = 64 << 20

// ReadSnapshot reads and checks the snapshot with the given full ID.
func (r *Repo) ReadSnapshot(id string) (*Snapshot, error) {
	f, err := r.store.Open(snapshotName(id))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	defer f.Close()
	if f.Size() > maxSnapshotFile {
		return nil, fmt.Errorf("snapshot %s: %w: %d bytes", id, ErrDamaged, f.Size())
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	if sum := blake3.Sum256(b); idHex(sum) != id {
		return nil, fmt.Errorf("snapshot %s: %w: its bytes hash to %x", id, ErrDamaged, sum)
	}
	s, err := parseSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %w", id, ErrDamaged, err)
	}
	s.ID = id
	return s, nil
}

func parseSnapshot(b []byte) (*Snapshot, error) {
	rd := dlist.NewReader(bytes.NewReader(b))
	s := &Snapshot{}
	ended := false
	for first := true; ; first = false {
		l, err := rd.ReadLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if ended {
			return nil, errors.New("data after END")
		}
		if l.Verb != Verb || l.Value == nil || l.Value.Kind != dlist.KVList {
			return nil, fmt.Errorf("line %d: not an MBTOOL line", rd.LineNumber())
		}
		v := l.Value
		num := func(k string) int64 {
			n, e := v.Get(k).Num64()
			if e != nil && err == nil {
				err = fmt.Errorf("%s %s: %w", v.Key, k, e)
			}
			return int64(n)
		}
		switch {
		case first && v.Key == "SNAPSHOT":
			f := num("FORMAT")
			if f > SnapshotFormat {
				return nil, fmt.Errorf("format %d, this mbtool reads up to %d", f, SnapshotFormat)
			}
			t := num("TIME")
			s.Time = time.Unix(t, 0).UTC()
			s.Host = v.Get("HOST").String()
			s.Version = v.Get("MBTOOL").String()
			s.IndexVersion = int(num("INDEXVERSION"))
			s.NewFiles, s.NewBytes = num("FILES"), num("BYTES")
		case !first && (v.Key == "USER" || v.Key == "SHARED"):
			name := v.Get("NAME").String()
			if v.Key == "SHARED" {
				name = SharedName
			}
			u := UserEntry{Name: name, State: v.Get("STATE").String(),
				Mailboxes: num("MAILBOXES"), Files: num("FILES"), Bytes: num("BYTES")}
			if v.Get("SKIPPED") != nil {
				u.Skipped = num("SKIPPED")
			}
			if _, ok := parseID(u.State); !ok || u.Name == "" {
				return nil, fmt.Errorf("user %q: bad NAME or STATE", u.Name)
			}
			s.Users = append(s.Users, u)
		case !first && v.Key == "SKIPPED":
			sk, perr := dumpfile.ParseSkip(v, 0)
			if perr != nil {
				return nil, fmt.Errorf("line %d: %w", rd.LineNumber(), perr)
			}
			s.Skipped = append(s.Skipped, sk)
		case !first && v.Key == "END":
			if n := num("USERS"); n != int64(len(s.Users)) {
				return nil, fmt.Errorf("END says %d users, the file has %d", n, len(s.Users))
			}
			ended = true
		default:
			return nil, fmt.Errorf("line %d: unexpected MBTOOL %s", rd.LineNumber(), v.Key)
		}
		if err != nil {
			return nil, err
		}
	}
	if !ended {
		return nil, errors.New("no END line")
	}
	return s, nil
}

// SnapshotIDs lists the IDs of the repository's snapshots.
func (r *Repo) SnapshotIDs() ([]string, error) {
	var ids []string
	err := r.store.List("snapshots", func(name string, size int64) error {
		if id, ok := parseID(strings.TrimPrefix(name, "snapshots/")); ok {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// Snapshots reads every snapshot, oldest first.
func (r *Repo) Snapshots() ([]*Snapshot, error) {
	ids, err := r.SnapshotIDs()
	if err != nil {
		return nil, err
	}
	var ss []*Snapshot
	for _, id := range ids {
		s, err := r.ReadSnapshot(id)
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	sort.Slice(ss, func(i, j int) bool {
		if !ss[i].Time.Equal(ss[j].Time) {
			return ss[i].Time.Before(ss[j].Time)
		}
		return ss[i].ID < ss[j].ID
	})
	return ss, nil
}

func holds(user string) string {
	if user == SharedName {
		return "the shared mailboxes"
	}
	return "user " + user
}

// ErrNoSnapshot is returned when no snapshot matches a selection.
var ErrNoSnapshot = errors.New("no such snapshot")

// Select picks a snapshot: by ID (a unique prefix of at least 4 hex
// digits), else the latest one at or before at (the latest of all when
// at is zero); with user, only snapshots holding that user count.
func Select(ss []*Snapshot, id string, at time.Time, user string) (*Snapshot, error) {
	if id != "" {
		if len(id) < 4 {
			return nil, fmt.Errorf("snapshot ID %q: give at least 4 hex digits", id)
		}
		var found *Snapshot
		for _, s := range ss {
			if strings.HasPrefix(s.ID, strings.ToLower(id)) {
				if found != nil {
					return nil, fmt.Errorf("snapshot ID %q is ambiguous", id)
				}
				found = s
			}
		}
		if found == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoSnapshot, id)
		}
		if user != "" && found.User(user) == nil {
			return nil, fmt.Errorf("%w: snapshot %s does not hold %s", ErrNoSnapshot, found.ShortID(), holds(user))
		}
		return found, nil
	}
	var best *Snapshot
	for _, s := range ss {
		if !at.IsZero() && s.Time.After(at) {
			continue
		}
		if user != "" && s.User(user) == nil {
			continue
		}
		best = s
	}
	if best == nil {
		what := "no snapshot"
		if user == SharedName {
			what += " of the shared mailboxes"
		} else if user != "" {
			what += " of user " + user
		}
		if !at.IsZero() {
			what += " at or before " + at.Format(time.RFC3339)
		}
		return nil, fmt.Errorf("%w: %s", ErrNoSnapshot, what)
	}
	return best, nil
}
