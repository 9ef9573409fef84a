package dumpfile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mbtool/mbtool/dlist"
	"github.com/zeebo/blake3"
)

// FormatVersion is the version of the dump format this package writes. A
// reader refuses a dump of a newer version.
const FormatVersion = 1

// Verb is the dlist verb of the header and trailer lines.
const Verb = "MBTOOL"

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// Errors a Reader returns; they are wrapped with the details.
var (
	ErrNotDump   = errors.New("not an mbtool dump")
	ErrVersion   = errors.New("unsupported dump format version")
	ErrDigest    = errors.New("BLAKE3 digest mismatch")
	ErrNoTrailer = errors.New("dump has no trailer")
	ErrTrailing  = errors.New("data after the trailer")
	ErrFormat    = errors.New("malformed dump")
)

// Header is the first line of a dump.
type Header struct {
	Format  int       // FormatVersion of the writer
	Created time.Time // when the dump was started
	Host    string    // the source host
	Version string    // the mbtool version that wrote it
	// IndexVersion is the highest cyrus.index minor version among the
	// dumped mailboxes (17 for Cyrus 3.6), 0 when unknown. A restore
	// refuses a dump from an index version it cannot write.
	IndexVersion int
}

// Counts are what a trailer counts.
type Counts struct {
	Mailboxes int64 // APPLY MAILBOX lines
	Messages  int64 // file literals
	Bytes     int64 // bytes of all file literals
}

// Trailer is the last line of a dump.
type Trailer struct {
	Counts
	BLAKE3 [32]byte
	Offset int64 // where the trailer line starts in the uncompressed stream
	End    int64 // the offset just after the trailer's line end
	// Sum is the digest the reader computed over the bytes before Offset;
	// Next fails with ErrDigest when it is not BLAKE3 (zero, and not
	// checked, in an unsealed stream: ReaderOptions.Unsealed).
	Sum [32]byte
}

// writeSize is the size of a Writer's writes: a dump is mostly file
// literals, and each write is a system call, and a wake-up of the
// reader of a pipe (dump -o - | ...). 1 MiB writes made 254 writes
// where 64 KiB ones made 3,388 for a 184 MB dump.
const writeSize = 1 << 20

// Writer writes a dump: NewWriter writes the header, the caller writes
// commands through DL, and Close writes the trailer.
type Writer struct {
	dl     *dlist.Writer
	h      *blake3.Hasher
	seal   *sealer       // between dl and out, when sealed
	out    io.Writer     // where the trailer goes: the zstd encoder or dst
	zw     *zstd.Encoder // nil when not compressing
	closed bool
}

// Options configure a Writer.
type Options struct {
	Compress bool // zstd
	// ZstdLevel is the zstd level when compressing; 0 means
	// zstd.SpeedDefault (zstd level 3).
	ZstdLevel zstd.EncoderLevel
	// Unsealed writes no digest: the trailer's BLAKE3 is all zeros. For a
	// stream that never leaves the process (restore --repo's pipe from
	// the repository's export to the restore), whose reader hashes every
	// message file against its GUID anyway, and where a digest would
	// only be computed on one side of the pipe to be checked on the
	// other. Only a Reader opened with ReaderOptions.Unsealed accepts it.
	Unsealed bool
	// Background writes each full buffer of a sealed dump to dst (or the
	// zstd encoder) from a goroutine of the Writer's while the caller
	// goes on writing into the next: a write may then still be running
	// when a call returns. The caller must call Close or Abort before it
	// uses or closes dst again, whatever happened.
	Background bool
}

// NewWriter writes the header line to dst and returns a Writer for the rest.
func NewWriter(dst io.Writer, hdr Header, opts Options) (*Writer, error) {
	w := &Writer{}
	if !opts.Unsealed {
		w.h = blake3.New()
	}
	out := dst
	if opts.Compress {
		lvl := opts.ZstdLevel
		if lvl == 0 {
			lvl = zstd.SpeedDefault
		}
		// One encoder goroutine: the dump's hashing workers already use
		// the other cores, and measured on a generated 1 GB partition this
		// was faster than two, with half the memory. SpeedDefault (zstd's
		// level 3) compressed that mail 3.4:1 against SpeedFastest's 2:1,
		// at the same speed.
		zw, err := zstd.NewWriter(dst, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(8<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		w.zw, out = zw, zw
	}
	w.out = out
	if w.h == nil {
		w.dl = dlist.NewWriterSize(out, writeSize)
	} else {
		w.seal = newSealer(out, w.h, opts.Background, opts.Compress)
		w.dl = dlist.NewWriterSize(w.seal, writeSize)
	}
	if hdr.Format == 0 {
		hdr.Format = FormatVersion
	}
	w.dl.BeginLine(Verb, "HEADER")
	w.dl.BeginKVList()
	w.dl.Key("FORMAT")
	w.dl.Num(uint64(hdr.Format))
	w.dl.Key("CREATED")
	w.dl.Num(uint64(hdr.Created.Unix()))
	w.dl.Key("HOST")
	w.dl.Atom(hdr.Host)
	w.dl.Key("MBTOOL")
	w.dl.Atom(hdr.Version)
	if hdr.IndexVersion > 0 {
		w.dl.Key("INDEXVERSION")
		w.dl.Num(uint64(hdr.IndexVersion))
	}
	w.dl.EndList()
	if err := w.dl.EndLine(); err != nil {
		return nil, err
	}
	return w, nil
}

// DL returns the dlist writer for the commands between header and trailer.
func (w *Writer) DL() *dlist.Writer { return w.dl }

// Close writes the trailer with the given counts and the digest of all that
// was written, and flushes (and ends the zstd frame). It does not close the
// underlying writer.
func (w *Writer) Close(c Counts) error {
	if w.closed {
		return errors.New("dumpfile: writer already closed")
	}
	w.closed = true
	if err := w.dl.Flush(); err != nil {
		w.Abort()
		return err
	}
	if w.seal != nil {
		if err := w.seal.wait(); err != nil {
			return fmt.Errorf("dlist: writing: %w", err)
		}
	}
	var sum [32]byte
	if w.h != nil {
		w.h.Sum(sum[:0])
	}
	tw := dlist.NewWriter(w.out)
	writeTrailer(tw, c, sum)
	if err := tw.EndLine(); err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if w.zw != nil {
		return w.zw.Close()
	}
	return nil
}

// Abort waits for a write still running in the background
// (Options.Background), so that the caller may close or remove dst; the
// dump is left without its trailer. It does nothing after Close, and may
// be called more than once.
func (w *Writer) Abort() {
	if w.seal != nil {
		w.seal.wait()
	}
}

func writeTrailer(w *dlist.Writer, c Counts, sum [32]byte) {
	w.BeginLine(Verb, "TRAILER")
	w.BeginKVList()
	w.Key("MAILBOXES")
	w.Num(uint64(c.Mailboxes))
	w.Key("MESSAGES")
	w.Num(uint64(c.Messages))
	w.Key("BYTES")
	w.Num(uint64(c.Bytes))
	w.Key("BLAKE3")
	w.Atom(hex.EncodeToString(sum[:]))
	w.EndList()
}

// Sniff reports whether the first bytes of a stream are zstd's magic. It
// returns a reader that still yields those bytes, then reads r directly:
// no buffer of its own, so that the reads of its caller reach r with
// their own size and no extra copy.
func Sniff(r io.Reader) (io.Reader, bool, error) {
	head := make([]byte, len(zstdMagic))
	n, err := io.ReadFull(r, head)
	head = head[:n]
	rr := io.MultiReader(bytes.NewReader(head), r)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return rr, false, err
	}
	return rr, bytes.Equal(head, zstdMagic), nil
}
