package restore

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/dumpcheck"
	"github.com/mbtool/mbtool/dumpfile"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/syncrec"
)

// box is one mailbox of the dump and what becomes of it.
type box struct {
	res MailboxResult
	src *syncrec.Mailbox // the dump's mailbox-level keys

	// In the target.
	name, owner, uniqueid, partition, typ string
	acl                                   []partition.ACLEntry
	annots                                []syncrec.Annotation // mailbox level, users mapped
	replaced                              *partition.Entry     // the entry --replace replaces
	quotaRoot                             string

	// Built in the staging area.
	st    *stage
	dir   string
	hdr   partition.IndexHeader // all but HeaderFileCRC
	flags []string              // user flag names by slot
	done  bool                  // registered
	id    int                   // its place in restorer.boxes, from 1
}

// readMailbox reads the value of an APPLY MAILBOX line: the mailbox-level
// keys, then each RECORD as it streams by. head is called once, before the
// first record (or at the end when there is no RECORD key), with the keys
// read so far; the dump writes RECORD last, as Cyrus does. It returns the
// mailbox-level keys of the whole line.
func readMailbox(r *dlist.Reader, head func(*syncrec.Mailbox) error, rec func(*syncrec.Record) error) (*syncrec.Mailbox, error) {
	t, err := r.Next()
	if err != nil {
		return nil, err
	}
	if t.Kind != dlist.KVList {
		return nil, fmt.Errorf("%w: expected %%(, found %v", ErrDamaged, t.Kind)
	}
	keys := dlist.NewKVList()
	keys.Offset = t.Offset
	headDone := false
	callHead := func() error {
		if headDone {
			return nil
		}
		headDone = true
		mb, err := syncrec.DecodeMailbox(keys)
		if err != nil {
			return err
		}
		return head(mb)
	}
	for {
		kt, err := r.Next()
		if err != nil {
			return nil, err
		}
		if kt.Kind == dlist.End {
			break
		}
		if kt.Kind != dlist.Atom {
			return nil, fmt.Errorf("%w: offset %d: expected a key, found %v", ErrDamaged, kt.Offset, kt.Kind)
		}
		key := string(kt.Bytes)
		if key != "RECORD" {
			v, err := r.ReadValue()
			if err != nil {
				return nil, err
			}
			keys.Add(key, v)
			continue
		}
		if err := callHead(); err != nil {
			return nil, err
		}
		lt, err := r.Next()
		if err != nil {
			return nil, err
		}
		if lt.Kind != dlist.List {
			return nil, fmt.Errorf("%w: offset %d: RECORD is not a list", ErrDamaged, lt.Offset)
		}
		for {
			it, err := r.Next()
			if err != nil {
				return nil, err
			}
			if it.Kind == dlist.End {
				break
			}
			rr, err := syncrec.ReadRecord(r, it)
			if err != nil {
				return nil, err
			}
			if err := rec(rr); err != nil {
				return nil, err
			}
		}
	}
	if err := callHead(); err != nil {
		return nil, err
	}
	return syncrec.DecodeMailbox(keys)
}

// mailbox reads one APPLY MAILBOX: it decides what to do with the mailbox
// and, unless it is refused or skipped, builds it in the staging area
// record by record.
func (rs *restorer) mailbox(d *dumpfile.Reader) error {
	var b *box
	var bl *builder
	_, err := readMailbox(d.DL(), func(mb *syncrec.Mailbox) error {
		var err error
		if b, err = rs.plan(mb); err != nil {
			return err
		}
		if !rs.opts.DryRun && (b.res.Action == ActionCreate || b.res.Action == ActionReplace) {
			bl, err = rs.newBuilder(b)
		}
		return err
	}, func(r *syncrec.Record) error {
		b.res.Records++
		if !r.Expunged() {
			b.res.Messages++
		}
		if bl == nil {
			return rs.checkRecord(r)
		}
		return bl.add(r)
	})
	if err == nil && bl != nil {
		err = bl.finish()
	}
	if bl != nil {
		bl.close()
	}
	if err != nil {
		if b != nil {
			return fmt.Errorf("mailbox %s: %w", b.src.Name, err)
		}
		return err
	}
	if err := d.EndLine(); err != nil {
		return err
	}
	rs.counts.Mailboxes++
	rs.progress()
	return nil
}

// plan validates the mailbox-level keys and decides the mailbox's fate:
// its name, partition and uniqueid in the target, and whether it is
// created, replaced, refused or skipped.
func (rs *restorer) plan(mb *syncrec.Mailbox) (*box, error) {
	if err := dumpcheck.CheckName("mailbox name", mb.Name); err != nil {
		return nil, err
	}
	if err := dumpcheck.CheckUniqueID(mb.UniqueID); err != nil {
		return nil, err
	}
	for _, c := range mb.MboxType {
		if c < 'a' || c > 'z' {
			return nil, fmt.Errorf("%w: MBOXTYPE %q", ErrUnsafeName, mb.MboxType)
		}
	}
	if strings.ContainsAny(mb.MboxType, "dirmzl") {
		return nil, fmt.Errorf("%w: mailbox %s of type %q is not a mailbox with local files", ErrDamaged, mb.Name, mb.MboxType)
	}
	part := rs.opts.Partition
	if part == "" {
		part = mb.Partition
		if _, ok := rs.cfg.Partitions[part]; !ok {
			return nil, fmt.Errorf("mailbox %s: partition %q: %w", mb.Name, mb.Partition, ErrPartition)
		}
	}
	acl := partition.ParseACL(mb.ACL)
	for _, a := range acl {
		id := strings.TrimPrefix(a.ID, "-")
		if err := dumpcheck.CheckUserID(id); err != nil {
			return nil, fmt.Errorf("mailbox %s: ACL: %w", mb.Name, err)
		}
		if a.Rights != "" {
			if err := dumpcheck.CheckText("ACL rights", a.Rights); err != nil {
				return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
			}
		}
	}
	name := rs.users.Name(mb.Name)
	b := &box{
		src:       mb,
		name:      name,
		owner:     rs.cfg.NameOwner(name),
		partition: part,
		acl:       rs.users.ACL(acl),
		typ:       mb.MboxType,
	}
	if b.typ == "" {
		b.typ = "e"
	}
	if rs.cfg.LegacyDirs {
		b.typ += "l"
	}
	for _, a := range mb.Annotations {
		if err := dumpcheck.CheckText("annotation", a.Entry); err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		if a.UserID != "" {
			if err := dumpcheck.CheckUserID(a.UserID); err != nil {
				return nil, fmt.Errorf("mailbox %s: annotation: %w", mb.Name, err)
			}
		}
		a.UserID = rs.users.User(a.UserID)
		b.annots = append(b.annots, a)
	}
	b.res = MailboxResult{Name: name, Source: mb.Name, Partition: part}
	rs.boxes = append(rs.boxes, b)
	b.id = len(rs.boxes)
	if prev := rs.bySrcID[mb.UniqueID]; prev != nil {
		return nil, fmt.Errorf("%w: uniqueid %s of %s also names %s", ErrDamaged, mb.UniqueID, mb.Name, prev.src.Name)
	}
	rs.bySrcID[mb.UniqueID] = b

	if err := dumpcheck.CheckName("mailbox name", name); err != nil {
		return nil, err
	}
	if len(rs.selects) > 0 && !rs.selects[mb.Name] && !rs.selects[name] {
		b.res.Action, b.res.Reason = ActionSkip, "not selected"
		return b, nil
	}
	if rs.byName[name] != nil {
		b.res.Action, b.res.Reason = ActionRefuse, "the dump holds another mailbox of this name"
		return b, nil
	}
	cur, exists, err := rs.spool.LookupAny(name)
	if err != nil {
		return nil, fmt.Errorf("looking up %s in the target: %w", name, err)
	}
	if exists && (cur.Deleted() || cur.Intermediate()) {
		exists = false // a tombstone or placeholder that Cyrus's create overwrites too
	}
	switch {
	case exists && !rs.opts.Replace && ownedBefore(b, cur):
		b.res.Action, b.res.Reason = ActionKeep, "already in the target with the uniqueid this restore gives it"
		b.uniqueid, b.res.UniqueID, b.res.NewUniqueID = cur.UniqueID, cur.UniqueID, cur.UniqueID != mb.UniqueID
		rs.usedIDs[cur.UniqueID] = true
		rs.byName[name] = b
		return b, nil
	case exists && !rs.opts.Replace:
		b.res.Action, b.res.Reason = ActionRefuse, "exists in the target (use --replace to replace it)"
		return b, nil
	case exists && (cur.Remote() || cur.Moving() || cur.Partition == ""):
		b.res.Action, b.res.Reason = ActionRefuse, fmt.Sprintf("exists in the target as type %q", cur.Type)
		return b, nil
	case exists:
		b.res.Action = ActionReplace
		b.replaced = &cur
	default:
		b.res.Action = ActionCreate
	}
	if why, err := rs.cannotWrite(b); err != nil || why != "" {
		b.res.Action, b.res.Reason = ActionRefuse, why
		return b, err
	}
	if err := rs.chooseID(b); err != nil {
		return nil, err
	}
	rs.byName[name] = b
	return b, nil
}

// cannotWrite says why an offline restore must refuse b, whatever the
// target holds, "" when it need not; a dry run reports the same refusal.
func (rs *restorer) cannotWrite(b *box) (string, error) {
	if strings.ContainsRune(b.typ, 'f') { // MBTYPE_SIEVE (imap/mboxlist.c)
		return "a #sieve mailbox: Cyrus 3.6 also keeps its scripts as rows of the user's dav.db and as " +
			"compiled bytecode in sievedir, which offline restore does not write (the filters would silently " +
			"stop); restore it with restore --server, whose sync_server writes all three", nil
	}
	return rs.layoutProblem(partition.Entry{Name: b.name, UniqueID: b.src.UniqueID, Partition: b.partition, Type: b.typ})
}

// candidateID returns the k-th uniqueid to try for b: the dump's first,
// then fresh ones in Debian's style (24 characters of [0-9a-z]). The fresh
// ones are derived from the dump's uniqueid and the target name, so that a
// second run after a killed one recognises the mailboxes the first one
// registered.
func candidateID(b *box, k int) string {
	if k == 0 {
		return b.src.UniqueID
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("mbtool restore\x00%s\x00%s\x00%d", b.src.UniqueID, b.name, k)))
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	id := make([]byte, 24)
	for i := range id {
		id[i] = alphabet[int(h[i])%len(alphabet)]
	}
	return string(id)
}

// maxCandidates bounds the uniqueids tried for one mailbox.
const maxCandidates = 64

// ownedBefore reports whether an existing entry is the mailbox itself,
// registered by an earlier run of the same restore: it carries one of the
// uniqueids this run would choose.
func ownedBefore(b *box, cur partition.Entry) bool {
	for k := 0; k < 4; k++ {
		if cur.UniqueID == candidateID(b, k) {
			return true
		}
	}
	return false
}

// chooseID keeps the dump's uniqueid unless the target uses it or this
// run gave it out; a replaced mailbox keeps its own, so that other users'
// seen state in the target stays attached to it.
func (rs *restorer) chooseID(b *box) error {
	id := ""
	if r := b.replaced; r != nil && r.UniqueID != "" && !rs.usedIDs[r.UniqueID] {
		id = r.UniqueID
	}
	for k := 0; id == "" && k < maxCandidates; k++ {
		c := candidateID(b, k)
		if rs.usedIDs[c] {
			continue
		}
		inUse, err := rs.spool.IDExists(c)
		if err != nil {
			return fmt.Errorf("looking up uniqueid %s in the target: %w", c, err)
		}
		if !inUse {
			id = c
		}
	}
	if id == "" {
		id = newUniqueID()
	}
	rs.usedIDs[id] = true
	b.uniqueid = id
	b.res.UniqueID = id
	b.res.NewUniqueID = id != b.src.UniqueID
	return nil
}

// checkRecord validates a record of a mailbox that is not built (refused,
// skipped, or a dry run), so that a damaged dump is refused whatever is
// selected.
func (rs *restorer) checkRecord(r *syncrec.Record) error {
	for _, a := range r.Annotations {
		if err := dumpcheck.CheckText("annotation", a.Entry); err != nil {
			return err
		}
		if a.UserID != "" {
			if err := dumpcheck.CheckUserID(a.UserID); err != nil {
				return err
			}
		}
	}
	for _, f := range r.Flags {
		if err := dumpcheck.CheckText("flag", f); err != nil {
			return err
		}
	}
	if r.UID == 0 {
		return fmt.Errorf("%w: record with UID 0", ErrDamaged)
	}
	m, ok, err := rs.msg(r.GUID)
	if err != nil {
		return err
	}
	if ok && m.size != int64(r.Size) {
		return fmt.Errorf("%w: UID %d: SIZE %d, but the file of GUID %s has %d bytes", ErrDamaged, r.UID, r.Size, r.GUID, m.size)
	}
	return nil
}
