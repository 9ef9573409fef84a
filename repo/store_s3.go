package repo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mbtool/mbtool/s3store"
	"github.com/zeebo/blake3"
)

// s3Store is a Store in an S3 bucket under a prefix (docs/storage.md).
// Keys are the prefix, "/", and the file's name. A new file is spooled
// to an unlinked temporary file while it is written and hashed, and
// uploaded by Commit under its name with If-None-Match: * (a key that
// exists holds the same bytes: content address), so nothing is ever
// visible half-written and nothing is held in memory. Reads are ranged
// GETs, except that index files, which dump looks up at random, are
// fetched whole into a temporary file once (and checked against their
// name) when opened.
//
// Packs and states (a user's state, a mailbox's box) are uploaded in the
// background while the run goes on: at most --s3-parallel packs at once,
// and up to smallInflight states besides, so that a state never waits
// behind a pack, nor the run behind a state's round trip (a user's
// mailboxes each commit one). Commit of an index file or a snapshot, the
// files that make packs and states reachable, first waits for every
// upload before it, and fails if one failed; List of packs or states
// waits for them all, and Open of a file for its own upload, so that a
// committed file is always there to be read. A run that dies first
// leaves packs and states that nothing refers to (or unfinished
// uploads), as a directory would.
type s3Store struct {
	c      *s3store.Client
	ctx    context.Context
	bucket string
	prefix string // "" or ending in "/"

	inflight chan struct{} // packs being uploaded
	small    chan struct{} // states being uploaded
	mu       sync.Mutex
	idle     *sync.Cond     // signalled whenever an upload ends
	pending  map[string]int // names being uploaded in the background
	err      error          // the first background upload that failed
}

// smallInflight is how many states may be uploading at once: each holds
// a spooled file and a connection, no memory of its size.
const smallInflight = 8

// background reports whether Commit uploads name in the background.
func background(name string) bool {
	return strings.HasPrefix(name, "packs/") || strings.HasPrefix(name, "states/")
}

// OpenS3 returns the Store at u (s3://BUCKET/PREFIX) through client c.
func OpenS3(ctx context.Context, c *s3store.Client, u s3store.URL) Store {
	p := u.Key
	if p != "" {
		p += "/"
	}
	s := &s3Store{c: c, ctx: ctx, bucket: u.Bucket, prefix: p, inflight: make(chan struct{}, max(1, c.Parallel())),
		small: make(chan struct{}, smallInflight), pending: map[string]int{}}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// failed returns the first background upload's error.
func (s *s3Store) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// barrier waits for every background upload.
func (s *s3Store) barrier() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) > 0 {
		s.idle.Wait()
	}
	return s.err
}

// await waits for the background upload of name, if there is one.
func (s *s3Store) await(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.pending[name] > 0 {
		s.idle.Wait()
	}
	return s.err
}

func (s *s3Store) Location() string {
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

func (s *s3Store) key(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return s.prefix + name, nil
}

func (s *s3Store) Create() (FileWriter, error) {
	f, err := s.c.Spool()
	if err != nil {
		return nil, err
	}
	return &s3Writer{s: s, f: f, bw: bufio.NewWriterSize(f, writeBuffer), h: blake3.New(), sums: &s3store.Sums{}}, nil
}

type s3Writer struct {
	s  *s3Store
	f  *os.File
	bw *bufio.Writer
	h  *blake3.Hasher
	// The CRC32Cs the upload sends, of the bytes as written: no second
	// reading of the spooled file, and a byte the spool changed fails
	// the store's check (s3store.Sums).
	sums *s3store.Sums
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, errors.New("repository file already committed or aborted")
	}
	n, err := w.bw.Write(p)
	w.h.Write(p[:n])
	w.sums.Write(p[:n])
	return n, err
}

func (w *s3Writer) Written() int64 { return w.sums.Size() }

func (w *s3Writer) Sum() [32]byte {
	var s [32]byte
	copy(s[:], w.h.Sum(nil))
	return s
}

func (w *s3Writer) Commit(name string) error {
	if w.f == nil {
		return errors.New("repository file already committed or aborted")
	}
	key, err := w.s.key(name)
	if err != nil {
		w.Abort()
		return err
	}
	if err := w.bw.Flush(); err != nil {
		w.Abort()
		return fmt.Errorf("spooling %s: %w", name, err)
	}
	s := w.s
	if err := s.failed(); err != nil {
		w.Abort()
		return err
	}
	if background(name) {
		f, sums := w.f, w.sums
		w.f = nil // the upload owns the spool now
		sem := s.small
		if strings.HasPrefix(name, "packs/") {
			sem = s.inflight
		}
		select {
		case sem <- struct{}{}:
		case <-s.ctx.Done():
			f.Close()
			return s.ctx.Err()
		}
		s.mu.Lock()
		s.pending[name]++
		s.mu.Unlock()
		go func() {
			err := s.upload(key, f, sums)
			f.Close()
			<-sem
			s.mu.Lock()
			if err != nil && s.err == nil {
				s.err = fmt.Errorf("%s: %w", name, err)
			}
			if s.pending[name]--; s.pending[name] == 0 {
				delete(s.pending, name)
			}
			s.idle.Broadcast()
			s.mu.Unlock()
		}()
		return nil
	}
	defer w.Abort()
	if strings.HasPrefix(name, "index/") || strings.HasPrefix(name, "snapshots/") {
		if err := s.barrier(); err != nil {
			return err
		}
	}
	return s.upload(key, w.f, w.sums)
}

// upload writes a spooled file under key, exclusively, with the CRC32Cs
// of its bytes as they were written.
func (s *s3Store) upload(key string, f *os.File, sums *s3store.Sums) error {
	err := s.c.UploadSummed(s.ctx, s.bucket, key, f, sums, true)
	if errors.Is(err, fs.ErrExist) {
		// The same name, so the same bytes: kept as they are.
		return nil
	}
	return err
}

func (w *s3Writer) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

func (s *s3Store) Open(name string) (File, error) { return s.open(s.ctx, name) }

// s3Bound is an s3Store whose reads end when ctx is cancelled (bindReads).
type s3Bound struct {
	*s3Store
	ctx context.Context
}

func (s *s3Store) bindReads(ctx context.Context) Store { return s3Bound{s, ctx} }

func (b s3Bound) Open(name string) (File, error) { return b.s3Store.open(b.ctx, name) }

// open opens name, its reads bound to ctx.
func (s *s3Store) open(ctx context.Context, name string) (File, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if background(name) {
		if err := s.await(name); err != nil {
			return nil, err
		}
	}
	o, err := s.c.Open(ctx, s.bucket, key)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(name, "index/") {
		return o, nil
	}
	defer o.Close()
	f, err := s.c.Spool()
	if err != nil {
		return nil, err
	}
	h := blake3.New()
	if _, err := io.Copy(io.MultiWriter(f, h), o.Reader()); err != nil {
		f.Close()
		return nil, err
	}
	id := name[strings.LastIndexByte(name, '/')+1:]
	if got := idHex([32]byte(h.Sum(nil))); len(id) == 64 && got != id {
		f.Close()
		return nil, fmt.Errorf("%w: %s/%s: its bytes hash to %s", ErrDamaged, s.Location(), name, got)
	}
	return &osFile{File: f, size: o.Size()}, nil
}

func (s *s3Store) List(dir string, fn func(name string, size int64) error) error {
	if _, err := s.key(dir); err != nil {
		return err
	}
	if background(dir + "/") {
		if err := s.barrier(); err != nil {
			return err
		}
	}
	return s.c.List(s.ctx, s.bucket, s.prefix+dir+"/", func(e s3store.Entry) error {
		if strings.HasSuffix(e.Key, "/") { // a "directory" marker some tools make
			return nil
		}
		return fn(strings.TrimPrefix(e.Key, s.prefix), e.Size)
	})
}

func (s *s3Store) Remove(name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	return s.c.Delete(s.ctx, s.bucket, key)
}

func (s *s3Store) PutExclusive(name string, data []byte) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	return s.c.Put(s.ctx, s.bucket, key, data, true)
}

// abortUploads aborts the multipart uploads under the repository that
// were started before t: what a killed run left. Prune calls it under
// its exclusive lock.
func (s *s3Store) abortUploads(t time.Time) (int, error) {
	n := 0
	err := s.c.Unfinished(s.ctx, s.bucket, s.prefix, func(u s3store.Unfinished) error {
		if !u.Initiated.IsZero() && u.Initiated.After(t) {
			return nil
		}
		if err := s.c.AbortUpload(s.ctx, s.bucket, u); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// empty reports whether nothing is stored under the prefix.
func (s *s3Store) empty() (bool, error) {
	errFound := errors.New("found")
	err := s.c.List(s.ctx, s.bucket, s.prefix, func(e s3store.Entry) error { return errFound })
	if errors.Is(err, errFound) {
		return false, nil
	}
	return err == nil, err
}

// OpenS3Repo opens the repository at u; with create, it makes one there
// if nothing is stored under the prefix. Two hosts making it at once
// both end up with the one whose config was written first (If-None-Match).
func OpenS3Repo(ctx context.Context, c *s3store.Client, u s3store.URL, create bool) (*Repo, error) {
	s := OpenS3(ctx, c, u).(*s3Store)
	r, err := Open(s)
	if err == nil || !create || !errors.Is(err, ErrNotRepo) {
		return r, err
	}
	empty, err := s.empty()
	if err != nil {
		return nil, err
	}
	if !empty {
		return nil, fmt.Errorf("%s: %w, and not empty: refusing to make one there", s.Location(), ErrNotRepo)
	}
	r, err = Init(s, time.Now())
	if errors.Is(err, fs.ErrExist) {
		return Open(s)
	}
	return r, err
}
