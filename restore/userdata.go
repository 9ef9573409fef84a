package restore

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mbtool/mbtool/mboxname"
	"github.com/mbtool/mbtool/partition"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/spill"
	"github.com/mbtool/mbtool/syncrec"
)

// present reports whether the mailbox is in the target as this restore
// wants it: registered by this run, or by an earlier run of it, or merged
// into (as restore --server counts it: remote/send.go userData).
func (b *box) present() bool {
	return b.done || b.res.Action == ActionKeep || (b.res.Action == ActionMerge && b.res.Applied)
}

// wanted reports whether the box is or will be in the target from this
// dump.
func (b *box) wanted() bool { return b.building() || b.res.Action == ActionKeep }

// writeMailboxAnnotations puts the mailbox annotations of the boxes into
// annotations.db, after removing whatever is stored under their uniqueids
// (the replaced mailbox's, or what a killed run left).
func (rs *restorer) writeMailboxAnnotations(boxes []*box) error {
	need := false
	for _, b := range boxes {
		need = need || len(b.annots) > 0 || b.replaced != nil
	}
	if !need {
		return nil
	}
	err := rs.spool.UpdateAnnotationsDB(rs.owner, func(tx *partition.TwoskipTx) error {
		for _, b := range boxes {
			ids := []string{b.uniqueid}
			if b.replaced != nil && b.replaced.UniqueID != b.uniqueid {
				ids = append(ids, b.replaced.UniqueID)
			}
			for _, id := range ids {
				var stale [][]byte
				err := tx.ForEach([]byte(id+"\x00"), func(k, _ []byte) error {
					stale = append(stale, append([]byte(nil), k...))
					return nil
				})
				if err != nil {
					return err
				}
				for _, k := range stale {
					tx.Delete(k)
				}
			}
			for _, a := range b.annots {
				if len(a.Value) == 0 {
					continue
				}
				key := partition.AnnotationKey(b.uniqueid, a.Entry, partition.StoredAnnotationUser(a.UserID, b.owner))
				tx.Set(key, partition.EncodeAnnotation(a.Value, a.Modseq))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("annotations.db: %w", err)
	}
	return nil
}

// quotaPlan decides the quota roots of restored mailboxes: the nearest
// ancestor (or the mailbox itself) that is a quota root in the target or
// one the dump brings for a restored mailbox, as Cyrus's quota_findroot.
type quotaPlan struct {
	rs      *restorer
	dump    map[string]*syncrec.Quota // by root name in the target
	isRoot  map[string]bool           // what nearest learnt lately: see maxRootCache
	touched map[string]bool
	// read reads a quota root during a pass of look-ups (pin); nil is
	// the spool's ReadQuota.
	read func(root string) (partition.Quota, error)
}

func (rs *restorer) newQuotaPlan() (*quotaPlan, error) {
	q := &quotaPlan{rs: rs, dump: make(map[string]*syncrec.Quota), isRoot: make(map[string]bool),
		touched: make(map[string]bool)}
	if len(rs.Quotas) == 0 {
		return q, nil
	}
	// The dump's roots that a wanted mailbox falls under: the mailbox's
	// own name and each prefix of it that ends before a dot, looked up,
	// in one pass over the boxes (not one per root).
	roots := make(map[string]*syncrec.Quota, len(rs.Quotas))
	for _, dq := range rs.Quotas {
		roots[rs.users.Name(dq.Root)] = dq
	}
	for h := range rs.boxes.all() {
		b, err := spill.Peek(rs.parked, h)
		if err != nil {
			return nil, err
		}
		if !b.wanted() {
			continue
		}
		for i := len(b.name); i > 0; i = strings.LastIndexByte(b.name[:i], '.') {
			if dq := roots[b.name[:i]]; dq != nil {
				q.dump[b.name[:i]] = dq
			}
		}
	}
	return q, nil
}

// maxRootCache bounds quotaPlan.isRoot: the mailboxes are committed in
// dump order, where a user's come together, so a cache of the names met
// lately saves nearly every lookup, and it is emptied when it is full so
// that it does not grow with the mailboxes.
const maxRootCache = 1024

// nearest returns the quota root of name, or "".
func (q *quotaPlan) nearest(name string) (string, error) {
	if len(q.isRoot) >= maxRootCache {
		clear(q.isRoot)
	}
	read := q.rs.spool.ReadQuota
	if q.read != nil {
		read = q.read
	}
	return q.nearestIn(name, q.isRoot, read)
}

// nearestIn is nearest remembering its answers in isRoot and reading
// the quota roots with read. It reads nothing else of q but q.dump:
// goroutines may run it at once, each with its own isRoot and read.
func (q *quotaPlan) nearestIn(name string, isRoot map[string]bool, read func(string) (partition.Quota, error)) (string, error) {
	for c := name; c != ""; c = mboxname.Parent(c) {
		is, ok := isRoot[c]
		if !ok {
			if q.dump[c] != nil {
				is = true
			} else {
				_, err := read(c)
				switch {
				case err == nil:
					is = true
				case errors.Is(err, partition.ErrNoQuota):
				default:
					return "", err
				}
			}
			isRoot[c] = is
		}
		if is {
			return c, nil
		}
	}
	return "", nil
}

// pin makes nearest read the quota roots from the roots of the spool
// opened once (partition.PinnedReads), for a short pass of look-ups,
// until the function it returns is called: maxRootCache boxes of
// writeAllMeta, one group's boxes (groupRoots), the kept boxes
// (writeQuotas). The configuration
// directory's path is then checked (a stat: does it still name the
// directory opened) once per pass, not once per quota file opened, for
// every mailbox's name and each parent not remembered. What a pass does
// not notice is that directory replaced while it runs (docs/safety.md,
// "The roots themselves"): it reads on in the directory that was the
// configured root when it began, as a look-up made just before the swap
// would have. Nothing is written through the pin, and every quota file
// is still opened beneath that directory without following a symlink (a
// planted one is refused as before); quota files are written
// (writeQuotas) from the root opened and checked anew.
func (q *quotaPlan) pin() (unpin func()) {
	pr := q.rs.spool.PinReads()
	q.read = pr.ReadQuota
	return func() {
		q.read = nil
		pr.Close()
	}
}

// pinPass is a pass over every box whose look-ups are pinned (pin), the
// pin made anew every maxRootCache boxes: a pass over all the boxes
// checks the configuration directory's path as often as the plan
// forgets its answers.
type pinPass struct {
	q     *quotaPlan
	n     int
	unpin func()
}

// pinPass begins a pinned pass; its caller calls next before each box
// and done at the end.
func (q *quotaPlan) pinPass() *pinPass { return &pinPass{q: q, unpin: q.pin()} }

func (p *pinPass) next() {
	if p.n++; p.n%maxRootCache == 0 {
		p.unpin()
		p.unpin = p.q.pin()
	}
}

func (p *pinPass) done() { p.unpin() }

// rootOf returns the quota root of a restored mailbox and remembers it as
// one whose usage must be recomputed.
func (q *quotaPlan) rootOf(name string) (string, error) {
	r, err := q.nearest(name)
	if r != "" {
		q.touched[r] = true
	}
	return r, err
}

// writeQuotas writes every quota root a restored mailbox falls under: its
// limits (the dump's for a new root; an existing root keeps its own, even
// with --replace: docs/restore.md, "Invariants") and its usage, recomputed from every mailbox under it as
// `quota -f` does.
func (rs *restorer) writeQuotas(q *quotaPlan, files *partition.NewFiles) error {
	if err := rs.keptRoots(q); err != nil {
		return err
	}
	if len(q.touched) == 0 {
		return nil
	}
	roots := make([]string, 0, len(q.touched))
	for r := range q.touched {
		roots = append(roots, r)
	}
	sort.Strings(roots)
	// The pass reads its quota roots and index headers from the roots
	// of the spool opened once (partition.PinnedReads) for each
	// goroutine that sums roots' usage, kept in pins between roots.
	pins := make(chan *partition.PinnedReads, commitWorkers)
	defer func() {
		close(pins)
		for p := range pins {
			p.Close()
		}
	}()
	// Each root's usage is summed (sumQuota: its mailboxes' index
	// headers read) and its file written (a new one into a part of the
	// batch) on commitWorkers goroutines (userFiles); the problems are
	// reported, and the new files joined to the batch, in order, here.
	w := rs.newUserFiles(files)
	defer w.close()
	put := func(j *quotaJob) error {
		path, err := rs.spool.QuotaPath(j.root)
		if err != nil {
			return err
		}
		var sumErr error
		return w.put(path, func(part *partition.NewFiles) error {
			var p *partition.PinnedReads
			select {
			case p = <-pins:
			default:
				p = rs.spool.PinReads()
			}
			sumErr = rs.sumQuota(q, p, j)
			// Summed: the root's mailboxes are not held while the job
			// waits to be handed back (up to poolWindow jobs wait).
			j.mbs = nil
			select {
			case pins <- p:
			default:
				p.Close()
			}
			if sumErr != nil {
				return sumErr
			}
			return rs.spool.PutQuota(part, j.nq, rs.owner)
		}, func() {
			if sumErr == nil {
				for _, p := range j.problems {
					rs.problem(p.Item, p.Err)
				}
			}
		})
	}
	for len(roots) > 0 {
		// The mailboxes of several roots are looked up under one hold of
		// mailboxes.db's shared lock (at most maxRootsHeld roots, and
		// no more once they hold maxEntriesHeld mailboxes), not one each.
		var under [][]partition.Entry
		held := 0
		err := rs.spool.ReadMailboxes(func(v *partition.MailboxesView) error {
			for _, root := range roots {
				if len(under) == maxRootsHeld || held >= maxEntriesHeld {
					break
				}
				mbs, err := v.MailboxesUnder(root)
				if err != nil {
					return err
				}
				under = append(under, mbs)
				held += len(mbs)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, mbs := range under {
			if err := put(&quotaJob{root: roots[i], mbs: mbs}); err != nil {
				return err
			}
		}
		// The next look-up is made while the workers sum these roots:
		// held are at most its mailboxes and those of the roots fed
		// and not handed back (poolWindow of them, from this one).
		roots = roots[len(under):]
	}
	return w.flush()
}

// keptRoots marks the quota roots of the kept boxes as touched, their
// look-ups under one pin (quotaPlan.pin) per maxRootCache boxes.
func (rs *restorer) keptRoots(q *quotaPlan) error {
	pass := q.pinPass()
	defer pass.done()
	for h := range rs.boxes.all() {
		pass.next()
		// A kept box says so in its handle (decideKeep): the others'
		// data is not read back from the spill file for this.
		if !h.kept {
			continue
		}
		b, err := spill.Peek(rs.parked, h)
		if err != nil {
			return err
		}
		if b.res.Action == ActionKeep {
			if _, err := q.rootOf(b.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxRootsHeld and maxEntriesHeld bound the quota roots whose mailboxes
// writeQuotas looks up at once. (Variables for the tests.)
var (
	maxRootsHeld   = 64
	maxEntriesHeld = 4096
)

// quotaJob is a quota root writeQuotas writes: its mailboxes (and those
// of roots below it), then (sumQuota) the root to write, and the problems
// of mailboxes whose usage could not be read.
type quotaJob struct {
	root     string
	mbs      []partition.Entry
	nq       partition.Quota
	problems []Problem
}

// sumQuota computes the quota root j.root to write: its limits (the
// dump's for a new root, else its own) and its usage, summed from the
// index headers of those of j.mbs whose nearest root it is, read with
// pr. It touches only j, pr and q.dump (nearestIn, remembering in a map
// of its own): writeQuotas runs it on several roots at once.
func (rs *restorer) sumQuota(q *quotaPlan, pr *partition.PinnedReads, j *quotaJob) error {
	root := j.root
	cur, err := pr.ReadQuota(root)
	existed := err == nil
	if err != nil && !errors.Is(err, partition.ErrNoQuota) {
		return err
	}
	nq := partition.Quota{Root: root, Limits: map[string]int64{}, Usage: map[string]int64{}}
	if dq := q.dump[root]; dq != nil && !existed {
		for i, name := range syncrec.QuotaNames {
			if dq.Limits[i] != syncrec.Unlimited {
				nq.Limits[name] = dq.Limits[i]
			}
		}
		nq.Modseq = dq.Modseq
	} else {
		nq.Limits, nq.Modseq = cur.Limits, cur.Modseq
	}
	// The mailboxes under root, and so the names looked up, number at
	// most maxEntriesHeld or one root's mailboxes.
	isRoot := map[string]bool{root: true}
	for _, e := range j.mbs {
		if r, err := q.nearestIn(e.Name, isRoot, pr.ReadQuota); err != nil {
			return err
		} else if r != root {
			continue
		}
		h, err := pr.ReadIndexHeader(e)
		if err != nil {
			j.problems = append(j.problems, Problem{Item: e.Name, Err: fmt.Errorf("quota usage of %s: %w", root, err)})
			continue
		}
		nq.Usage[partition.QuotaStorage] += int64(h.QuotaMailboxUsed)
		nq.Usage[partition.QuotaMessage] += int64(h.Exists)
		nq.Usage[partition.QuotaAnnotationStorage] += int64(h.QuotaAnnotUsed)
		nq.Usage[partition.QuotaNumFolders]++
	}
	j.nq = nq
	return nil
}

// seenPut is a seen record writeSeen writes, with what decides how.
type seenPut struct {
	key  []byte
	s    *syncrec.Seen // the dump's record, its user mapped
	rule msgsel.SeenRule
	// Of the restored mailbox the record is for (none for one outside
	// the dump): its UID map and its name, in problems; the box itself
	// is not held.
	uids *msgsel.UIDMap
	name string
}

// applySeen sets each record of recs in tx as its rule says, its UIDs
// mapped, and appends the problem of each record left as it is to
// problems. MapSeen maps and merges a record in place, so each record is
// mapped from a copy: applySeen may run again on another transaction
// (the user's seen db made by Cyrus meanwhile, partition.NewFiles) and
// must map the dump's record there, not the first run's result.
func applySeen(tx *partition.TwoskipTx, recs []seenPut, problems []Problem) []Problem {
	for _, p := range recs {
		cur := func() (*syncrec.Seen, bool, error) {
			v, ok, err := tx.Get(p.key)
			if err != nil || !ok {
				return nil, false, err
			}
			c, err := partition.ParseSeen(p.key, v)
			if err != nil {
				return nil, true, err
			}
			return &syncrec.Seen{LastRead: c.LastRead, LastUID: c.LastUID, LastChange: c.LastChange, SeenUIDs: c.SeenUIDs}, true, nil
		}
		s := *p.s
		ok, err := msgsel.MapSeen(p.rule, p.uids, &s, cur)
		if err != nil {
			problems = append(problems, Problem{Item: p.name, Err: err})
			continue
		}
		if ok {
			tx.Set(p.key, encodeSeen(&s))
		}
	}
	return problems
}

// writeSeen writes the dump's seen records of other users' mailboxes.
// A record of a restored mailbox is keyed by the uniqueid the mailbox has
// in the target, and its seen set names the messages by the UIDs they
// have there (msgsel.UIDMap: a replace or a merge renumbers some). One of
// a mailbox outside the dump keeps its key. Whether it is written over
// the user's record, added to it (a merge) or written only where the user
// has none (a mailbox kept, one outside the dump unless --replace) is
// msgsel.MapSeen's rule, as with --server; what it refuses (the user's
// current record damaged) is a problem of that mailbox, and the rest is
// still written. Records of a mailbox left alone, and the owner's own
// (Cyrus keeps those in the index), are not written.
func (rs *restorer) writeSeen(files *partition.NewFiles) error {
	// Records are read back from the spool in dump order, where a user's
	// come together; each run of one user's records (at most MaxHeld of
	// them at once) is one transaction on the user's seen db. The runs
	// of several users (userRuns) have their databases' paths looked up
	// under one hold of mailboxes.db's lock, and are written on
	// commitWorkers goroutines (userFiles), their problems reported in
	// order.
	w := rs.newUserFiles(files)
	defer w.close()
	write := func(user, path string, recs []seenPut, held int) error {
		// UpdateSeenAt may call fn twice (a new seen db created by Cyrus
		// meanwhile: fn runs again on Cyrus's file), so a record's problem
		// is collected per call and reported once, after the update (in
		// order, when the job is handed back). The second call may come
		// from files.Commit, after UpdateSeenAt returned: that call
		// reports its own problems, those not reported already. The
		// records are this run's own (never reused) for that call.
		var problems []Problem
		returned := false
		var reported map[string]bool
		report := func() {
			if len(problems) > 0 && reported == nil {
				reported = make(map[string]bool)
			}
			for _, p := range problems {
				if k := p.Item + "\x00" + p.Err.Error(); !reported[k] {
					reported[k] = true
					rs.problem(p.Item, p.Err)
				}
			}
		}
		fn := func(tx *partition.TwoskipTx) error {
			problems = problems[:0]
			if returned {
				defer report()
			}
			problems = applySeen(tx, recs, problems)
			return nil
		}
		return w.put(path, func(part *partition.NewFiles) error {
			return rs.spool.UpdateSeenAt(part, user, path, rs.owner, held, fn)
		}, func() {
			returned = true
			report()
		})
	}
	runs := &userRuns[seenPut]{max: syncrec.MaxHeld, write: func(r userRun[seenPut], paths userDBPaths) error {
		return write(r.user, paths.seen, r.items, r.weight)
	}, wait: w.flush, what: "seen db", rs: rs}
	err := rs.EachSeen(func(s *syncrec.Seen) error {
		u := rs.users.User(s.UserID)
		p := seenPut{key: []byte(s.UniqueID), s: s, rule: msgsel.SeenRuleFor("", rs.opts.Replace), name: s.UniqueID}
		b, _, err := rs.getKey(spill.KeySrcID, s.UniqueID)
		if err != nil {
			return err
		}
		if b != nil {
			if b, err = spill.Peek(rs.parked, b); err != nil {
				return err
			}
		}
		if b != nil {
			switch {
			case u == b.owner:
				return nil
			case !b.present():
				return nil
			}
			s.UserID, s.UniqueID = u, b.uniqueid
			p.key, p.rule, p.uids, p.name = []byte(b.uniqueid), msgsel.SeenRuleFor(b.res.Action, rs.opts.Replace), rs.uidsOf(b), b.name
		} else if rs.opts.Select.Active() {
			return nil
		}
		return runs.add(u, p, len(p.key)+len(p.name)+len(s.SeenUIDs)+64)
	})
	if err != nil {
		return err
	}
	if err := runs.flush(len(runs.runs)); err != nil {
		return err
	}
	return w.flush()
}

// userFiles writes users' files (quota roots, seen dbs, subscription
// files) on commitWorkers goroutines (inOrder), each job into a part of the batch
// of new files (NewFiles.Part); in the feeding goroutine, in the order
// fed, it runs each job's after (its problems reported) and joins its
// part to the batch, so that the batch holds, commits and redoes the
// files as when they were written one after another. A job's file is
// never one the batch or a job still out holds: put hands back the
// jobs out and commits the batch first (as the writers do with
// NewFiles.Pending), so the job sees the file named and changes it.
type userFiles struct {
	files *partition.NewFiles
	seq   *inOrder[*userFileJob]
	out   map[string]int // paths of the jobs fed, not handed back
}

type userFileJob struct {
	path  string
	write func(part *partition.NewFiles) error // on a worker
	after func()                               // in order, before the part is joined
	part  *partition.NewFiles
}

func (rs *restorer) newUserFiles(files *partition.NewFiles) *userFiles {
	w := &userFiles{files: files, out: make(map[string]int)}
	w.seq = newInOrder(func(j *userFileJob) error {
		return j.write(j.part)
	}, func(j *userFileJob, err error) error {
		if w.out[j.path]--; w.out[j.path] == 0 {
			delete(w.out, j.path)
		}
		if j.after != nil {
			j.after()
		}
		if err != nil {
			j.part.Drop()
			return err
		}
		return w.files.Join(j.part)
	})
	w.seq.drop = func(j *userFileJob) { j.part.Drop() }
	return w
}

// put writes the file at path with write (on a worker, into a part of
// the batch), then calls after in order.
func (w *userFiles) put(path string, write func(part *partition.NewFiles) error, after func()) error {
	if w.out[path] > 0 {
		if err := w.seq.flush(); err != nil {
			return err
		}
	}
	if err := w.files.CommitIfPending(path); err != nil {
		return err
	}
	w.out[path]++
	return w.seq.put(&userFileJob{path: path, write: write, after: after, part: w.files.Part()})
}

// flush hands back every job put.
func (w *userFiles) flush() error { return w.seq.flush() }

// close ends the workers; the new files of jobs not handed back (after
// an error) are dropped.
func (w *userFiles) close() { w.seq.close() }

// maxUserRuns bounds the users whose seen dbs or subscription files are
// written after one look-up of their paths (userRuns). (A variable for
// the tests.)
var maxUserRuns = 64

// userRun is one run of a user's records read back from the spool: one
// transaction on the user's seen db, or one rewrite of the user's
// subscription file.
type userRun[T any] struct {
	user   string
	items  []T
	weight int
}

// userDBPaths are the paths of a user's seen db and subscription file.
type userDBPaths struct{ seen, subs string }

// userRuns gathers the runs of one user's records, at most max (in
// weight) in all, and of at most maxUserRuns users, then looks the users'
// databases up under one hold of mailboxes.db's shared lock
// (MailboxesView.UserDBPaths: two lock holds per user were most of the
// look-ups of this phase) and writes each run in turn, in the order read.
// A user's run is cut where it was before runs were gathered: where the
// user changes, or where the run alone would pass max; a full set of runs
// writes those before the last user's, which goes on.
type userRuns[T any] struct {
	runs  []userRun[T]
	total int
	max   int
	write func(r userRun[T], paths userDBPaths) error
	// wait, if set, waits until the runs given to write are written
	// (userFiles.flush), before a lookup's error is returned.
	wait func() error
	what string // in errors
	rs   *restorer
}

// add adds item, of weight w, to user's run.
func (u *userRuns[T]) add(user string, item T, w int) error {
	if n := len(u.runs); n > 0 && u.runs[n-1].user == user && u.runs[n-1].weight+w <= u.max {
		if u.total+w > u.max {
			if err := u.flush(n - 1); err != nil {
				return err
			}
		}
		last := &u.runs[len(u.runs)-1]
		last.items = append(last.items, item)
		last.weight += w
		u.total += w
		return nil
	}
	if len(u.runs) > 0 && (u.total+w > u.max || len(u.runs) >= maxUserRuns) {
		if err := u.flush(len(u.runs)); err != nil {
			return err
		}
	}
	u.runs = append(u.runs, userRun[T]{user: user, items: []T{item}, weight: w})
	u.total += w
	return nil
}

// flush writes the first k runs and keeps the others. A user whose
// paths cannot be looked up ends it with that error, after the runs
// before it are written.
func (u *userRuns[T]) flush(k int) error {
	if k == 0 {
		return nil
	}
	runs := u.runs[:k]
	paths := make([]userDBPaths, 0, k)
	var lookErr error
	err := u.rs.spool.ReadMailboxes(func(v *partition.MailboxesView) error {
		for _, r := range runs {
			seen, subs, err := v.UserDBPaths(r.user)
			if err != nil {
				lookErr = fmt.Errorf("%s of %s: %w", u.what, r.user, err)
				return nil
			}
			paths = append(paths, userDBPaths{seen: seen, subs: subs})
		}
		return nil
	})
	if err != nil {
		// Not one user's failure: the lookup of all of them failed.
		return fmt.Errorf("%s of %d users (%s to %s): %w", u.what, len(runs), runs[0].user, runs[len(runs)-1].user, err)
	}
	for i := range paths {
		if err := u.write(runs[i], paths[i]); err != nil {
			return err
		}
	}
	if lookErr != nil {
		if u.wait != nil {
			if err := u.wait(); err != nil {
				return err
			}
		}
		return lookErr
	}
	// The runs written are not reused: a batch of new files (files)
	// keeps their records until it is committed.
	u.runs = append([]userRun[T](nil), u.runs[k:]...)
	u.total = 0
	for _, r := range u.runs {
		u.total += r.weight
	}
	return nil
}

func encodeSeen(s *syncrec.Seen) []byte {
	return partition.EncodeSeen(partition.SeenRecord{LastRead: s.LastRead, LastUID: s.LastUID,
		LastChange: s.LastChange, SeenUIDs: s.SeenUIDs})
}

// writeSubs adds the dump's subscriptions, renamed as the mailboxes are;
// with Options.Mailboxes only those to restored mailboxes. They are read
// back from the spool in dump order, where a user's come together; each
// run of one user's (at most maxSubBatch) is one rewrite of the user's
// subscription file, which keeps what it has.
func (rs *restorer) writeSubs(files *partition.NewFiles) error {
	// Written on commitWorkers goroutines, as the seen dbs are.
	w := rs.newUserFiles(files)
	defer w.close()
	runs := &userRuns[string]{max: maxSubBatch, write: func(r userRun[string], paths userDBPaths) error {
		return w.put(paths.subs, func(part *partition.NewFiles) error {
			return rs.spool.AddSubsAt(part, r.user, paths.subs, rs.owner, r.items)
		}, nil)
	}, wait: w.flush, what: "subscriptions", rs: rs}
	err := rs.EachSub(func(s *syncrec.Sub) error {
		u, name := rs.users.User(s.UserID), rs.users.Name(s.MboxName)
		if rs.opts.Select.Active() {
			b, err := rs.named(name)
			if err != nil {
				return err
			}
			if b != nil {
				if b, err = spill.Peek(rs.parked, b); err != nil {
					return err
				}
			}
			if b == nil || !b.present() {
				return nil
			}
		}
		return runs.add(u, name, 1)
	})
	if err != nil {
		return err
	}
	if err := runs.flush(len(runs.runs)); err != nil {
		return err
	}
	return w.flush()
}

// maxSubBatch bounds the subscriptions added to a user's file at once.
const maxSubBatch = 10_000

// writeServerAnnotations puts users' private annotations of the server
// (GETMETADATA "" /private/...) into annotations.db, under an empty
// mailbox part as Cyrus keeps them (imap/annotate.c
// annotate_state_set_server), users mapped. A value the target already
// has for that entry and user is kept unless --replace. With --mailbox
// they are not restored: they belong to no mailbox.
func (rs *restorer) writeServerAnnotations() error {
	if len(rs.ServerAnnotations) == 0 || rs.opts.Select.Active() {
		return nil
	}
	err := rs.spool.UpdateAnnotationsDB(rs.owner, func(tx *partition.TwoskipTx) error {
		for _, a := range rs.ServerAnnotations {
			key := partition.AnnotationKey("", a.Entry, rs.users.User(a.UserID))
			if !rs.opts.Replace {
				if _, ok, err := tx.Get(key); err != nil || ok {
					if err != nil {
						return err
					}
					continue
				}
			}
			tx.Set(key, partition.EncodeAnnotation(a.Value, a.Modseq))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("annotations.db: %w", err)
	}
	return nil
}
