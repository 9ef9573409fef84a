package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
	"github.com/mbtool/mbtool/guidtable"
)

// Policy says which snapshots to keep, with restic's and borg's meanings:
// the last Last snapshots; for each of the last Daily days (Weekly ISO
// weeks, Monthly months) that have snapshots, the latest snapshot of that
// day (week, month). Days, weeks and months are counted in local time.
// A snapshot is kept when any rule keeps it. Snapshots are grouped by host
// and set of users, and the policy applies to each group on its own, so a
// run of one user does not push out the nightly run of all of them.
type Policy struct {
	Last, Daily, Weekly, Monthly int
}

// Empty reports whether the policy keeps everything (no rule given).
func (p Policy) Empty() bool { return p.Last == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 }

// Decision is what a policy does with one snapshot.
type Decision struct {
	Snapshot *Snapshot
	Keep     bool
	Reasons  []string // the rules that keep it: "last", "daily", "weekly", "monthly"
}

// Apply decides for every snapshot (given oldest first); an empty policy
// keeps all.
func (p Policy) Apply(ss []*Snapshot) []Decision {
	ds := make([]Decision, len(ss))
	groups := map[string][]int{}
	var order []string
	for i, s := range ss {
		ds[i].Snapshot = s
		if p.Empty() {
			ds[i].Keep = true
			continue
		}
		var names []string
		for _, u := range s.Users {
			names = append(names, u.Name)
		}
		k := s.Host + "\x00" + strings.Join(names, "\x00")
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	rules := []struct {
		name   string
		n      int
		bucket func(time.Time) string
	}{
		{"last", p.Last, nil},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, k := range order {
		idx := groups[k]
		for _, rule := range rules {
			left, last := rule.n, ""
			for j := len(idx) - 1; j >= 0 && left > 0; j-- { // newest first
				i := idx[j]
				b := fmt.Sprint(j)
				if rule.bucket != nil {
					b = rule.bucket(ss[i].Time.Local())
				}
				if b == last {
					continue
				}
				last = b
				left--
				ds[i].Keep = true
				ds[i].Reasons = append(ds[i].Reasons, rule.name)
			}
		}
	}
	return ds
}

// PruneOptions shape Prune.
type PruneOptions struct {
	Policy Policy
	DryRun bool
	// MaxUnused is the share of the repository (after the prune) that
	// unused bytes may take in packs that still hold used files, as
	// restic's prune --max-unused: packs are rewritten, the largest unused
	// share first, until the unused bytes left are within it. 0 means
	// DefaultMaxUnused; a negative value tolerates none (every pack with
	// an unused byte is rewritten); 1 or more, any (only packs with no
	// used file go).
	MaxUnused float64
	// LockWait is how long to wait for the dumps running to finish
	// (0: fail at once with ErrLocked).
	LockWait time.Duration
}

// DefaultMaxUnused is prune's MaxUnused unless told otherwise: 5% of the
// repository, restic's default. A night expunges a small share of old
// mail (0.5% a day in the scenario), spread over every pack
// written before it, so each old pack grows unused slowly and evenly: a
// threshold per pack (borg's compact --threshold) leaves all of them just
// under it for ever, while a bound on the whole repository rewrites the
// most unused of them each time the total passes it.
const DefaultMaxUnused = 0.05

// PruneSummary is what Prune did (or, in a dry run, would do).
type PruneSummary struct {
	Decisions                       []Decision
	PacksRemoved, PacksRepacked     int
	PacksKept                       int
	BytesRemoved                    int64 // pack bytes deleted (repacked packs' unused bytes included)
	BytesRepacked                   int64 // used bytes copied into new packs
	UsedBytes                       int64 // bytes of the files kept snapshots need
	UnusedLeft                      int64 // unused bytes left in packs kept as they are
	StatesRemoved, IndexFilesMerged int
	UsedFiles                       int64
	UploadsAborted                  int // unfinished multipart uploads of killed runs (object stores)
}

type packStat struct {
	total, used int64 // bytes of file literals
	size        int64 // the pack's size on disk
	listed      bool
	// dup: the pack holds a second copy of a file another pack holds
	// too (two runs at once stored it): it is rewritten whatever its
	// unused share, so that a duplicate is always reclaimed.
	dup bool
}

// Prune removes the snapshots the policy does not keep, then every file
// no kept snapshot needs: packs whose files are all unused (and packs in
// no index, left by interrupted runs), states of no kept snapshot; packs
// partly unused are rewritten until the unused bytes left are within
// MaxUnused of the repository (the most unused first); the index is
// merged into one file. It needs only the repository, and holds an
// exclusive lock throughout (a dry run takes none and changes nothing).
//
// The order makes every step safe to interrupt: snapshots go first (what
// they alone referred to becomes garbage), new packs and the new index are
// written before the old index files and packs are removed.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneSummary, error) {
	if opts.MaxUnused == 0 {
		opts.MaxUnused = DefaultMaxUnused
	}
	var lock *Lock
	started := time.Now()
	if !opts.DryRun {
		l, err := r.LockWait(ctx, true, opts.LockWait)
		if err != nil {
			return nil, err
		}
		defer l.Release()
		lock = l
	}
	ss, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	sum := &PruneSummary{Decisions: opts.Policy.Apply(ss)}
	var kept []*Snapshot
	for _, d := range sum.Decisions {
		if d.Keep {
			kept = append(kept, d.Snapshot)
		}
	}
	if !opts.DryRun {
		if err := lock.Check(); err != nil {
			return sum, err
		}
		for _, d := range sum.Decisions {
			if !d.Keep {
				if err := r.store.Remove(snapshotName(d.Snapshot.ID)); err != nil {
					return sum, err
				}
			}
		}
	}

	// Mark: the files and states the kept snapshots refer to.
	used := guidtable.New(guidtable.Options{})
	defer used.Close()
	use := func(part string, g guid.GUID) error { _, err := used.Add(g, nil); return err }
	states := map[string]bool{}
	for _, s := range kept {
		for _, u := range s.Users {
			if states[u.State] {
				continue
			}
			states[u.State] = true
			_, err := r.readState(u.State, stateVisitor{
				files: use,
				box:   func(be BoxEntry) error { return r.walkBox(be, states, use) },
				line:  func(rd *dlist.Reader, verb, name string) error { return skipValue(rd) },
			})
			if err != nil {
				return sum, fmt.Errorf("reading user %s of snapshot %s: %w (nothing was deleted but the forgotten snapshots; run verify --repo)",
					u.Name, s.ShortID(), err)
			}
		}
		if err := ctx.Err(); err != nil {
			return sum, err
		}
	}
	sum.UsedFiles = int64(used.Len())

	idx, err := r.LoadIndex()
	if err != nil {
		return sum, err
	}
	defer idx.Close()
	stats := map[PackID]*packStat{}
	err = r.store.List("packs", func(name string, size int64) error {
		i := strings.LastIndexByte(name, '/')
		if id, ok := parseID(name[i+1:]); ok {
			var p PackID
			copy(p[:], mustHex(id))
			stats[p] = &packStat{size: size, listed: true}
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	// Sweep, pass 1: the used and unused bytes of every pack. Of a GUID
	// in several index files, the first entry is the one kept.
	var prev guid.GUID
	first, found := true, int64(0)
	err = idx.Merged(func(g guid.GUID, loc Location) error {
		st := stats[loc.Pack]
		if st == nil {
			st = &packStat{}
			stats[loc.Pack] = st
		}
		st.total += loc.Size
		dup := !first && g == prev
		first, prev = false, g
		if dup {
			st.dup = true
			return nil
		}
		ok, err := used.Has(g)
		if err != nil || !ok {
			return err
		}
		if !st.listed {
			return fmt.Errorf("%w: file %s, which a kept snapshot needs, is in pack %s, which does not exist (nothing was deleted; run verify --repo)", ErrDamaged, g, loc.Pack)
		}
		st.used += loc.Size
		found++
		return nil
	})
	if err != nil {
		return sum, err
	}
	if found != sum.UsedFiles {
		return sum, fmt.Errorf("%w: %d files that kept snapshots need are in no index (nothing was deleted but the forgotten snapshots; run verify --repo)",
			ErrDamaged, sum.UsedFiles-found)
	}
	repack := choose(stats, opts.MaxUnused, sum)
	var stateNames []string
	err = r.store.List("states", func(name string, size int64) error {
		if i := strings.LastIndexByte(name, '/'); !states[name[i+1:]] {
			stateNames = append(stateNames, name)
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	sum.StatesRemoved = len(stateNames)
	sum.IndexFilesMerged = idx.Files()
	if opts.DryRun {
		return sum, nil
	}

	// Pass 2: the new index, copying the used files of repacked packs.
	xw, err := newIndexWriter(r.store)
	if err != nil {
		return sum, err
	}
	pc := newPackCache(r.store)
	defer pc.close()
	var pw *packWriter
	var provisional PackID
	rename := map[PackID]PackID{}
	newPack := func() error {
		var err error
		if pw, err = newPackWriter(r.store); err != nil {
			return err
		}
		rand.Read(provisional[:])
		return nil
	}
	closePack := func() error {
		if pw == nil {
			return nil
		}
		id, err := pw.commit()
		if err != nil {
			return err
		}
		rename[provisional] = id
		pw = nil
		return nil
	}
	first = true
	err = idx.Merged(func(g guid.GUID, loc Location) error {
		dup := !first && g == prev
		first, prev = false, g
		if dup {
			return nil
		}
		if ok, err := used.Has(g); err != nil || !ok {
			return err
		}
		if !repack[loc.Pack] {
			return xw.add(g, loc)
		}
		if pw == nil || pw.size() >= PackTarget {
			if err := closePack(); err != nil {
				return err
			}
			if err := newPack(); err != nil {
				return err
			}
		}
		body, err := pc.body(g, loc)
		if err != nil {
			return err
		}
		part, err := packPartition(pc, loc)
		if err != nil {
			return err
		}
		off, err := pw.add(part, g, loc.Size, body)
		if err != nil {
			return fmt.Errorf("repacking file %s: %w", g, err)
		}
		return xw.add(g, Location{Pack: provisional, Offset: off, Size: loc.Size})
	})
	if err == nil {
		err = closePack()
	}
	if err != nil {
		if pw != nil {
			pw.abort()
		}
		xw.abort()
		return sum, err
	}
	for i, p := range xw.order {
		if real, ok := rename[p]; ok {
			xw.order[i] = real
		}
	}
	newIndex, err := xw.commit()
	if err != nil {
		return sum, err
	}
	// Nothing may be removed once another host could think this prune
	// gone (docs/storage.md, "Many hosts").
	if err := lock.Check(); err != nil {
		return sum, err
	}
	for _, f := range idx.files {
		if f.name != newIndex {
			if err := r.store.Remove(f.name); err != nil {
				return sum, err
			}
		}
	}
	for p, st := range stats {
		if (st.used == 0 || repack[p]) && st.listed {
			if err := r.store.Remove(packName(p.String())); err != nil {
				return sum, err
			}
		}
	}
	for _, n := range stateNames {
		if err := r.store.Remove(n); err != nil {
			return sum, err
		}
	}
	// Files of interrupted writes: nothing writes while the lock is held.
	err = r.store.List("tmp", func(name string, size int64) error { return r.store.Remove(name) })
	if err != nil {
		return sum, err
	}
	// Multipart uploads of killed runs (an object store): they were
	// started before this prune's lock, and nothing writes while it is
	// held.
	if a, ok := r.store.(interface{ abortUploads(time.Time) (int, error) }); ok {
		sum.UploadsAborted, err = a.abortUploads(started)
	}
	return sum, err
}

// choose decides the fate of every pack: removed when no kept snapshot
// needs a file of it; rewritten when it holds a second copy of a file,
// or when, of the packs partly unused, it is among the most unused (the
// largest unused share first, as restic does: the fewest bytes copied for
// each byte freed) that must go for the unused bytes left to be within
// maxUnused of the repository after the prune. It returns the packs to
// rewrite and fills in sum's counts.
func choose(stats map[PackID]*packStat, maxUnused float64, sum *PruneSummary) map[PackID]bool {
	repack := map[PackID]bool{}
	var partly []PackID
	var used, unused int64
	for p, st := range stats {
		switch {
		case st.used == 0:
			sum.PacksRemoved++
			sum.BytesRemoved += st.size
			continue
		case st.dup:
			repack[p] = true
		case st.total > st.used:
			partly = append(partly, p)
			unused += st.total - st.used
		}
		used += st.used
	}
	// unused <= maxUnused * (used + unused), restic's bound.
	var limit int64
	switch {
	case maxUnused >= 1:
		limit = unused
	case maxUnused > 0:
		limit = int64(float64(used) * maxUnused / (1 - maxUnused))
	}
	share := func(p PackID) float64 { st := stats[p]; return float64(st.total-st.used) / float64(st.total) }
	sort.Slice(partly, func(i, j int) bool {
		a, b := share(partly[i]), share(partly[j])
		if a != b {
			return a > b
		}
		return bytes.Compare(partly[i][:], partly[j][:]) < 0
	})
	for _, p := range partly {
		if unused <= limit {
			break
		}
		repack[p] = true
		unused -= stats[p].total - stats[p].used
	}
	for p, st := range stats {
		switch {
		case st.used == 0:
		case repack[p]:
			sum.PacksRepacked++
			sum.BytesRepacked += st.used
			sum.BytesRemoved += st.size - st.used
		default:
			sum.PacksKept++
		}
	}
	sum.UsedBytes, sum.UnusedLeft = used, unused
	return repack
}

// packPartition returns the partition named in the literal header before
// loc: "%{<partition> <guid> <size>}".
func packPartition(pc *packCache, loc Location) (string, error) {
	f, err := pc.get(loc.Pack)
	if err != nil {
		return "", err
	}
	start := max(0, loc.Offset-1200)
	b := make([]byte, loc.Offset-start)
	if _, err := f.ReadAt(b, start); err != nil {
		return "", err
	}
	i := strings.LastIndex(string(b), "%{")
	if i < 0 {
		return "", fmt.Errorf("%w: pack %s: no literal header before offset %d", ErrDamaged, loc.Pack, loc.Offset)
	}
	fields := strings.Fields(strings.TrimPrefix(string(b[i:]), "%{"))
	if len(fields) < 3 {
		return "", fmt.Errorf("%w: pack %s: bad literal header before offset %d", ErrDamaged, loc.Pack, loc.Offset)
	}
	return strings.Trim(fields[0], "\""), nil
}
